"""Search quality of the evolutionary strategies by the deduplicator's bounds (``breeds``, ``walk``): NB201 CIFAR-10
``valid_acc`` under ``latency_ms_raspi4 <= 20``, 50 seeds, mean best and optimum-hit rate at a budget of evaluations
(``tinyevo.tabular.runner.run_benchmark``, as ``benchmarks/nb201_strategies.py``).

    nice -n 10 python benchmarks/strategy_breeds_quality.py --bounds 1:100,16:100,100:100 --strategies mcunet,nsga2

``--bounds`` lists ``breeds:walk`` pairs; each is set for the run as every preset's ``breeds`` (the steady-state
presets' 1 and ``GENERATIONAL_BREEDS``) and ``EvolutionaryStrategy``'s default ``walk``. Prints one JSON line per
(bounds, strategy) and writes them.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from tinyevo.strategies import presets
from tinyevo.strategies.evolution import EvolutionaryStrategy
from tinyevo.tabular import get_benchmark
from tinyevo.tabular.runner import latency_constraint, run_benchmark

ROOT = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bounds", default="1:100,16:100")
    ap.add_argument("--strategies", default="mcunet,nsga2")
    ap.add_argument("--budget", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--table", type=Path, default=ROOT.parent.parent / "shared" / "benchmarks" / "nb201_cifar10.csv")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "strategy_breeds_quality.json")
    args = ap.parse_args()
    bench = get_benchmark("nb201")
    constraint = latency_constraint(bench.load(args.table), device="raspi4", max_ms=20.0)
    rows = []
    defaults = EvolutionaryStrategy.__init__.__kwdefaults__
    steady = presets._evolution.__kwdefaults__
    saved = (dict(defaults), dict(steady), presets.GENERATIONAL_BREEDS)
    try:
        for spec in args.bounds.split(","):
            breeds, walk = (int(x) for x in spec.split(":"))
            defaults.update(breeds=breeds, walk=walk)
            steady.update(breeds=breeds)
            presets.GENERATIONAL_BREEDS = breeds
            for name in args.strategies.split(","):
                r = run_benchmark(bench, strategy=name, budget=args.budget, seeds=args.seeds, table=args.table,
                                  constraint=constraint)
                rows.append({"breeds": breeds, "walk": walk, "strategy": name, "budget": args.budget,
                             "seeds": args.seeds, "mean_best": r.mean_best, "std_best": r.std_best,
                             "hit_rate": r.hit_rate, "elapsed_s": r.elapsed_s})
                print(json.dumps(rows[-1]), flush=True)
    finally:
        defaults.clear()
        defaults.update(saved[0])
        steady.clear()
        steady.update(saved[1])
        presets.GENERATIONAL_BREEDS = saved[2]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
                                    "results": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
