"""Every strategy on a tabular NAS benchmark: NB201 CIFAR-10 (``valid_acc``) or NAS-Bench-Macro (``mean_acc``).

Runs every registered strategy (random, the presets, every ``evolution-<selection>`` variant,
``surrogate-evolution``) plus the Optuna peers ``optuna-tpe`` and ``optuna-nsga2`` at each budget (evaluated
table queries) over seeds ``0 .. N-1``, prints a table and writes

* ``benchmarks/out/<benchmark>_strategies.json`` -- one summary row per (strategy, budget) and the command;
* ``benchmarks/out/<benchmark>_strategies_b<budget>.png`` -- mean best-so-far curves of every strategy;
* ``benchmarks/out/<benchmark>_runs/<strategy>_b<budget>_s<seeds>.json`` -- full per-seed results (``--resume``
  reuses them instead of re-running).

``mean_best`` is the mean over seeds of the best metric found within the budget, ``hit`` the fraction of seeds
that found the table's optimum (NB201: 91.6067; Macro: the best ``mean_acc``). A ``--max-latency-ms`` /
``--device`` pair adds a hard constraint on the table's ``latency_ms_<device>`` column (NB201 only).

    nice -n 10 python benchmarks/nb201_strategies.py                      # NB201, budgets 100 and 300, 200 seeds
    nice -n 10 python benchmarks/nb201_strategies.py --benchmark macro
    nice -n 10 python benchmarks/nb201_strategies.py --optuna-seeds 50   # fewer seeds for the slow peers
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tinyevo.strategies import DEFAULT_STRATEGY, STRATEGIES
from tinyevo.tabular import TABULAR, get_benchmark
from tinyevo.tabular.peers import PEERS
from tinyevo.tabular.runner import BenchResult, SeedResult, latency_constraint, plot_curves, run_benchmark

OUT = Path(__file__).resolve().parent / "out"


def all_strategies() -> list[str]:
    names = [DEFAULT_STRATEGY] + [n for n in STRATEGIES.names() if n != DEFAULT_STRATEGY]
    return names + list(PEERS)


def load_result(path: Path) -> BenchResult:
    data = json.loads(path.read_text())
    seeds = tuple(
        SeedResult(**{**s, "curve": tuple(float("nan") if v is None else v for v in s["curve"]),
                      "best": float("nan") if s["best"] is None else s["best"]})
        for s in data["per_seed"]
    )
    fields = {k: data[k] for k in BenchResult.__dataclass_fields__ if k != "per_seed" and k in data}
    return BenchResult(**fields, per_seed=seeds)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchmark", default="nb201", choices=TABULAR.names())
    ap.add_argument("--budgets", type=int, nargs="+", default=[100, 300])
    ap.add_argument("--seeds", type=int, default=200, help="seeds 0..N-1 (default 200)")
    ap.add_argument("--optuna-seeds", type=int, default=None, help="seeds for the Optuna peers (default --seeds)")
    ap.add_argument("--strategies", default=None, help="comma-separated subset (default: all)")
    ap.add_argument("--table", type=Path, default=None, help="table file (default: ../shared/benchmarks/...)")
    ap.add_argument("--max-latency-ms", type=float, default=None)
    ap.add_argument("--device", default=None, help="latency column latency_ms_<device>, e.g. raspi4")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--resume", action="store_true", help="reuse per-run JSON files already in --out")
    args = ap.parse_args()

    bench = get_benchmark(args.benchmark)
    names = args.strategies.split(",") if args.strategies else all_strategies()
    constraint = None
    tag = args.benchmark
    if args.max_latency_ms is not None:
        constraint = latency_constraint(bench.load(args.table), device=args.device, max_ms=args.max_latency_ms)
        tag += f"_lat{args.max_latency_ms:g}_{args.device}"
    runs_dir = args.out / f"{tag}_runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    console = Console(width=max(Console().width, 150))  # the table is wide; do not wrap it in logs

    results: dict[tuple[str, int], BenchResult] = {}
    for budget in args.budgets:
        for name in names:
            seeds = args.optuna_seeds if (name in PEERS and args.optuna_seeds) else args.seeds
            path = runs_dir / f"{name}_b{budget}_s{seeds}.json"
            if args.resume and path.exists():
                res = load_result(path)
            else:
                res = run_benchmark(bench, strategy=name, budget=budget, seeds=seeds, table=args.table,
                                    constraint=constraint)
                path.write_text(json.dumps(res.to_json()))
            results[(name, budget)] = res
            console.print(f"{name:>24} budget {budget:>4} seeds {seeds:>4}: mean {res.mean_best:.4f} "
                          f"+- {res.std_best:.4f}  hit {res.hit_rate:6.1%}  ({res.elapsed_s:.1f} s)")
        plot_curves([results[(n, budget)] for n in names], args.out / f"{tag}_strategies_b{budget}.png",
                    title=f"{tag}: best-so-far, budget {budget}")

    any_res = next(iter(results.values()))
    table = Table(title=f"{any_res.benchmark} {any_res.metric} (optimum {any_res.optimum:g}); mean best over "
                        f"seeds 0..N-1, hit = optimum found")
    table.add_column("strategy")
    for budget in args.budgets:
        for col in (f"{budget}: mean +- std", "hit", "seeds", "time"):
            table.add_column(col, justify="right")
    for name in names:
        row = [name]
        for budget in args.budgets:
            r = results[(name, budget)]
            row += [f"{r.mean_best:.3f} +- {r.std_best:.3f}", f"{r.hit_rate:.0%}", str(r.seeds), f"{r.elapsed_s:.0f}s"]
        table.add_row(*row)
    console.print(table)

    summary = {
        "benchmark": any_res.benchmark, "metric": any_res.metric, "table": any_res.table,
        "optimum": any_res.optimum, "optimum_arch": any_res.optimum_arch, "constraint": any_res.constraint,
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "results": [
            {
                "strategy": n, "budget": b, "seeds": r.seeds, "mean_best": r.mean_best, "std_best": r.std_best,
                "hit_rate": r.hit_rate, "elapsed_s": r.elapsed_s,
                **({"mean_test_acc_of_best": r.mean_of_best("test_acc")}
                   if "test_acc" in r.per_seed[0].best_metrics else {}),
            }
            for (n, b), r in results.items()
        ],
    }
    out = args.out / f"{tag}_strategies.json"
    out.write_text(json.dumps(summary, indent=1))
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
