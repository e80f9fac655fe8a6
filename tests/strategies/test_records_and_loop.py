"""Tests of the shared strategy records (strategies/base.py) and the in-memory driver (strategies/loop.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinyevo.errors import ConfigError, SearchExhaustedError
from tinyevo.spaces import create_space
from tinyevo.strategies.base import (
    Candidate,
    Constraint,
    Objective,
    Problem,
    Status,
    Trial,
    best_trial,
    fitness,
    rank_key,
    replay,
)
from tinyevo.strategies.loop import run_search


def _trial(n: int, status: Status, acc: float = 0.0, violation: float = 0.0) -> Trial:
    return Trial(number=n, genome=f"g{n}", status=status, metrics={"acc": acc}, violation=violation)


def test_objective_direction_and_missing_metric() -> None:
    assert Objective("acc").score({"acc": 0.9}) == 0.9
    assert Objective("lat", "min").score({"lat": 3.0}) == -3.0
    assert Objective("acc").score({}) == -math.inf
    assert Objective("acc").score({"acc": float("nan")}) == -math.inf
    with pytest.raises(ConfigError):
        Objective("acc", "up")  # type: ignore[arg-type]


def test_constraint_violation_is_relative() -> None:
    c = Constraint("sram", upper=100.0)
    assert c.violation({"sram": 80.0}) == 0.0
    assert c.violation({"sram": 125.0}) == pytest.approx(0.25)
    assert Constraint("acc", lower=0.5).violation({"acc": 0.25}) == pytest.approx(0.5)
    assert c.violation({}) == math.inf
    with pytest.raises(ConfigError):
        Constraint("sram")


def test_rank_key_orders_feasible_then_infeasible_by_violation_then_failed() -> None:
    p = Problem((Objective("acc"),))
    trials = [
        _trial(0, Status.FAILED),
        _trial(1, Status.INFEASIBLE, violation=2.0),
        _trial(2, Status.OK, acc=0.5),
        _trial(3, Status.INFEASIBLE, violation=0.1),
        _trial(4, Status.OK, acc=0.7),
    ]
    ranked = sorted(trials, key=lambda t: rank_key(p, t), reverse=True)
    assert [t.number for t in ranked] == [4, 2, 3, 1, 0]
    assert best_trial(p, trials).number == 4  # type: ignore[union-attr]
    assert best_trial(p, []) is None


def test_soft_penalty_lowers_fitness() -> None:
    p = Problem((Objective("acc"),), (Constraint("sram", upper=10.0, hard=False),), soft_penalty=1.0)
    ok = Trial(0, "a", Status.OK, {"acc": 0.9, "sram": 10.0})
    over = Trial(1, "b", Status.OK, {"acc": 0.95, "sram": 20.0})
    assert fitness(p, ok) == pytest.approx(0.9)
    assert fitness(p, over) == pytest.approx(0.95 - 1.0)


class _ListStrategy:
    """Proposes fixed genomes from nb201 in order; records what it was told."""

    def __init__(self, genomes: list[object]) -> None:
        self.genomes = list(genomes)
        self.told: list[Trial] = []

    def ask(self) -> Candidate:
        if len(self.told) >= len(self.genomes):
            raise SearchExhaustedError("no more genomes")
        return Candidate(self.genomes[len(self.told)])

    def tell(self, candidate: Candidate, trial: Trial) -> None:
        self.told.append(trial)


def _genomes(n: int) -> list[object]:
    space = create_space("nb201")
    rng = np.random.default_rng(0)
    out: dict[str, object] = {}
    while len(out) < n:
        g = space.sample(rng)
        out[str(g)] = g
    return list(out.values())


def test_loop_records_infeasible_without_evaluating_and_failed_without_stopping() -> None:
    genomes = _genomes(6)
    convs = {str(g): str(g).count("conv") for g in genomes}
    evaluated: list[str] = []

    def evaluate(g: object) -> dict[str, float]:
        evaluated.append(str(g))
        if convs[str(g)] == 0:
            raise RuntimeError("boom")
        if convs[str(g)] == 1:
            return {"acc": float("nan")}
        return {"acc": float(convs[str(g)])}

    def cost(g: object) -> dict[str, float]:
        return {"size": float(convs[str(g)])}

    p = Problem((Objective("acc"),), (Constraint("size", upper=4.0),))
    strategy = _ListStrategy(genomes)
    result = run_search(strategy, p, evaluate, budget=100, cost=cost)
    assert len(result.trials) == 6
    for t in result.trials:
        n = convs[t.genome]
        if n > 4:
            assert t.status is Status.INFEASIBLE and t.genome not in evaluated
            assert t.violation == pytest.approx((n - 4) / 4)
        elif n == 0:
            assert t.status is Status.FAILED and "boom" in (t.error or "")
        elif n == 1:
            assert t.status is Status.FAILED and "NaN" in (t.error or "")
        else:
            assert t.status is Status.OK and t.metrics["acc"] == n and t.metrics["size"] == n
    assert result.evaluations == len(evaluated)
    assert strategy.told == list(result.trials)


def test_loop_budget_counts_evaluations_only() -> None:
    genomes = _genomes(10)
    p = Problem((Objective("acc"),))
    result = run_search(_ListStrategy(genomes), p, lambda g: {"acc": 1.0}, budget=3)
    assert result.evaluations == 3 and len(result.trials) == 3


def test_replay_detects_mismatched_history() -> None:
    genomes = _genomes(3)
    history = [(Candidate(g), Trial(i, str(g), Status.OK, {"acc": 1.0})) for i, g in enumerate(genomes)]
    s = _ListStrategy(genomes)
    replay(s, history)
    assert [t.genome for t in s.told] == [str(g) for g in genomes]
    with pytest.raises(ConfigError, match="does not match"):
        replay(_ListStrategy(list(reversed(genomes))), history)


def test_drive_asks_in_batches_and_names_why_it_stopped() -> None:
    from tinyevo.strategies.loop import drive, finish_trial

    genomes = _genomes(7)
    p = Problem((Objective("acc"),))
    batches: list[tuple[int, int, int]] = []

    def run_batch(first: int, cands: object, told: object) -> list[Trial]:
        batches.append((first, len(cands), len(told)))  # type: ignore[arg-type]
        return [finish_trial(first + i, c, p, cost={}, evaluate=lambda g: {"acc": 1.0})
                for i, c in enumerate(cands)]  # type: ignore[arg-type]

    class Queue(_ListStrategy):  # proposes the next genome at each ask, before any tell (a batch)
        def ask(self) -> Candidate:
            if not self.genomes:
                raise SearchExhaustedError("no more genomes")
            return Candidate(self.genomes.pop(0))

    res = drive(Queue(genomes), run_batch, budget=100, max_trials=100, batch_size=3)
    assert batches == [(0, 3, 0), (3, 3, 3), (6, 1, 6)] and res.stop == "exhausted"
    assert [t.number for t in res.trials] == list(range(7))
    assert [t.genome for t in res.trials] == [str(g) for g in genomes]
    batches.clear()
    res = drive(Queue(genomes), run_batch, budget=5, max_trials=100, batch_size=3)
    assert batches == [(0, 3, 0), (3, 2, 3)] and res.stop == "budget" and res.evaluations == 5
    res = drive(Queue(genomes), run_batch, budget=5, max_trials=100, batch_size=3,
                out_of_time=lambda first, k: first >= 3)
    assert len(res.trials) == 3 and res.stop == "time"
    res = drive(Queue(genomes), run_batch, budget=5, max_trials=2, batch_size=3)
    assert len(res.trials) == 2 and res.stop == "max-trials"
