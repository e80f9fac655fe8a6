"""``tinyevo bench BENCHMARK``: run a strategy on a tabular NAS benchmark over seeds 0..S-1.

Examples::

    tinyevo bench nb201 --budget 100 --seeds 200 --json out/nb201.json      # default strategy
    tinyevo bench nb201 --strategy optuna-tpe --budget 300 --seeds 50 --json out/tpe.json
    tinyevo bench nb201 --max-latency-ms 20 --latency-device raspi4 --json out/lat.json
    tinyevo bench macro --strategy regularized-evolution
    tinyevo bench nb201 --strategy reinforce --budget 300 --seeds 200
    tinyevo bench nb201 --latency-target-ms 20 --latency-device raspi4  # MnasNet reward acc * (lat / 20) ** -0.07
    tinyevo bench nb201 --soft-target latency_ms_pixel3=5:0:-1          # MnasNet's hard-ish form (alpha 0, beta -1)
    tinyevo bench nb201 --table my.csv --metric my_acc                    # any CSV with an `arch` column

The JSON holds ``strategy``, ``budget``, ``seeds``, ``mean_best``, ``std_best`` (over seeds, ddof 0),
``hit_rate`` (fraction of seeds whose best equals the table's optimum among feasible architectures), the optimum,
per-seed results and best-so-far curves; a PNG of the curves is written next to it.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from tinyevo.errors import ConfigError
from tinyevo.strategies import DEFAULT_STRATEGY
from tinyevo.tabular.benchmarks import TABULAR, get_benchmark
from tinyevo.problem import SoftTarget
from tinyevo.tabular.runner import (
    LATENCY_PREFIX,
    SeedResult,
    latency_constraint,
    latency_target,
    plot_curves,
    run_benchmark,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench", help="run a strategy on a tabular NAS benchmark (NB201, NAS-Bench-Macro)",
        description="Run a search strategy on a tabular NAS benchmark for seeds 0..S-1 (budget = evaluated "
        "table queries per seed) and report the mean best value and how often the optimum was found.",
    )
    p.add_argument("benchmark", choices=TABULAR.names(), help="tabular benchmark")
    p.add_argument("--strategy", default=DEFAULT_STRATEGY, metavar="NAME",
                   help=f"a registered strategy, optuna-tpe or optuna-nsga2 (default {DEFAULT_STRATEGY})")
    p.add_argument("--budget", type=int, default=100, metavar="N", help="evaluated queries per seed (default 100)")
    p.add_argument("--seeds", type=int, default=10, metavar="S", help="run seeds 0..S-1 (default 10)")
    p.add_argument("--json", type=Path, metavar="OUT.json", help="write results here (and a PNG beside it)")
    p.add_argument("--table", type=Path, metavar="PATH",
                   help="table file: CSV or JSON, optionally .gz (default: the table shipped with tinyevo)")
    p.add_argument("--metric", metavar="COL", help="column to maximise (default: the benchmark's)")
    p.add_argument("--max-latency-ms", type=float, metavar="MS",
                   help=f"hard constraint on the table's {LATENCY_PREFIX}<device> column (needs --latency-device)")
    p.add_argument("--latency-target-ms", type=float, metavar="T",
                   help=f"MnasNet soft objective: metric * ({LATENCY_PREFIX}<device> / T) ** -0.07 (needs --latency-device)")
    p.add_argument("--soft-target", action="append", default=[], metavar="COL=T[:ALPHA[:BETA]]",
                   help="MnasNet soft target on any column: metric * (COL / T) ** w, w = ALPHA if COL <= T else "
                        "BETA (default -0.07 both); repeatable")
    p.add_argument("--latency-device", metavar="NAME",
                   help=f"the table's latency column to use: {LATENCY_PREFIX}NAME, e.g. raspi4 (a device measured in "
                        "the benchmark, not an MCU profile)")
    p.add_argument("--device", help=argparse.SUPPRESS)  # --device names an MCU profile elsewhere: refused here
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.device is not None:
        raise ConfigError(f"bench picks the table's latency column with --latency-device {args.device} (--device "
                          "names an MCU profile in the other commands)")
    latency_flags = args.max_latency_ms is not None or args.latency_target_ms is not None
    if latency_flags != (args.latency_device is not None):
        raise ConfigError("--max-latency-ms / --latency-target-ms and --latency-device go together (they are on "
                          f"the {LATENCY_PREFIX}<device> column)")
    if args.json is not None and args.json.suffix.lower() != ".json":
        raise ConfigError(f"--json needs a path ending in .json, got {str(args.json)!r}")
    bench = get_benchmark(args.benchmark)
    constraint = None
    if args.max_latency_ms is not None:
        constraint = latency_constraint(bench.load(args.table), device=args.latency_device,
                                        max_ms=args.max_latency_ms)
    soft = [SoftTarget.parse(t) for t in args.soft_target]
    if args.latency_target_ms is not None:
        soft.append(latency_target(bench.load(args.table), device=args.latency_device,
                                   target_ms=args.latency_target_ms))
    console = Console(stderr=True)
    progress = Progress(
        TextColumn(f"{args.benchmark} {args.strategy}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("seeds  best {task.fields[best]}  hits {task.fields[hits]}"), TimeElapsedColumn(),
        TimeRemainingColumn(), console=console, transient=True,
    )
    state = {"hits": 0, "sum": 0.0, "n": 0}

    with progress:
        task = progress.add_task("seeds", total=args.seeds, best="-", hits=0)

        def on_seed(res: SeedResult) -> None:
            state["hits"] += int(res.hit)
            if math.isfinite(res.best):
                state["sum"] += res.best
                state["n"] += 1
            mean = f"{state['sum'] / state['n']:.4f}" if state["n"] else "-"
            progress.update(task, advance=1, best=mean, hits=state["hits"])

        result = run_benchmark(
            bench, strategy=args.strategy, budget=args.budget, seeds=args.seeds, table=args.table,
            metric=args.metric, constraint=constraint, soft_targets=tuple(soft), on_seed=on_seed,
        )

    table = Table(title=f"{result.benchmark}: {result.metric} ({result.direction}), budget {result.budget}, "
                        f"seeds 0..{result.seeds - 1}")
    for col in ("strategy", "mean best", "std", "hit rate", "optimum", "time"):
        table.add_column(col, justify="left" if col == "strategy" else "right")
    table.add_row(result.strategy, f"{result.mean_best:.4f}", f"{result.std_best:.4f}", f"{result.hit_rate:.0%}",
                  f"{result.optimum:g}", f"{result.elapsed_s:.1f} s")
    out = Console()
    out.print(table)
    if constraint is not None:
        out.print(f"constraint: {constraint.metric} <= {constraint.upper:g} (optimum under it: "
                  f"{result.optimum:g}, {result.optimum_arch})")
    if soft:
        out.print(f"objective: {result.objective} (MnasNet reward; each seed's best is the best by it)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.to_json(), indent=1))
        png = plot_curves([result], args.json.with_suffix(".png"))
        out.print(f"wrote {args.json} and {png}")
    return 0
