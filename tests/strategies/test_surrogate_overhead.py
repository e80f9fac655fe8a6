"""surrogate-evolution at many trials: bounded training sets, refits every few trials, same asks by seed, replay.

No timing here (the benchmark ``benchmarks/strategy_overhead.py`` measures time); these tests check the bounds
that keep the per-trial cost flat, against oracles computed in the test.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyevo.spaces import create_space
from tinyevo.strategies.base import Candidate, Constraint, Objective, Problem, Status, replay
from tinyevo.strategies.loop import run_search
from tinyevo.strategies.selection import Individual, sort_key
from tinyevo.strategies.surrogate import PolyKernelRidge, SurrogateEvolution, _Entry, _Pool, _TopList
from tinyevo.trial import Trial

def objective(space, *, seed: int = 0):
    """Synthetic accuracy (random linear + pairwise terms of the features), a positive 'size' cost metric and
    the problem with a hard ``size`` limit at the median size of random genomes (so about half violate it)."""
    f0 = np.asarray(space.features(space.trivial()), dtype=np.float64)
    rng = np.random.default_rng(seed)
    w, q = rng.normal(size=f0.size), rng.normal(size=(f0.size, f0.size)) / f0.size
    u = rng.uniform(0.5, 2.0, size=f0.size)

    def evaluate(genome) -> dict[str, float]:
        f = np.asarray(space.features(genome), dtype=np.float64)
        return {"acc": float(f @ w + f @ q @ f)}

    def cost(genome) -> dict[str, float]:
        return {"size": 1.0 + float(np.abs(np.asarray(space.features(genome), dtype=np.float64)) @ u)}

    sizes = [cost(space.sample(rng))["size"] for _ in range(101)]
    problem = Problem((Objective("acc"),), (Constraint("size", upper=float(np.median(sizes))),))
    return evaluate, cost, problem


@dataclass
class RecordingRidge:
    """The default predictor, recording the training rows and targets of every fit."""

    inner: PolyKernelRidge = field(default_factory=PolyKernelRidge)
    fits: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    def fit(self, x: np.ndarray, y: np.ndarray):
        self.fits.append((np.array(x), np.array(y)))
        return self.inner.fit(x, y)


def test_toplist_keeps_the_best_in_order() -> None:
    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.one_of(st.integers(-5, 5).map(float), st.just(float("nan"))), max_size=60),
           st.integers(1, 12))
    def check(scores: list[float], size: int) -> None:
        top = _TopList(size)
        for i, s in enumerate(scores):
            top.offer(s, i)
        as_num = [-np.inf if np.isnan(s) else s for s in scores]
        oracle = sorted(range(len(scores)), key=lambda i: (-as_num[i], i))[:size]
        assert top.indices() == oracle

    check()


def test_fits_use_a_bounded_window_and_keep_the_best_half() -> None:
    space = create_space("nb201", channels=8, cells_per_stage=1)
    evaluate, cost, problem = objective(space)
    pred = RecordingRidge()
    s = SurrogateEvolution(space, problem, seed=0, max_train=30, predictor=pred)
    trials = run_search(s, problem, evaluate, budget=150, cost=cost).trials
    assert len(trials) >= 150 and pred.fits
    assert max(len(x) for x, _ in pred.fits) == 30  # bounded, and the bound is reached
    # the last fitness fit: its rows include the features of the 15 best evaluated trials (oracle: sort all)
    ok = [t for t in trials if t.status is Status.OK]
    best = sorted(ok, key=lambda t: -t.metrics["acc"])[:15]
    fitness_fits = [x for x, y in pred.fits if np.isclose(y.mean(), 0.0)]  # rank-gauss targets have mean 0
    last = fitness_fits[-1]
    for t in best:
        f = np.asarray(space.features(space.parse(t.genome)), dtype=np.float64)
        assert np.any(np.all(np.isclose(last, f), axis=1)), t.genome


def test_no_constraint_model_while_the_bound_never_bites() -> None:
    space = create_space("nb201", channels=8, cells_per_stage=1)
    evaluate, cost, _ = objective(space)
    loose = Problem((Objective("acc"),), (Constraint("size", upper=1e9),))
    pred = RecordingRidge()
    run_search(SurrogateEvolution(space, loose, seed=0, predictor=pred), loose, evaluate, budget=60, cost=cost)
    # only fitness fits (rank-gauss targets, mean 0); a 'size' model would have log-size targets (mean > 0)
    assert pred.fits and all(np.isclose(y.mean(), 0.0) for _, y in pred.fits)


def test_models_are_refitted_every_few_trials_not_on_every_ask() -> None:
    space = create_space("nb201", channels=8, cells_per_stage=1)
    evaluate, cost, problem = objective(space)
    lazy, eager = RecordingRidge(), RecordingRidge()
    run_search(SurrogateEvolution(space, problem, seed=0, max_train=40, refit_fraction=0.25, predictor=lazy),
               problem, evaluate, budget=200, cost=cost)
    run_search(SurrogateEvolution(space, problem, seed=0, max_train=40, refit_fraction=0.0, predictor=eager),
               problem, evaluate, budget=200, cost=cost)
    # at the window of 40 rows a refit is due after 10 new trials: about 4x fewer fits than refitting per ask
    assert 0 < len(lazy.fits) < len(eager.fits) / 2


def test_same_seed_same_asks_with_constraints_past_the_window() -> None:
    space = create_space("chain")
    evaluate, cost, problem = objective(space)

    def asks(seed: int) -> list[str]:
        s = SurrogateEvolution(space, problem, seed=seed, max_train=24)
        return [t.genome for t in run_search(s, problem, evaluate, budget=120, cost=cost).trials]

    a, b, c = asks(5), asks(5), asks(6)
    assert a == b and a != c
    assert len(set(a)) == len(a)


def test_replay_rebuilds_state_past_the_window() -> None:
    space = create_space("chain")
    evaluate, cost, problem = objective(space)
    first = SurrogateEvolution(space, problem, seed=2, max_train=24)
    trials = run_search(first, problem, evaluate, budget=100, cost=cost).trials
    assert any(t.status is Status.INFEASIBLE for t in trials)  # the constraint models are in play
    again = SurrogateEvolution(space, problem, seed=2, max_train=24)
    replay(again, [(Candidate(space.parse(t.genome)), t) for t in trials])
    for _ in range(5):
        a, b = first.ask(), again.ask()
        assert str(a.genome) == str(b.genome)
        t = Trial(len(trials), str(a.genome), Status.OK, {**evaluate(a.genome), **cost(a.genome)})
        first.tell(a, t)
        again.tell(b, t)


def test_member_rank_cache_matches_rank_key() -> None:
    problem = Problem((Objective("acc"),), (Constraint("size", upper=1.0, hard=False),))
    trials = [
        Trial(0, "a", Status.OK, {"acc": 0.5, "size": 2.0}),
        Trial(1, "b", Status.OK, {"acc": 0.4, "size": 0.5}),
        Trial(2, "c", Status.INFEASIBLE, {"size": 9.0}, violation=8.0),
        Trial(3, "d", Status.FAILED, {}),
    ]
    for i, t in enumerate(trials):
        plain = Individual(genome=t.genome, trial=t, birth=i)
        ranked = Individual.ranked(problem, t.genome, t, i)
        assert ranked.rank is not None and sort_key(problem, ranked) == sort_key(problem, plain)
        assert ranked == plain  # the cache takes no part in equality


def test_stored_features_grow_with_the_told_trials_only() -> None:
    """The candidates bred into the pool (many per trial) carry their own features: the feature bank holds one
    row per told genome, the pool stays within max_pool, and nothing asked is left behind once told."""
    space = create_space("chain")
    evaluate, cost, problem = objective(space)
    s = SurrogateEvolution(space, problem, seed=1, max_pool=300, patience=2)  # stagnant often: many samples
    trials = run_search(s, problem, evaluate, budget=150, cost=cost).trials
    assert len(s._bank.rows) == len({t.genome for t in trials}) == len(trials)
    assert len(s._pool) <= 300 and not s._asked
    for t in trials[-5:]:  # a told genome's row holds its own features (oracle: the space)
        row = s._bank.rows[t.genome]
        assert np.allclose(s._bank.matrix([row])[0], space.features(space.parse(t.genome)))


@settings(max_examples=40, deadline=None)
@given(ops=st.lists(st.tuples(st.booleans(), st.integers(0, 60)), min_size=1, max_size=1500))
def test_the_pool_keeps_a_dicts_order_and_each_candidates_features(ops):
    """Adds and removals (in bursts that trigger the growth and the compaction of its matrix): the pool iterates
    like a dict given the same operations, and each row holds its candidate's features."""
    pool, oracle = _Pool(3), {}
    for add, k in ops:
        key = f"g{k}"
        if add and key not in oracle:
            e = _Entry(key, (), "random", np.full(4, float(k)))
            pool.add(key, e)
            oracle[key] = e
        elif not add:
            assert pool.pop(key) is oracle.pop(key, None)
    rows = pool.rows()
    assert list(pool) == list(oracle) == [pool.key(int(r)) for r in rows]
    assert len(pool) == len(oracle) and all(k in pool for k in oracle)
    for r in rows:
        assert np.array_equal(pool.x[r], oracle[pool.key(int(r))].x)


def test_the_pool_is_compacted_when_most_rows_were_removed():
    pool = _Pool(1)
    for i in range(1000):
        pool.add(f"g{i}", _Entry(f"g{i}", (), "random", np.full(2, float(i))))
    for i in range(0, 1000, 4):
        pool.pop(f"g{i + 1}"), pool.pop(f"g{i + 2}"), pool.pop(f"g{i + 3}")
    rows = pool.rows()
    assert rows.tolist() == list(range(250))  # compacted, in insertion order
    assert [pool.key(int(r)) for r in rows] == [f"g{i}" for i in range(0, 1000, 4)]
    assert pool.x[rows, 0].tolist() == [float(i) for i in range(0, 1000, 4)]
