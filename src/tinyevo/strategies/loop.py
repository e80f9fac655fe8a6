"""A minimal in-memory driver: ask, check hard constraints on cheap cost metrics, evaluate, tell.

This is the loop tabular benchmarks use. The run engine (storage, executors, resume) follows the same rules:
an infeasible genome is recorded with its violation and never evaluated, and an evaluation that raises or returns
NaN is recorded as failed while the search goes on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tinyevo.errors import SearchExhaustedError
from tinyevo.spaces.base import Genome
from tinyevo.strategies.base import Candidate, Problem, Status, Strategy, Trial

Metrics = Mapping[str, float]
CostFn = Callable[[Genome], Metrics]
EvalFn = Callable[[Genome], Metrics]


def finish_trial(
    number: int,
    cand: Candidate,
    problem: Problem,
    *,
    cost: Metrics,
    evaluate: EvalFn | None,
) -> Trial:
    """Turn a candidate into a trial: infeasible if a hard constraint fails, else evaluated (ok or failed)."""
    common = dict(
        number=number, genome=str(cand.genome), parents=cand.parents, generation=cand.generation,
        origin=cand.origin,
    )
    hard = problem.hard_violation(cost)
    if hard > 0:
        return Trial(status=Status.INFEASIBLE, metrics=dict(cost), violation=hard, **common)
    if evaluate is None:
        metrics: dict[str, float] = dict(cost)
    else:
        try:
            metrics = {**cost, **evaluate(cand.genome)}
        except Exception as exc:  # noqa: BLE001 - any evaluation failure is recorded, the search goes on
            return Trial(status=Status.FAILED, metrics=dict(cost), error=f"{type(exc).__name__}: {exc}", **common)
        bad = [k for k, v in metrics.items() if isinstance(v, float) and math.isnan(v)]
        if bad:
            return Trial(status=Status.FAILED, metrics=metrics, error=f"NaN in {', '.join(bad)}", **common)
    return Trial(status=Status.OK, metrics=metrics, violation=problem.soft_violation(metrics), **common)


@dataclass(frozen=True)
class LoopResult:
    trials: tuple[Trial, ...]
    evaluations: int  # trials that were actually evaluated (status ok or failed)


def run_search(
    strategy: Strategy,
    problem: Problem,
    evaluate: EvalFn,
    *,
    budget: int,
    cost: CostFn | None = None,
    max_trials: int | None = None,
    callback: Callable[[Trial], None] | None = None,
) -> LoopResult:
    """Run until ``budget`` evaluations have been spent (infeasible trials cost nothing).

    ``max_trials`` bounds the total number of trials including infeasible ones (default ``20 * budget``), so a
    search whose constraints nothing satisfies ends instead of looping. Stops early if the strategy is exhausted.
    """
    limit = max_trials if max_trials is not None else 20 * budget
    trials: list[Trial] = []
    evaluations = 0
    while evaluations < budget and len(trials) < limit:
        try:
            cand = strategy.ask()
        except SearchExhaustedError:
            break
        metrics = cost(cand.genome) if cost is not None else {}
        trial = finish_trial(len(trials), cand, problem, cost=metrics, evaluate=evaluate)
        if trial.status is not Status.INFEASIBLE:
            evaluations += 1
        strategy.tell(cand, trial)
        trials.append(trial)
        if callback is not None:
            callback(trial)
    return LoopResult(tuple(trials), evaluations)
