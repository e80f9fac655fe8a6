"""REINFORCE vs evolution on the tabular benchmarks, and MnasNet's soft latency reward vs a hard latency limit.

Part 1 (``strategies``): ``reinforce`` beside ``random``, ``regularized-evolution`` and the default strategy on
NAS-Bench-201 (CIFAR-10 ``valid_acc``; ``test_acc`` of each seed's best is reported too) and NAS-Bench-Macro
(``mean_acc``), at 100 and 300 evaluated queries, seeds 0..S-1 -- the same runs as ``tinyevo bench BENCHMARK
--strategy NAME --budget B --seeds S``.

Part 2 (``latency``): NB201 with the ``latency_ms_raspi4`` column and a target ``T`` (default: the table's median
latency). Each strategy searches with

* ``hard``: the constraint ``latency <= T`` (infeasible genomes are free, as in ``tinyevo bench --max-latency-ms``);
* ``soft``: MnasNet's reward ``valid_acc * (latency / T) ** -0.07`` (``--latency-target-ms``), no constraint;
* ``soft-steep``: MnasNet's other setting, ``alpha = 0, beta = -1`` (no gain below T, a steep loss above);

and we report, over seeds, the ``valid_acc`` / ``test_acc`` / latency of the model each search returns (the best by
its own objective) and the fraction of seeds whose model is within ``T``.

    nice -n 10 python benchmarks/rl_vs_evolution.py                 # 200 seeds; writes benchmarks/results/...
    nice -n 10 python benchmarks/rl_vs_evolution.py --seeds 10 --out benchmarks/out/rl_vs_evolution.json

Part 3 (``tuning``, only when asked): the handful of ``Reinforce`` settings its defaults were picked from (NB201,
100 queries, seeds 0..S-1; the first row is the defaults):

    nice -n 10 python benchmarks/rl_vs_evolution.py --parts tuning --seeds 100 --budgets 100 \
        --out benchmarks/results/rl_reinforce_tuning.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from tinyevo.problem import Constraint, SoftTarget
from tinyevo.strategies import DEFAULT_STRATEGY, STRATEGIES
from tinyevo.strategies.reinforce import Reinforce
from tinyevo.tabular import get_benchmark
from tinyevo.tabular.runner import BenchResult, run_benchmark

RESULTS = Path(__file__).resolve().parent / "results" / "rl_vs_evolution.json"
TUNING: tuple[dict[str, Any], ...] = (
    {},  # the defaults: lr 0.3, batch_size 1, adam_betas (0.5, 0.9), entropy 0.01, baseline_decay 0.9
    {"adam_betas": (0.9, 0.999)},
    {"lr": 0.1, "batch_size": 5, "adam_betas": (0.9, 0.999)},
    {"lr": 0.1},
    {"lr": 0.5},
    {"batch_size": 4},
    {"entropy": 0.0},
    {"entropy": 0.05},
    {"baseline_decay": 0.95},
)


def _f(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def summary(r: BenchResult, *, latency: str | None = None, target: float | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "benchmark": r.benchmark, "strategy": r.strategy, "budget": r.budget, "seeds": r.seeds,
        "objective": r.objective, "constraint": r.constraint, "mean_best": _f(r.mean_best),
        "std_best": _f(r.std_best), "hit_rate": r.hit_rate, "optimum": r.optimum, "elapsed_s": round(r.elapsed_s, 2),
    }
    if any("test_acc" in s.best_metrics for s in r.per_seed):
        row["mean_test_acc_of_best"] = _f(r.mean_of_best("test_acc"))
    if latency is not None and target is not None:
        lats = np.array([s.best_metrics.get(latency, math.nan) for s in r.per_seed], dtype=np.float64)
        row["mean_latency_of_best"] = _f(float(np.nanmean(lats)))
        row["within_target"] = float(np.mean(lats <= target))  # NaN (no model found) counts as outside
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--budgets", type=int, nargs="+", default=[100, 300])
    ap.add_argument("--strategies", default=f"reinforce,random,regularized-evolution,{DEFAULT_STRATEGY}")
    ap.add_argument("--latency-strategies", default="reinforce,regularized-evolution")
    ap.add_argument("--device", default="raspi4")
    ap.add_argument("--target-ms", type=float, default=None, help="latency target T (default: table median)")
    ap.add_argument("--parts", default="strategies,latency")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    rows: list[dict[str, Any]] = []
    out: dict[str, Any] = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "python": platform.python_version(), "machine": platform.machine(), "seeds": args.seeds,
        "budgets": args.budgets,
    }
    start = time.perf_counter()

    def log(row: dict[str, Any]) -> None:
        rows.append(row)
        extra = ""
        if "mean_test_acc_of_best" in row:
            extra += f" test {row['mean_test_acc_of_best']:.3f}"
        if "within_target" in row:
            extra += f" lat {row['mean_latency_of_best']:.2f} within {row['within_target']:.0%}"
        print(f"{row['benchmark']:6s} {row.get('mode', ''):10s} {row['strategy']:22s} b{row['budget']:<4d} "
              f"best {row['mean_best']:.4f} +- {row['std_best']:.4f} hit {row['hit_rate']:.0%}{extra} "
              f"({row['elapsed_s']:.0f} s)", file=sys.stderr, flush=True)

    parts = args.parts.split(",")
    if "strategies" in parts:
        for name in ("nb201", "macro"):
            bench = get_benchmark(name)
            for budget in args.budgets:
                for strategy in args.strategies.split(","):
                    r = run_benchmark(bench, strategy=strategy, budget=budget, seeds=args.seeds)
                    log({"part": "strategies", **summary(r)})

    if "latency" in parts:
        bench = get_benchmark("nb201")
        table = bench.load(None)
        column = f"latency_ms_{args.device}"
        lat = table.column(column)
        target = float(args.target_ms) if args.target_ms is not None else float(np.median(lat))
        out["latency"] = {"column": column, "target_ms": target, "table_fraction_within": float(np.mean(lat <= target))}
        modes = {
            "hard": {"constraint": Constraint(column, upper=target, hard=True)},
            "soft": {"soft_targets": (SoftTarget(column, target),)},
            "soft-steep": {"soft_targets": (SoftTarget(column, target, 0.0, -1.0),)},
        }
        for budget in args.budgets:
            for strategy in args.latency_strategies.split(","):
                for mode, kw in modes.items():
                    r = run_benchmark(bench, strategy=strategy, budget=budget, seeds=args.seeds, **kw)
                    log({"part": "latency", "mode": mode, **summary(r, latency=column, target=target)})

    if "tuning" in parts:
        bench = get_benchmark("nb201")
        for i, settings in enumerate(TUNING):
            name = f"reinforce-tuning-{i}"
            if name not in STRATEGIES:
                STRATEGIES.register(name)(
                    lambda space, problem, *, seed, kw=settings: Reinforce(space, problem, seed=seed, **kw))
            for budget in args.budgets:
                r = run_benchmark(bench, strategy=name, budget=budget, seeds=args.seeds)
                log({"part": "tuning", "settings": {k: list(v) if isinstance(v, tuple) else v
                                                    for k, v in settings.items()}, **summary(r)})

    out["rows"] = rows
    out["elapsed_s"] = round(time.perf_counter() - start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
