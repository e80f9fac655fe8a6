"""``tinyevo search``: run a hardware-aware search end to end (search, final retraining, summary table).

With no arguments: the built-in ``digits`` data, the ``chain`` space, the default strategy and the default
device's limits, a small budget. Options override a ``--config run.toml`` file, which overrides the defaults.
This module also holds the rich rendering shared by ``resume`` and ``show``.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich import box
from rich.table import Table
from rich.text import Text

from tinyevo.errors import ConfigError
from tinyevo.run.config import EXECUTOR_CHOICES, PLANNER_CHOICES, SRAM_CONVENTION_CHOICES, RunConfig

# --- rendering shared by search / resume / show ---


class ProgressView:
    """Renders :class:`~tinyevo.run.engine.ProgressEvent` s as a rich progress bar (trials done, best so far,
    feasible fraction, ETA) on ``console``. On a narrow console (80 columns, or piped output) the bar, the ETA
    and the description go first, so the counts stay whole. ``start_info(run_dir)`` gives lines printed when
    the search starts (also when ``enabled`` is false)."""

    WIDE = 130  # columns from which the bar and the ETA are shown
    MEDIUM = 90  # columns from which the "search" description is shown

    def __init__(self, console: Console, *, objective: str = "val_acc", enabled: bool = True,
                 start_info: Callable[[Path], list[str]] | None = None) -> None:
        self.console = console
        self.objective = objective
        self.enabled = enabled
        self.start_info = start_info
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def _fields(self, ev: Any) -> dict[str, str]:
        from tinyevo.run.view import fmt_metric

        best = "-"
        if ev.best is not None and ev.best.ok and self.objective in ev.best.metrics:
            best = fmt_metric(self.objective, ev.best.metrics[self.objective])
        feas = "-" if math.isnan(ev.feasible_fraction) else f"{100 * ev.feasible_fraction:.0f}%"
        return {"trials": str(ev.trials), "best": best, "feasible": feas, "failed": str(ev.failed)}

    def columns(self) -> list[Any]:
        """The progress columns that fit the console: the counts always, the bar and the ETA when wide."""
        width = self.console.width
        counts = TextColumn(
            "evals | trials {task.fields[trials]} | best {task.fields[best]} | "
            "feasible {task.fields[feasible]} | failed {task.fields[failed]}"
        )
        cols: list[Any] = [SpinnerColumn()]
        if width >= self.MEDIUM:
            cols.append(TextColumn("[bold]{task.description}"))
        if width >= self.WIDE:
            cols.append(BarColumn())
        cols += [MofNCompleteColumn(), counts, TimeElapsedColumn()]
        if width >= self.WIDE:
            cols += [TextColumn("ETA"), TimeRemainingColumn()]
        return cols

    def __call__(self, ev: Any) -> None:
        if ev.kind == "start" and self.start_info is not None and getattr(ev, "run_dir", None) is not None:
            for line in self.start_info(ev.run_dir):
                self.console.print(line, highlight=False)
        if not self.enabled:
            return
        if ev.kind == "start":
            self._progress = Progress(*self.columns(), console=self.console, transient=False)
            self._progress.start()
            if ev.message:
                self._progress.console.print(f"[dim]{ev.message}[/dim]")
            self._task = self._progress.add_task(
                "search", total=ev.budget, completed=ev.evaluations, **self._fields(ev)
            )
        elif self._progress is None or self._task is None:
            return
        elif ev.kind == "trial":
            self._progress.update(self._task, completed=ev.evaluations, **self._fields(ev))
        elif ev.kind == "search-done":
            self._progress.update(self._task, **self._fields(ev))
            self._progress.stop_task(self._task)
        elif ev.kind == "final-start":
            self._progress.console.print(f"search done; {ev.message or 'retraining'} for longer ...")
        elif ev.kind == "final-model" and ev.final is not None:
            acc = ev.final.metrics.get("test_acc")
            self._progress.console.print(
                f"retrained trial {ev.final.trial}: test_acc "
                f"{'-' if acc is None else f'{100 * acc:.2f}%'} -> {ev.final.weights}"
            )
        elif ev.kind == "done":
            self.close()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def trials_table(view: Any, trials: list[Any], *, title: str, genomes: bool = True) -> Table:
    """A rich table of trials: number, status, objective, cost metrics and (``genomes``) genome. Narrow columns
    fold (a header or a value breaks over lines) instead of losing characters; :func:`print_trials` prints
    the genomes on their own lines when they do not fit."""
    from tinyevo.run.view import TABLE_METRICS, fmt_metric

    obj = view.objective.metric
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("#", justify="right", overflow="fold")
    table.add_column("status", overflow="fold")
    table.add_column(obj, justify="right", overflow="fold")
    from tinyevo.cost.memory import sram_caption

    short = {
        "peak_sram_bytes": sram_caption(view.config.limits.planner),  # e.g. SRAM (TFLM arena, 32-bit)
        "flash_bytes": "flash",
        "latency_ms": "ms",
        "macs": "MACs",
        "params": "params",
    }
    for m in TABLE_METRICS:
        table.add_column(short.get(m, m), justify="right", overflow="fold")
    if genomes:
        table.add_column("genome", no_wrap=True, overflow="ignore")
    style = {"ok": "green", "infeasible": "yellow", "failed": "red"}
    for t in trials:
        genome = Text(t.genome)  # not markup: a genome may hold brackets
        if t.status.value == "failed":
            genome.append(f"\n{t.error}", style="red")
        table.add_row(
            str(t.number),
            f"[{style[t.status.value]}]{t.status.value}[/]",
            fmt_metric(obj, t.metrics.get(obj)),
            *(fmt_metric(m, t.metrics.get(m)) for m in TABLE_METRICS),
            *((genome,) if genomes else ()),
        )
    return table


def print_trials(console: Console, view: Any, trials: list[Any], *, title: str) -> None:
    """:func:`trials_table` with the genome column where it fits on ``console`` uncut; otherwise the table
    without it, then each genome on a line of its own (``#N GENOME``, never wrapped or cropped: copy-pasteable
    at any terminal width and in piped output)."""
    from rich.measure import Measurement

    table = trials_table(view, trials, title=title)
    if Measurement.get(console, console.options.update_width(10**6), table).maximum <= console.width:
        console.print(table)
        return
    console.print(trials_table(view, trials, title=title, genomes=False))
    for t in trials:
        console.print(Text.assemble((f"#{t.number} ", "dim"), t.genome), soft_wrap=True)
        if t.status.value == "failed":
            console.print(Text(f"   {t.error}", style="red"))


def finals_table(view: Any) -> Table:
    from tinyevo.run.view import fmt_metric

    chosen = view.run_model() if len(view.finals) > 1 else None
    title = "Retrained models (test split)" + (
        f"; * = the run's model (best {view.run_model_objective().metric})" if chosen else "")
    table = Table(title=title, title_justify="left")
    for col in ("trial", "test_acc", "val_acc", "SRAM", "flash", "ms"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("weights", overflow="fold", min_width=20)
    for f in view.finals:
        m = f.metrics
        table.add_row(
            f"{f.trial}*" if chosen is not None and f.trial == chosen.trial else str(f.trial),
            fmt_metric("test_acc", m.get("test_acc")),
            fmt_metric("val_acc", m.get("val_acc")),
            fmt_metric("peak_sram_bytes", m.get("peak_sram_bytes")),
            fmt_metric("flash_bytes", m.get("flash_bytes")),
            fmt_metric("latency_ms", m.get("latency_ms")),
            str(view.run_dir / f.weights),
        )
    return table


def print_summary(console: Console, run_dir: Path, *, top: int = 5) -> None:
    """Best models, Pareto front size, retrained models and the run directory."""
    from tinyevo.run.view import open_run

    view = open_run(run_dir)
    counts = view.counts()
    best = [t for t in view.ranked() if t.ok][:top]
    if best:
        print_trials(console, view, best, title=f"Best {len(best)} feasible models")
    else:
        console.print("[yellow]no feasible model was found; relax the limits or raise the budget[/yellow]")
    if view.finals:
        console.print(finals_table(view))
    console.print(
        f"trials: {len(view.records)} ({counts['ok']} ok, {counts['infeasible']} infeasible, "
        f"{counts['failed']} failed); Pareto front: {len(view.pareto())} models"
    )
    console.print(f"run directory: [bold]{view.run_dir}[/bold]")


# --- options ---


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The options of ``tinyevo search`` (all default to None so that a config file is not overridden)."""
    g = p.add_argument_group("what to search")
    g.add_argument("--config", metavar="FILE", help="TOML run config (flags override it)")
    g.add_argument(
        "--data", metavar="digits|PATH", help="data set: 'digits' (built in) or a path (default digits)"
    )
    g.add_argument(
        "--val-fraction", type=float, metavar="F", help="validation split carved from training data"
    )
    g.add_argument("--space", help="search space (default chain)")
    g.add_argument("--strategy", help="search strategy (default: surrogate-evolution; nsga2 with several objectives; "
                                      "dnas: differentiable NAS on nb201 / blocks, docs/dnas.md)")
    g.add_argument("--population", type=int, metavar="N",
                   help="population size of an evolutionary strategy (regularized-evolution, mcunet, nsga2, "
                        "evolution-*); more options in the config's [strategy_options]")
    g.add_argument("--estimator", help="estimator, e.g. train, naswot+train (default train)")
    g.add_argument("--supernet", metavar="DIR",
                   help="score candidates with the weights they inherit from a supernet trained by `tinyevo "
                        "supernet train --out DIR` (the space and its options are the supernet's; docs/supernet.md)")
    g.add_argument("--teacher", action="append", metavar="RUN[:N]",
                   help="train each candidate by distillation from a retrained model of another run (its run's "
                        "model, or trial N); repeat for an ensemble")
    g.add_argument("--epochs", type=int, metavar="N", help="training epochs per candidate during the search")
    g.add_argument("--torch-device", metavar="DEV",
                   help="where PyTorch trains candidates and final models: cpu (default), cuda, cuda:N or auto")
    g.add_argument(
        "--objective",
        action="append",
        metavar="METRIC[:max|min]",
        help="objective (repeat for several; default val_acc:max)",
    )
    g.add_argument("--latency-target-ms", type=float, metavar="T",
                   help="MnasNet soft objective: the first objective times (latency_ms / T) ** -0.07 "
                        "(a target, not a limit; needs a device)")
    g.add_argument("--soft-target", action="append", metavar="METRIC=T[:ALPHA[:BETA]]",
                   help="MnasNet soft target on any metric: the first objective times (METRIC / T) ** w, "
                        "w = ALPHA if METRIC <= T else BETA (default -0.07 both), e.g. peak_sram=48000; repeatable")
    g = p.add_argument_group("device and limits")
    g.add_argument("--device", help="device profile (default stm32f412; 'none' for no device)")
    g.add_argument("--device-file", action="append", metavar="TOML",
                   help="load your own device profiles from a TOML file (repeatable; see `tinyevo devices`); "
                        "the run keeps a copy")
    g.add_argument("--sram", metavar="SIZE", help="peak SRAM limit, e.g. 64KB (default: the device's)")
    g.add_argument("--flash", metavar="SIZE", help="flash limit, e.g. 256KB (default: the device's)")
    g.add_argument("--weights", metavar="SIZE",
                   help="limit on weight + bias bytes (model size without .tflite metadata), e.g. 4.5KB")
    g.add_argument("--sram-convention", choices=SRAM_CONVENTION_CHOICES,
                   help="peak SRAM counts the network input and output buffers (mcunet, default) "
                        "or not (munas)")
    g.add_argument("--planner", choices=PLANNER_CHOICES,
                   help="how peak SRAM is priced: tflm-mcu (default: the whole TFLite Micro arena of a 32-bit "
                        "MCU, planned head + persistent tail), tflm / tflm-cmsis (TFLM's planned head only), "
                        "optimal (activations in the best order), sequential (activations in IR order)")
    g.add_argument("--latency-ms", type=float, metavar="MS", help="latency limit on the device")
    g.add_argument("--energy-mj", type=float, metavar="MJ", help="energy-per-inference limit")
    g.add_argument("--macs", type=float, metavar="N", help="MACs limit")
    g.add_argument("--params", type=float, metavar="N", help="parameter-count limit")
    g.add_argument("--precision", choices=("int8", "float32"), help="deployment precision (default int8)")
    g.add_argument("--soft", action="append", metavar="LIMIT",
                   choices=("sram", "flash", "weights", "latency_ms", "energy_mj", "macs", "params"),
                   help="make this limit soft (repeatable): a network over it is trained and its fitness pays "
                        "--soft-penalty per unit of relative excess, instead of being infeasible")
    g.add_argument("--soft-penalty", type=float, metavar="P",
                   help="fitness penalty per unit of relative excess over a soft limit (default 100)")
    g = p.add_argument_group("budget and execution")
    g.add_argument("--budget", type=int, metavar="N", help="evaluated trials (infeasible ones are free)")
    g.add_argument("--time", metavar="DURATION", help="search wall time, e.g. 30m or 1h30m")
    g.add_argument("--workers", type=int, metavar="N", help="parallel evaluations (default 1)")
    g.add_argument("--executor", choices=EXECUTOR_CHOICES,
                   help="local (default: isolated worker processes; a crash fails one trial), process (the same), "
                        "inprocess (no isolation; debugging, profiling) or dask")
    g.add_argument("--trial-timeout", metavar="DURATION",
                   help="time limit of one evaluation, e.g. 10m (default 30m; 0 or none: no limit); a trial past "
                        "it is killed and recorded as failed")
    g.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="join an existing Dask cluster")
    g.add_argument("--seed", type=int, help="random seed (default 0)")
    g.add_argument("--init", action="append", metavar="GENOME|NAME|zoo",
                   help="evaluate this genome first (repeatable): a genome string, a known architecture "
                        "(e.g. resnet8-like; see `tinyevo zoo`), 'zoo' for all known ones that fit the space, "
                        "or run:DIR[:K] for the K best trials of an earlier run")
    g = p.add_argument_group("after the search")
    g.add_argument("--final-epochs", type=int, metavar="N", help="epochs of the final retraining")
    g.add_argument("--final-workers", type=int, metavar="N",
                   help="models retrained at once after the search, one process each (default 1)")
    g.add_argument("--pareto", action="store_true", default=None, help="retrain every Pareto-front model")
    g.add_argument("--no-final", action="store_true", help="skip the final retraining")
    g.add_argument("--verify", action="store_true",
                   help="export the best retrained model to int8 .tflite and measure it on TFLite-Micro "
                        "(needs the deploy extra)")
    p.add_argument("--out", metavar="DIR", help="run directory (default: a new directory under ./runs/)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Parse flags (+ config file) once, at the edge, into a typed :class:`RunConfig`."""
    from tinyevo.run.config import build_config, load_config_file, validate_names

    file_values = load_config_file(args.config) if args.config else {}
    final: dict[str, Any] = {}
    if args.final_epochs is not None:
        final["epochs"] = args.final_epochs
    if args.pareto:
        final["pareto"] = True
    if args.no_final:
        final["enabled"] = False
    if args.final_workers is not None:
        final["workers"] = args.final_workers
    train: dict[str, Any] = {}
    if args.epochs is not None:
        train["epochs"] = args.epochs
    if args.torch_device is not None:  # where PyTorch trains: the candidates and the final models
        train["device"] = final["device"] = args.torch_device
    config = build_config(
        file_values,
        data=args.data,
        val_fraction=args.val_fraction,
        space=args.space,
        strategy=args.strategy,
        estimator=args.estimator,
        supernet=args.supernet,
        teacher=args.teacher,
        train=train or None,
        objectives=args.objective,
        soft_targets=args.soft_target,
        latency_target_ms=args.latency_target_ms,
        device=args.device,
        sram=args.sram,
        flash=args.flash,
        weights=args.weights,
        sram_convention=args.sram_convention,
        planner=args.planner,
        latency_ms=args.latency_ms,
        energy_mj=args.energy_mj,
        macs=args.macs,
        params=args.params,
        precision=args.precision,
        budget=args.budget,
        time=args.time,
        workers=args.workers,
        executor=args.executor,
        scheduler=args.scheduler,
        trial_timeout=args.trial_timeout,
        seed=args.seed,
        init=args.init,
        final=final or None,
        strategy_options=None if args.population is None else {"population": args.population},
        soft=args.soft,
        soft_penalty=args.soft_penalty,
        device_file=args.device_file,
    )
    validate_names(config)
    return config


def start_info_for(args: argparse.Namespace) -> Callable[[Path], list[str]]:
    """What to print when the search of ``args`` starts: data, space, strategy, estimator, device, the limits
    in force (with where each came from) and the run directory, read from the run's stored config."""
    from tinyevo.cli._startinfo import given_options, start_lines
    from tinyevo.run.config import load_config_file

    given = given_options(args, load_config_file(args.config) if args.config else {})

    def lines(run_dir: Path) -> list[str]:
        from tinyevo.run.assembly import cached_dataset
        from tinyevo.run.view import open_run

        view = open_run(run_dir)
        cfg = view.config
        d = cfg.data
        data = cached_dataset(d.spec, cfg.seed, d.val_fraction, d.val_min_per_class)  # as the engine: cached
        return start_lines(cfg, data, view.bounds, view.run_dir, given)

    return lines


def report_stop(err: Console, stopped: str) -> None:
    if stopped == "exhausted":
        err.print("[yellow]the strategy ran out of new genomes before the budget was spent[/yellow]")
    elif stopped == "time":
        err.print("[yellow]the search stopped at its time limit; 'tinyevo resume' continues it[/yellow]")
    elif stopped == "max-trials":
        err.print(
            "[yellow]the search stopped at its trial limit: most candidates broke the hard limits[/yellow]"
        )


def _with_notes(err: Console, notes: list[str], view: Any) -> Any:
    """``view``, printing ``notes`` first once the run has started (after its checks, so that a bad option is
    still a one-line error)."""

    def progress(ev: Any) -> None:
        view(ev)  # the start lines (data, space, limits, run directory) come first
        if ev.kind == "start":
            for line in notes:
                err.print(line)
            notes.clear()

    return progress


def check_out_dir(out: Path) -> None:
    """Refuse an ``--out`` the run cannot be created in, before anything is searched: an existing file, or a
    path under a file or an unwritable directory."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a run directory")
    parent = out
    while not parent.exists():  # the nearest existing ancestor is where the directory would be made
        if parent.parent == parent:
            break
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise ConfigError(f"--out {out}: {parent} is a file, not a directory")
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: {parent} is not writable")


def run_search_command(args: argparse.Namespace) -> int:
    from tinyevo.run.config import load_config_file
    from tinyevo.run.engine import start_workers_ahead

    err = Console(stderr=True)
    # differentiable NAS (the flag, or strategy = "dnas" in the config): searched before the run, stored as the
    # one trial of a run whose strategy is "random" (tinyevo.run.dnas.CARRIER_STRATEGY)
    named = args.strategy or (load_config_file(args.config).get("strategy") if args.config else None)
    dnas = named == "dnas"
    if dnas:
        args.strategy = "random"
    given = config_from_args(args)
    ahead = None if dnas else start_workers_ahead(given)  # the workers import torch while the data loads
    try:
        return _search(args, err, given, dnas, ahead)
    except BaseException:
        if ahead is not None:
            ahead.close()  # (start_run closes it once it has it; closing twice is safe)
        raise


def _search(args: argparse.Namespace, err: Console, given: Any, dnas: bool, ahead: Any) -> int:
    from tinyevo.run.assembly import cached_dataset
    from tinyevo.run.engine import new_run_dir, start_run
    from tinyevo.run.precheck import check_limits_reachable
    from tinyevo.run.sizing import size_run

    sized = size_run(given)  # defaults adapted to the data size (stored with the run)
    config = sized.config
    if config.dnas is not None and not dnas:
        raise ConfigError(f"the [dnas] table sets up --strategy dnas, not {config.strategy!r}; drop it or search "
                          "with --strategy dnas")
    plan = sized.describe()
    notes = ([f"[dim]{plan}[/dim]"] if plan else []) + [f"[yellow]warning: {w.message}[/yellow]"
                                                          for w in sized.warnings]
    out = args.out
    if out is None and args.config:
        out = load_out_from_config(args.config)
    if out:
        check_out_dir(Path(out))
    check_limits_reachable(config, cached_dataset(config.data.spec, config.seed, config.data.val_fraction,
                                                  config.data.val_min_per_class))  # before any trial
    run_dir = Path(out) if out else new_run_dir(Path("runs"), config)
    console = Console()
    view = ProgressView(err, objective=config.objectives[0].metric, enabled=not args.quiet,
                        start_info=start_info_for(args))
    try:
        if dnas:
            from tinyevo.run.dnas import dnas_run

            err.print("[dim]dnas: training architecture weights with the shared weights ...[/dim]")
            found = dnas_run(config, run_dir=run_dir, progress=_with_notes(err, notes, view))
            result = found.run
            proj = found.search.projection
            if proj is not None and proj.moves:
                err.print(f"[yellow]dnas: the argmax genome broke the hard limits; projected with "
                          f"{len(proj.moves)} downgrade(s) (feasible: {proj.feasible})[/yellow]")
        else:
            result = start_run(config, run_dir=run_dir, progress=_with_notes(err, notes, view), executor=ahead)
    except KeyboardInterrupt:
        view.close()
        if run_dir.exists():
            err.print(f"interrupted; continue with: tinyevo resume {run_dir}")
        raise
    print_summary(console, result.run_dir)
    report_stop(err, result.stopped)
    if getattr(args, "verify", False):
        verify_on_tflm(console, err, result.run_dir, verbose=getattr(args, "verbose", False))
    return 0


def verify_on_tflm(console: Console, err: Console, run_dir: Path, *, verbose: bool = False) -> None:
    """Export the best retrained model to int8 .tflite and print TFLM's measured arena and accuracy."""
    from tinyevo.cli._quiet import third_party_output_hidden
    from tinyevo.cli.export import print_deploy_report
    from tinyevo.run.export import export_trial

    err.print("verifying the best model on TFLite-Micro (int8 export) ...")
    with third_party_output_hidden(verbose):
        report = export_trial(run_dir, fmt="tflite")
    print_deploy_report(console, report)


def load_out_from_config(path: str) -> str | None:
    from tinyevo.run.config import load_config_file

    out = load_config_file(path).get("out")
    return None if out is None else str(out)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "search",
        help="run a hardware-aware architecture search",
        description="Search architectures that fit a microcontroller, retrain the best and save it. With no "
        "options: digits data, chain space, default strategy, stm32f412 with demo limits of 4 KB "
        "SRAM / 64 KB flash, 40 evaluations, a few minutes.",
    )
    add_run_options(p)
    p.set_defaults(func=run_search_command)
