"""NSGA-II: non-dominated sorting, crowding distance, constraint-domination, survivors and parents."""

from __future__ import annotations

import numpy as np
import pytest

from tinyevo.pareto import dominance_matrix, non_dominated_sort, pareto_front
from tinyevo.strategies.base import Constraint, Objective, Problem, Status, Trial
from tinyevo.strategies.nsga2 import (
    CrowdedTournament,
    RankAndCrowding,
    crowding_distance,
    objective_matrix,
    violation_order,
)
from tinyevo.strategies.selection import Individual

TWO = Problem(objectives=(Objective("a"), Objective("b")))


def as_sets(fronts):
    return [set(map(int, f)) for f in fronts]


def population(points, statuses=None, violations=None, problem=TWO):
    out = []
    for i, (a, b) in enumerate(points):
        status = Status.OK if statuses is None else statuses[i]
        t = Trial(number=i, genome=f"g{i}", status=status, metrics={"a": a, "b": b},
                  violation=0.0 if violations is None else violations[i])
        out.append(Individual(genome=f"g{i}", trial=t, birth=i))
    return out


def test_non_dominated_sort_on_hand_made_fronts():
    f = np.array([[4, 1], [3, 3], [1, 4], [2, 2], [3, 1], [1, 1]], dtype=float)
    assert as_sets(non_dominated_sort(f)) == [{0, 1, 2}, {3, 4}, {5}]


def test_equal_points_share_a_front():
    f = np.array([[1, 1], [1, 1], [0, 0]], dtype=float)
    assert as_sets(non_dominated_sort(f)) == [{0, 1}, {2}]


def test_crowding_distance_on_hand_made_fronts():
    front = np.array([[4, 1], [3, 3], [1, 4]], float)
    np.testing.assert_allclose(crowding_distance(front), [np.inf, 2.0, np.inf])
    line = np.array([[0, 3], [1, 2], [2, 1], [3, 0]], float)
    np.testing.assert_allclose(crowding_distance(line), [np.inf, 4 / 3, 4 / 3, np.inf])
    assert np.all(np.isinf(crowding_distance(np.array([[1, 2], [2, 1]], float))))


def test_constraint_domination():
    f = np.array([[10, 10], [0, 0], [5, 5], [9, 9], [8, 8]], float)
    cv = np.array([1, 0, 2, 1, 0], float)
    d = dominance_matrix(f, cv)
    assert d[1, 0] and not d[0, 1]  # feasible beats infeasible whatever the objectives
    assert d[0, 2] and not d[2, 0]  # smaller violation beats larger
    assert not d[0, 3] and not d[3, 0]  # equal violation: neither, even though 0 is better on both
    assert d[4, 1] and not d[1, 4]  # both feasible: Pareto
    assert as_sets(non_dominated_sort(f, cv)) == [{4}, {1}, {0, 3}, {2}]


def test_violation_order_ranks_feasible_soft_hard_failed():
    problem = Problem(objectives=(Objective("a"),), constraints=(Constraint("b", upper=1.0, hard=False),))
    trials = [
        Trial(0, "g0", Status.OK, {"a": 1, "b": 0.5}),
        Trial(1, "g1", Status.OK, {"a": 1, "b": 2.0}),  # soft violation 1.0
        Trial(2, "g2", Status.INFEASIBLE, {"b": 0}, violation=0.1),
        Trial(3, "g3", Status.INFEASIBLE, {"b": 0}, violation=0.3),
        Trial(4, "g4", Status.FAILED, {}),
    ]
    order = violation_order(problem, trials)
    assert order[0] == 0 and list(np.argsort(order)) == [0, 1, 2, 3, 4]
    assert len(set(order)) == 5
    assert np.isneginf(objective_matrix(problem, trials)[2:]).all()


def test_survivors_keep_whole_fronts_then_cut_by_crowding():
    pts = [(10, 1), (6, 6), (1, 10), (5, 0), (4.9, 0.2), (0, 5)]
    kept = RankAndCrowding().survive(population(pts), 5, problem=TWO, rng=np.random.default_rng(0))
    assert [ind.birth for ind in kept] == [0, 1, 2, 3, 5]  # the crowded middle (4.9, 0.2) goes


def test_survivors_prefer_feasible_members():
    pts = [(100, 100), (1, 1), (2, 0), (50, 50)]
    statuses = [Status.INFEASIBLE, Status.OK, Status.OK, Status.FAILED]
    pop = population(pts, statuses=statuses, violations=[0.2, 0, 0, 0])
    kept = RankAndCrowding().survive(pop, 2, problem=TWO, rng=np.random.default_rng(0))
    assert [ind.birth for ind in kept] == [1, 2]


def test_crowded_tournament_prefers_lower_rank_then_crowding():
    pts = [(4, 1), (3, 3), (1, 4), (2, 2), (3, 1), (1, 1)]
    pop = population(pts)
    picks = CrowdedTournament(size=6).select(pop, 20, problem=TWO, rng=np.random.default_rng(0))
    assert {p.birth for p in picks} == {2}  # front 0, infinite crowding, youngest of the boundary pair
    picks = CrowdedTournament(size=2).select(pop, 300, problem=TWO, rng=np.random.default_rng(0))
    counts = np.bincount([p.birth for p in picks], minlength=6)
    assert counts[5] == 0  # the last front never wins a binary tournament of distinct members
    assert counts[:3].sum() > counts[3:].sum()


def test_pareto_front_excludes_infeasible_and_dominated():
    trials = [
        Trial(0, "g0", Status.OK, {"a": 1, "b": 5}),
        Trial(1, "g1", Status.OK, {"a": 5, "b": 1}),
        Trial(2, "g2", Status.OK, {"a": 1, "b": 1}),
        Trial(3, "g3", Status.INFEASIBLE, {"a": 9, "b": 9}, violation=1.0),
    ]
    assert [t.number for t in pareto_front(trials, TWO.objectives)] == [1, 0]  # best first objective first
    assert pareto_front(trials[3:], TWO.objectives) == []


@pytest.mark.parametrize("n", [1, 2, 7])
def test_sorting_covers_every_member_once(n):
    f = np.random.default_rng(n).normal(size=(n, 3))
    fronts = non_dominated_sort(f)
    assert sorted(int(i) for fr in fronts for i in fr) == list(range(n))
    d = dominance_matrix(f)
    for fr_a, fr_b in zip(fronts, fronts[1:], strict=False):  # dominated by an earlier front
        assert all(d[fr_a, j].any() for j in fr_b)
