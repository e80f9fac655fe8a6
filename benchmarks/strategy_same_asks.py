"""Does a change to ``surrogate-evolution`` change its asks? The working tree's ``SurrogateEvolution`` against the
one of a git revision, same seed, same problem (``benchmarks/strategy_overhead.py``'s chain or NB201 problem), each
version asked and told in turn; reports the first ask that differs (null: all identical) and both versions' CPU
time per trial (ask + tell, BLAS single-threaded).

    python benchmarks/strategy_same_asks.py --rev 4c1f119 --problem nb201 --seeds 0,1,2 --asks 300 \\
        --out benchmarks/out/same.json

The old module is loaded from ``git show REV:src/tinyevo/strategies/surrogate.py`` without its registration.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

from strategy_overhead import NB201_TABLE, ChainProblem, NB201Problem

from tinyevo.strategies.loop import finish_trial
from tinyevo.strategies.surrogate import SurrogateEvolution

ROOT = Path(__file__).resolve().parent


def old_class(rev: str) -> type:
    src = subprocess.run(["git", "show", f"{rev}:src/tinyevo/strategies/surrogate.py"], cwd=ROOT.parent,
                         check=True, capture_output=True, text=True).stdout
    module = types.ModuleType(f"surrogate_{rev}")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    code = compile(src[: src.index("\nSETTINGS = (")], f"{rev}:surrogate.py", "exec")
    exec(code, module.__dict__)  # noqa: S102 - our own module at another revision
    return module.SurrogateEvolution


def run(cls: type, part: Any, seed: int, asks: int) -> tuple[list[str], float]:
    s = cls(part.space, part.problem, seed=seed)
    out, cpu = [], 0.0
    for i in range(asks):
        c0 = time.thread_time()
        cand = s.ask()
        c1 = time.thread_time()
        trial = finish_trial(i, cand, part.problem, cost=part.cost(cand.genome), evaluate=part.evaluate)
        c2 = time.thread_time()
        s.tell(cand, trial)
        cpu += (c1 - c0) + (time.thread_time() - c2)
        out.append(str(cand.genome))
    return out, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", required=True, help="the git revision to compare with")
    ap.add_argument("--problem", choices=("chain", "nb201"), default="nb201")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--asks", type=int, default=300)
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "strategy_same_asks.json")
    args = ap.parse_args()
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")
    except ModuleNotFoundError:  # pragma: no cover
        pass
    old = old_class(args.rev)
    part: Any = ChainProblem() if args.problem == "chain" else NB201Problem(NB201_TABLE)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        a, ca = run(old, part, seed, args.asks)
        b, cb = run(SurrogateEvolution, part, seed, args.asks)
        first = next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), None)
        rows.append({"problem": args.problem, "seed": seed, "asks": args.asks, "first_differing_ask": first,
                     "cpu_ms_per_trial_old": 1e3 * ca / args.asks, "cpu_ms_per_trial_new": 1e3 * cb / args.asks})
        print(json.dumps(rows[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
                                    "rev": args.rev, "results": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
