"""``tinyevo resume RUN``: continue a run that was stopped or killed (even with kill -9).

The strategy's state is rebuilt from the stored trials (same seed and config -> the same proposals); trials
that were stored are not evaluated again. Workers / executor may change; the stored batch size is kept, so the
final set of trials equals that of an uninterrupted run.

A network address stored in the run directory is never used (the directory may come from someone else, and a
Dask client runs what its scheduler sends): a run that joined a Dask scheduler resumes on a local Dask cluster
unless ``--scheduler`` names it again.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from tinyevo.cli.search import ProgressView, print_summary, report_stop
from tinyevo.run.config import EXECUTOR_CHOICES


def run_resume_command(args: argparse.Namespace) -> int:
    from tinyevo.run.config import ExecutorConfig, parse_duration
    from tinyevo.run.engine import load_run_config, resume_run

    run_dir = Path(args.run)
    config = load_run_config(run_dir)
    executor = None
    if args.workers is not None or args.executor is not None or args.scheduler is not None:
        stored = config.executor
        name = args.executor or ("dask" if args.scheduler else stored.name)
        executor = ExecutorConfig(
            name=name,
            workers=args.workers if args.workers is not None else stored.workers,
            scheduler=args.scheduler if name == "dask" else None,
            batch_size=stored.batch,
        )
    if executor is not None and executor.workers > executor.batch:
        Console(stderr=True).print(
            f"[yellow]note: this run asks {executor.batch} candidate(s) at a time (fixed when it started), so "
            f"at most {executor.batch} of the {executor.workers} workers are busy[/yellow]"
        )
    if config.executor.scheduler is not None and args.scheduler is None:
        Console(stderr=True).print(
            f"note: this run used the Dask scheduler {config.executor.scheduler}; resume never connects to "
            "an address read from a run directory, so it runs on a local cluster (pass --scheduler to use a "
            "remote one)",
            style="yellow", markup=False, highlight=False,
        )
    time_s = parse_duration(args.time) if args.time is not None else None
    view = ProgressView(Console(stderr=True), objective=config.objectives[0].metric, enabled=not args.quiet)
    try:
        result = resume_run(run_dir, executor_config=executor, time_s=time_s, progress=view)
    except KeyboardInterrupt:
        view.close()
        Console(stderr=True).print(f"interrupted; continue with: tinyevo resume {run_dir}")
        raise
    print_summary(Console(), result.run_dir)
    report_stop(Console(stderr=True), result.stopped)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "resume",
        help="continue a stopped or killed run",
        description="Continue a run from its database; stored trials are not re-evaluated. A Dask scheduler "
        "address stored in the run is never connected to (the run directory may come from someone else): a run "
        "that used --scheduler resumes on a local cluster unless you pass --scheduler again.",
    )
    p.add_argument("run", metavar="RUN", help="run directory")
    p.add_argument("--workers", type=int, metavar="N", help="parallel evaluations (default: as stored)")
    p.add_argument("--executor", choices=EXECUTOR_CHOICES, help="where evaluations run (default: as stored)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="join an existing Dask cluster (the address stored in the run is not used)")
    p.add_argument("--time", metavar="DURATION", help="search wall time of this session, e.g. 30m")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=run_resume_command)
