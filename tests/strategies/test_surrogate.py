"""surrogate-evolution: determinism, no re-asks, replay, every registered space, constraints, beats random."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategy_fakes import TinySpace

from tinyevo.errors import ConfigError, SearchExhaustedError
from tinyevo.spaces import SPACES, create_space
from tinyevo.strategies import DEFAULT_STRATEGY, STRATEGIES
from tinyevo.strategies.base import Candidate, Constraint, Objective, Problem, Status, Trial, replay
from tinyevo.strategies.loop import run_search
from tinyevo.strategies.surrogate import PolyKernelRidge, SurrogateEvolution, rank_gauss

PROBLEM = Problem((Objective("acc"),))


def interaction_objective(space, *, seed: int = 0):
    """A synthetic accuracy on ``space.features``: random linear + pairwise terms (fixed by ``seed``)."""
    cache: dict[str, np.ndarray] = {}

    def evaluate(genome) -> dict[str, float]:
        f = np.asarray(space.features(genome), dtype=np.float64)
        if "w" not in cache:
            rng = np.random.default_rng(seed)
            cache["w"] = rng.normal(size=f.size)
            cache["q"] = rng.normal(size=(f.size, f.size)) / f.size
        return {"acc": float(f @ cache["w"] + f @ cache["q"] @ f)}

    return evaluate


def asked(strategy, evaluate, budget: int, problem: Problem = PROBLEM) -> list[str]:
    return [t.genome for t in run_search(strategy, problem, evaluate, budget=budget).trials]


def test_is_the_default_strategy() -> None:
    assert DEFAULT_STRATEGY == "surrogate-evolution" and DEFAULT_STRATEGY in STRATEGIES


def test_deterministic_and_never_reasks(nb201) -> None:
    ev = interaction_objective(nb201)
    a = asked(STRATEGIES.create("surrogate-evolution", nb201, PROBLEM, seed=3), ev, 60)
    b = asked(STRATEGIES.create("surrogate-evolution", nb201, PROBLEM, seed=3), ev, 60)
    c = asked(STRATEGIES.create("surrogate-evolution", nb201, PROBLEM, seed=4), ev, 60)
    assert a == b and a != c
    assert len(set(a)) == len(a) == 60


def test_replay_rebuilds_state(nb201) -> None:
    ev = interaction_objective(nb201)
    first = SurrogateEvolution(nb201, PROBLEM, seed=1)
    trials = run_search(first, PROBLEM, ev, budget=35).trials
    history = [(Candidate(nb201.parse(t.genome)), t) for t in trials]
    again = SurrogateEvolution(nb201, PROBLEM, seed=1)
    replay(again, history)
    assert str(again.ask().genome) == str(first.ask().genome)


def test_pending_asks_are_not_repeated(nb201) -> None:
    s = SurrogateEvolution(nb201, PROBLEM, seed=0, initial=3)
    ev = interaction_objective(nb201)
    for i in range(3):
        c = s.ask()
        s.tell(c, Trial(i, str(c.genome), Status.OK, ev(c.genome)))
    batch = [s.ask() for _ in range(8)]  # asked before any tell, e.g. by a parallel executor
    assert len({str(c.genome) for c in batch}) == 8


@pytest.mark.parametrize("name", SPACES.names())
def test_runs_on_every_registered_space(name: str) -> None:
    space = create_space(name)
    ev = interaction_objective(space)
    s = STRATEGIES.create("surrogate-evolution", space, PROBLEM, seed=0)
    trials = run_search(s, PROBLEM, ev, budget=28).trials
    assert len(trials) == 28 and all(t.status is Status.OK for t in trials)
    assert len({t.genome for t in trials}) == 28
    assert {t.origin for t in trials[20:]} - {"random"}  # the surrogate proposed bred candidates


def test_failed_trials_do_not_break_it(nb201) -> None:
    ev = interaction_objective(nb201)

    def flaky(genome):
        if str(genome).count("none") >= 3:
            raise RuntimeError("out of memory")
        return ev(genome)

    trials = run_search(SurrogateEvolution(nb201, PROBLEM, seed=0), PROBLEM, flaky, budget=40).trials
    assert any(t.status is Status.FAILED for t in trials) and any(t.ok for t in trials)


def test_exhausts_cleanly() -> None:
    s = SurrogateEvolution(TinySpace(4), PROBLEM, seed=0, initial=2, max_retries=20)
    seen = []
    for i in range(4):
        c = s.ask()
        seen.append(str(c.genome))
        s.tell(c, Trial(i, str(c.genome), Status.OK, {"acc": float(i)}))
    assert sorted(seen) == ["t0", "t1", "t2", "t3"]
    with pytest.raises(SearchExhaustedError):
        s.ask()


def test_bad_options(nb201) -> None:
    for kw in ({"initial": 1}, {"explore": 1.5}, {"elite": 0}, {"patience": 0}):
        with pytest.raises(ConfigError):
            SurrogateEvolution(nb201, PROBLEM, **kw)
    with pytest.raises(ConfigError):
        PolyKernelRidge(alpha=0)


def _best(trials: tuple[Trial, ...]) -> float:
    return max(t.metrics["acc"] for t in trials if t.ok)


def test_beats_random_search(nb201) -> None:
    """On a synthetic objective with pairwise interactions, over 6 seeds, at 60 evaluations."""
    sur, rnd = [], []
    for seed in range(6):
        ev = interaction_objective(nb201, seed=100 + seed)
        sur.append(_best(run_search(SurrogateEvolution(nb201, PROBLEM, seed=seed), PROBLEM, ev, budget=60).trials))
        rand = STRATEGIES.create("random", nb201, PROBLEM, seed=seed)
        rnd.append(_best(run_search(rand, PROBLEM, ev, budget=60).trials))
    assert np.mean(sur) > np.mean(rnd)
    assert sum(s > r for s, r in zip(sur, rnd, strict=True)) >= 5


def test_hard_constraint_learned(nb201) -> None:
    """Infeasible trials are told with their cost metric; the surrogate then avoids predicted violations."""
    problem = Problem((Objective("acc"),), (Constraint("convs", upper=2.0),))
    ev = interaction_objective(nb201)

    def cost(genome) -> dict[str, float]:
        return {"convs": float(sum("conv" in op for op in genome.ops))}

    def infeasible_share(strategy) -> float:
        trials = run_search(strategy, problem, ev, budget=60, cost=cost).trials
        later = [t for t in trials if t.origin != "random"]
        return sum(t.status is Status.INFEASIBLE for t in later) / max(len(later), 1)

    sur = np.mean([infeasible_share(SurrogateEvolution(nb201, problem, seed=s)) for s in range(3)])
    # a random nb201 cell has 3 or more conv edges with probability ~0.46
    assert sur < 0.2


def test_kernel_ridge_fits_quadratic_functions() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, size=(150, 8)).astype(float)
    f = lambda v: v @ np.arange(8) + 3 * v[:, 0] * v[:, 1] - 2 * v[:, 2] * v[:, 5]
    model = PolyKernelRidge(alpha=1e-3).fit(x, f(x))
    xt = rng.integers(0, 2, size=(40, 8)).astype(float)
    assert np.abs(model.predict(xt) - f(xt)).max() < 0.05
    # the dual (kernel) form gives the same predictions as the primal shortcut
    z = np.where(model.keep, (xt - model.mean) / model.scale, 0.0)
    dual = ((1 + z @ model.z.T / model.d) ** 2) @ model.coef + model.y_mean
    assert np.allclose(model.predict(xt), dual)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=40))
def test_rank_gauss_is_monotone(values: list[float]) -> None:
    y = np.array(values)
    z = rank_gauss(y)
    assert np.all(np.isfinite(z))
    for i in range(len(y)):
        for j in range(len(y)):
            if y[i] < y[j]:
                assert z[i] < z[j]
            elif y[i] == y[j]:
                assert z[i] == z[j]
    assert math.isclose(float(np.mean(z)), 0.0, abs_tol=1e-9) or len(set(values)) < len(values)
