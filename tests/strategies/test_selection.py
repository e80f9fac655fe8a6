"""Semantics of every parent and survivor selection."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategy_fakes import make_population

from tinyevo.errors import ConfigError
from tinyevo.strategies.base import Objective, Problem, Status
from tinyevo.strategies.nsga2 import CrowdedTournament
from tinyevo.strategies.selection import (
    DiscardOldest,
    DiscardWorst,
    DiscardWorstOldest,
    Elitism,
    RandomSelection,
    RouletteSelection,
    TournamentSelection,
    TruncationSelection,
    best_first,
)


def births(pop) -> list[int]:
    return [ind.birth for ind in pop]


# --- survivors ----------------------------------------------------------------------------------------------
def test_aging_removes_the_oldest(acc_problem):
    pop = make_population([9, 1, 5, 7, 3])
    kept = DiscardOldest().survive(pop, 3, problem=acc_problem, rng=np.random.default_rng(0))
    assert births(kept) == [2, 3, 4]  # g0 is the best but the oldest: it goes


def test_discard_worst_removes_the_worst(acc_problem):
    pop = make_population([9, 1, 5, 7, 3])
    kept = DiscardWorst().survive(pop, 3, problem=acc_problem, rng=np.random.default_rng(0))
    assert births(kept) == [0, 2, 3]


def test_discard_worst_removes_the_oldest_of_equal_members(acc_problem):
    pop = make_population([5, 5, 5])
    kept = DiscardWorst().survive(pop, 2, problem=acc_problem, rng=np.random.default_rng(0))
    assert births(kept) == [1, 2]


def test_elitism_keeps_the_best_k_and_fills_with_the_youngest(acc_problem):
    pop = make_population([9, 8, 1, 2, 3, 0])
    kept = Elitism(elites=2).survive(pop, 4, problem=acc_problem, rng=np.random.default_rng(0))
    assert births(kept) == [0, 1, 4, 5]  # best two (old) + the two youngest


def test_elitism_without_k_is_truncation(acc_problem):
    pop = make_population([9, 8, 1, 2, 3, 0])
    rng = np.random.default_rng(0)
    assert births(Elitism().survive(pop, 3, problem=acc_problem, rng=rng)) == [0, 1, 4]


def test_worst_oldest_removes_the_worst_of_the_oldest_window(acc_problem):
    pop = make_population([5, 1, 9, 0, 7])
    # window = round(0.5 * 4) = 2: of the two oldest (5, 1) the worst (g1) goes; g3 (0) is young and stays
    sel = DiscardWorstOldest(window_fraction=0.5)
    kept = sel.survive(pop, 4, problem=acc_problem, rng=np.random.default_rng(0))
    assert births(kept) == [0, 2, 3, 4]


def test_worst_oldest_interpolates_between_aging_and_discard_worst(acc_problem):
    pop = make_population([5, 1, 9, 0, 7])
    rng = np.random.default_rng(0)
    tiny = DiscardWorstOldest(window_fraction=0.01).survive(pop, 3, problem=acc_problem, rng=rng)
    huge = DiscardWorstOldest(window_fraction=10.0).survive(pop, 3, problem=acc_problem, rng=rng)
    assert births(tiny) == births(DiscardOldest().survive(pop, 3, problem=acc_problem, rng=rng))
    assert births(huge) == births(DiscardWorst().survive(pop, 3, problem=acc_problem, rng=rng))


def test_infeasible_and_failed_members_rank_last(acc_problem):
    pop = make_population(
        [0.1, 99, 99, 99],
        statuses=[Status.OK, Status.INFEASIBLE, Status.INFEASIBLE, Status.FAILED],
        violations=[0, 0.5, 0.2, 0],
    )
    assert births(best_first(acc_problem, pop)) == [0, 2, 1, 3]
    kept = DiscardWorst().survive(pop, 2, problem=acc_problem, rng=np.random.default_rng(0))
    assert births(kept) == [0, 2]


SURVIVORS = [DiscardOldest(), DiscardWorst(), Elitism(), Elitism(elites=2), DiscardWorstOldest()]


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.floats(-10, 10), min_size=1, max_size=12), capacity=st.integers(1, 12))
def test_survivors_are_a_subset_of_the_right_size_oldest_first(values, capacity):
    problem = Problem(objectives=(Objective("acc"),))
    pop = make_population(values)
    for sel in SURVIVORS:
        kept = sel.survive(pop, capacity, problem=problem, rng=np.random.default_rng(0))
        assert len(kept) == min(capacity, len(pop))
        assert births(kept) == sorted(set(births(kept)))
        assert set(births(kept)) <= set(births(pop))
    # truncation never keeps a member worse than one it drops
    kept = DiscardWorst().survive(pop, capacity, problem=problem, rng=np.random.default_rng(0))
    dropped = [v for i, v in enumerate(values) if i not in births(kept)]
    if dropped:
        assert min(values[i] for i in births(kept)) >= max(dropped)


# --- parents ------------------------------------------------------------------------------------------------
def test_tournament_picks_the_best_of_its_sample(acc_problem):
    values = [3, 8, 1, 6, 4, 7, 2, 5]
    pop = make_population(values)
    sel = TournamentSelection(size=3)
    winners = sel.select(pop, 50, problem=acc_problem, rng=np.random.default_rng(5))
    replay_rng = np.random.default_rng(5)
    for w in winners:
        sample = replay_rng.choice(len(pop), size=3, replace=False)
        assert w.birth == max(sample, key=lambda i: values[i])


def test_tournament_of_the_whole_population_always_picks_the_best(acc_problem):
    pop = make_population([3, 8, 1, 6])
    winners = TournamentSelection(size=10).select(pop, 20, problem=acc_problem, rng=np.random.default_rng(0))
    assert {w.birth for w in winners} == {1}


def test_tournament_of_one_is_uniform(acc_problem):
    pop = make_population([3, 8, 1, 6])
    winners = TournamentSelection(size=1).select(pop, 400, problem=acc_problem, rng=np.random.default_rng(0))
    assert {w.birth for w in winners} == {0, 1, 2, 3}


def test_roulette_is_fitness_proportional(acc_problem):
    pop = make_population([1, 2, 3, 4])
    n = 20000
    picks = RouletteSelection().select(pop, n, problem=acc_problem, rng=np.random.default_rng(0))
    freq = np.bincount(births(picks), minlength=4) / n
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.3, 0.4], atol=0.015)


def test_roulette_shifts_negative_fitness_and_ignores_infeasible(acc_problem):
    pop = make_population([-3, -1, 1, 5], statuses=[Status.OK, Status.OK, Status.OK, Status.INFEASIBLE])
    w = RouletteSelection().weights(pop, problem=acc_problem)
    np.testing.assert_allclose(w, [0.0, 2 / 6, 4 / 6, 0.0])


def test_roulette_is_uniform_when_all_equal(acc_problem):
    w = RouletteSelection().weights(make_population([2, 2, 2]), problem=acc_problem)
    np.testing.assert_allclose(w, [1 / 3] * 3)


def test_truncation_picks_only_among_the_top(acc_problem):
    pop = make_population([3, 8, 1, 6, 7, 0])
    picks = TruncationSelection(top=3).select(pop, 300, problem=acc_problem, rng=np.random.default_rng(0))
    assert {p.birth for p in picks} == {1, 3, 4}


def test_random_selection_reaches_everyone(acc_problem):
    pop = make_population([3, 8, 1, 6])
    picks = RandomSelection().select(pop, 200, problem=acc_problem, rng=np.random.default_rng(0))
    assert {p.birth for p in picks} == {0, 1, 2, 3}


PARENTS = [TournamentSelection(), RouletteSelection(), TruncationSelection(), RandomSelection()]


@pytest.mark.parametrize("sel", PARENTS)
def test_parent_selection_on_an_empty_population_is_a_config_error(sel, acc_problem):
    with pytest.raises(ConfigError):
        sel.select([], 1, problem=acc_problem, rng=np.random.default_rng(0))


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError):
        TournamentSelection(size=0)
    with pytest.raises(ConfigError):
        TruncationSelection(top=0)
    with pytest.raises(ConfigError):
        Elitism(elites=-1)
    with pytest.raises(ConfigError):
        DiscardWorstOldest(window_fraction=0)


@pytest.mark.parametrize("make", [lambda: TournamentSelection(size=3), RouletteSelection,
                                  lambda: TruncationSelection(top=2), lambda: CrowdedTournament(size=2)])
def test_a_parent_selection_reused_on_new_tuples_picks_as_a_fresh_one(make, acc_problem):
    """The ranking / weights a selection keeps for a tuple population are never served for another population or
    problem: each pick equals the pick of a fresh selection object given the same draw."""
    minimise = Problem(objectives=(Objective("acc", "min"),))
    reused = make()
    populations = [tuple(make_population(v)) for v in ([3, 8, 1, 6, 4], [9, 2, 7, 1, 5], [1, 1, 2, 9, 3])]
    for seed, (pop, problem) in enumerate([(populations[0], acc_problem), (populations[0], acc_problem),
                                           (populations[1], acc_problem), (populations[1], minimise),
                                           (populations[2], minimise), (list(populations[0]), acc_problem)]):
        got = reused.select(pop, 30, problem=problem, rng=np.random.default_rng(seed))
        want = make().select(list(pop), 30, problem=problem, rng=np.random.default_rng(seed))
        assert [w.birth for w in got] == [w.birth for w in want]
