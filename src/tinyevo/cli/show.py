"""``tinyevo show RUN``: the trials of a run (best first), its Pareto front and retrained models.

``--json`` prints every trial as a JSON object (``genome``, ``status``, ``metrics``, cost, timings, ...).
Safe to use while the run is going.
"""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console

from tinyevo.cli.search import finals_table, print_trials


def run_show_command(args: argparse.Namespace) -> int:
    from tinyevo.devices import describe_bound
    from tinyevo.run.view import open_run, record_json

    view = open_run(args.run)
    if args.json:
        doc = [record_json(r) for r in view.records]
        sys.stdout.write(json.dumps(doc, indent=1, allow_nan=False) + "\n")
        return 0
    console = Console()
    cfg = view.config
    counts = view.counts()
    limits = ", ".join(describe_bound(m, v) for m, v in view.bounds.items()) or "none"
    console.print(
        f"[bold]{view.run_dir}[/bold]  data={cfg.data.spec} space={cfg.space.name} "
        f"strategy={cfg.strategy} estimator={cfg.estimator.name} device={cfg.limits.device} "
        f"seed={cfg.seed} phase={view.phase}"
    )
    from tinyevo.cost.memory import sram_caption

    console.print(f"limits: {limits} (peak SRAM convention: {cfg.limits.sram_convention}, "
                  f"planner: {cfg.limits.planner}, priced as {sram_caption(cfg.limits.planner)})")
    console.print(
        f"trials: {len(view.records)} ({counts['ok']} ok, {counts['infeasible']} infeasible, "
        f"{counts['failed']} failed) of a budget of {cfg.budget.trials} evaluations"
    )
    ranked = view.ranked()
    shown = ranked if args.all else ranked[: args.top]
    print_trials(console, view, shown, title=f"Trials, best first ({len(shown)} of {len(ranked)})")
    objs = ", ".join(f"{o.metric} {o.direction}" for o in view.pareto_objectives())
    print_trials(console, view, view.pareto(), title=f"Pareto front ({objs})")
    if view.finals:
        console.print(finals_table(view))
    for d in view.derived:  # not search trials (tinyevo deepen); retrain/export them with --trial NUMBER
        console.print(f"derived model {d.number} ({d.origin} of trial {d.parent}): {d.genome}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("show", help="show the trials of a run", description=__doc__)
    p.add_argument("run", metavar="RUN", help="run directory")
    p.add_argument("--json", action="store_true", help="print every trial as a JSON object")
    p.add_argument("--top", type=int, default=20, metavar="N", help="trials to list (default 20)")
    p.add_argument("--all", action="store_true", help="list every trial")
    p.set_defaults(func=run_show_command)
