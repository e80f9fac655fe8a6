"""tinyevo as a library: a constrained evolutionary search with a cheap stand-in for training.

Run: python examples/api_quickstart.py
"""

from __future__ import annotations

from tinyevo.cost import estimate_cost
from tinyevo.devices import Limits, get_device
from tinyevo.spaces import create_space
from tinyevo.strategies import STRATEGIES, Objective, Problem, best_trial
from tinyevo.strategies.loop import run_search

space = create_space("chain", input_shape=(1, 28, 28), num_classes=10)
device = get_device("nrf52840")
limits = Limits.from_options(device=device, sram="16KB", flash="64KB")  # explicit values win over the device's
problem = Problem(objectives=(Objective("score"),), constraints=limits.constraints(hard=True))


def cost(genome):  # cheap, exact: MACs, params, flash, peak SRAM, latency, energy
    return estimate_cost(space.decode(genome), device=device).as_metrics()


def evaluate(genome):  # stands in for training: prefer more compute, i.e. MACs (a real search trains here)
    return {"score": cost(genome)["macs"] / 1e6}


strategy = STRATEGIES.create("regularized-evolution", space, problem, seed=0)
result = run_search(strategy, problem, evaluate, budget=60, cost=cost)
best = best_trial(problem, result.trials)
print(f"{len(result.trials)} trials, {result.evaluations} evaluated")
print("best:", best.genome)
print({k: round(v, 2) for k, v in best.metrics.items()})
assert limits.satisfied(best.metrics)
