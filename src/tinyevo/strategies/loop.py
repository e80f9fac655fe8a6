"""A minimal in-memory driver: ask, check hard constraints on cheap cost metrics, evaluate, tell.

:func:`drive` is the one search loop: :func:`run_search` (in memory, what tabular benchmarks use) and the run
engine (storage, executors, resume) both run on it. An infeasible genome is recorded with its violation and never
evaluated, and an evaluation that raises or returns NaN is recorded as failed while the search goes on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

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


StopReason = Literal["budget", "max-trials", "time", "exhausted"]
"""Why a search ended: its evaluation budget spent, its trial limit reached (infeasible trials included), out of
time, or the strategy had nothing left to propose."""

BatchRunner = Callable[[int, Sequence[Candidate], Sequence[Trial]], Sequence[Trial]]
"""``run_batch(first_number, candidates, told) -> trials``: one trial per candidate, numbered from
``first_number`` (``told``: the trials so far)."""


@dataclass(frozen=True)
class LoopResult:
    trials: tuple[Trial, ...]
    evaluations: int  # trials that were actually evaluated (status ok or failed)
    stop: StopReason = "budget"


def drive(
    strategy: Strategy,
    run_batch: BatchRunner,
    *,
    budget: int,
    max_trials: int,
    batch_size: int = 1,
    out_of_time: Callable[[int, int], bool] | None = None,
    callback: Callable[[Trial], None] | None = None,
) -> LoopResult:
    """The one search loop: ask up to ``batch_size`` candidates, turn them into trials with ``run_batch``
    (checking constraints and evaluating, e.g. :func:`finish_trial` or the run engine's executor), tell the strategy,
    until ``budget`` evaluations were spent (infeasible trials cost nothing), ``max_trials`` trials were made, the
    strategy is exhausted, or ``out_of_time(first_number, k)`` says so before a batch of ``k``."""
    told: list[Trial] = []
    evaluations = 0
    stop: StopReason
    while True:
        k = min(batch_size, budget - evaluations, max_trials - len(told))
        if k <= 0:
            stop = "budget" if evaluations >= budget else "max-trials"
            break
        if out_of_time is not None and out_of_time(len(told), k):
            stop = "time"
            break
        cands: list[Candidate] = []
        exhausted = False
        for _ in range(k):
            try:
                cands.append(strategy.ask())
            except SearchExhaustedError:
                exhausted = True
                break
        if not cands:
            stop = "exhausted"
            break
        for cand, trial in zip(cands, run_batch(len(told), cands, told), strict=True):
            strategy.tell(cand, trial)
            told.append(trial)
            if trial.status is not Status.INFEASIBLE:
                evaluations += 1
            if callback is not None:
                callback(trial)
        if exhausted:
            stop = "exhausted"
            break
    return LoopResult(tuple(told), evaluations, stop)


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
    """Run in memory, one candidate at a time, until ``budget`` evaluations have been spent (infeasible trials
    cost nothing): :func:`drive` with :func:`finish_trial`.

    ``max_trials`` bounds the total number of trials including infeasible ones (default ``20 * budget``), so a
    search whose constraints nothing satisfies ends instead of looping. Stops early if the strategy is exhausted.
    """

    def run_batch(first: int, cands: Sequence[Candidate], told: Sequence[Trial]) -> list[Trial]:
        return [finish_trial(first + i, cand, problem, cost=cost(cand.genome) if cost is not None else {},
                             evaluate=evaluate) for i, cand in enumerate(cands)]

    return drive(strategy, run_batch, budget=budget,
                 max_trials=max_trials if max_trials is not None else 20 * budget, callback=callback)
