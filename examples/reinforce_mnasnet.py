"""REINFORCE with MnasNet's soft latency reward on NAS-Bench-201 (table lookups, no training; a few seconds).

The controller samples NB201 cells; the reward is ``valid_acc * (latency / T) ** -0.07`` on the Raspberry Pi 4
latency column, with T the table's median latency. The same problem is then searched with a hard limit
``latency <= T`` instead, and regularized evolution is run on the soft objective for comparison.
"""

from __future__ import annotations

import numpy as np

from tinyevo.problem import Constraint, Objective, Problem, SoftTarget
from tinyevo.spaces import create_space
from tinyevo.strategies import STRATEGIES, best_trial
from tinyevo.strategies.loop import run_search
from tinyevo.strategies.reinforce import Reinforce
from tinyevo.tabular import get_benchmark
from tinyevo.tabular.benchmarks import TableLookup

table = get_benchmark("nb201").load(None)
lookup = TableLookup(table)
T = float(np.median(table.column("latency_ms_raspi4")))
space = create_space("nb201")

soft = Problem((Objective("valid_acc", soft_targets=(SoftTarget("latency_ms_raspi4", T),)),))
hard = Problem((Objective("valid_acc"),), (Constraint("latency_ms_raspi4", upper=T),))
runs = {
    "reinforce, soft target": (Reinforce(space, soft, seed=0), soft, None),
    "reinforce, hard limit": (Reinforce(space, hard, seed=0), hard,
                              TableLookup(table, metrics=("latency_ms_raspi4",))),  # latency read first, for free
    "regularized evolution, soft target": (STRATEGIES.create("regularized-evolution", space, soft, seed=0), soft,
                                           None),
}
print(f"latency target T = {T:.2f} ms (median of the table)")
for name, (strategy, problem, cost) in runs.items():
    loop = run_search(strategy, problem, lookup, budget=100, cost=cost)
    best = best_trial(problem, list(loop.trials))
    assert best is not None
    m = best.metrics
    print(f"{name:36s} valid_acc {m['valid_acc']:.2f}  test_acc {m['test_acc']:.2f}  "
          f"latency {m['latency_ms_raspi4']:.2f} ms  {best.genome}")

policy = runs["reinforce, soft target"][0]
print("controller's distribution over the ops of edge 1:",
      {op: round(float(p), 2) for op, p in zip(space.ops, policy.probabilities()[0], strict=True)})
