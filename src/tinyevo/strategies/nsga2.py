"""NSGA-II (Deb et al., 2002): Pareto rank and crowding distance, with constraint-domination.

Objectives are turned into a matrix to *maximise* with :meth:`Objective.score`. Constraints use Deb's
constraint-domination through one ordinal violation ``cv`` per member (0 = feasible):

* evaluated trials: their soft-constraint violation;
* infeasible trials (a hard constraint failed; never evaluated): worse than every evaluated one, ordered by
  violation;
* failed trials: worst.

``i`` constraint-dominates ``j`` when ``cv_i < cv_j``, or both are feasible and ``i`` Pareto-dominates ``j``
(no objective worse, one better; :mod:`tinyevo.pareto`). The selection objects fit
:class:`~tinyevo.strategies.evolution.EvolutionaryStrategy`: :class:`RankAndCrowding` (survivors) and
:class:`CrowdedTournament` (parents). :func:`nsga2` composes them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tinyevo.errors import ConfigError
from tinyevo.pareto import non_dominated_sort
from tinyevo.spaces.base import SearchSpace
from tinyevo.strategies.base import Problem, Status, Trial
from tinyevo.strategies.evolution import EvolutionaryStrategy
from tinyevo.strategies.init import Initialization, RandomInit
from tinyevo.strategies.operators import Mutation, Variation
from tinyevo.strategies.selection import Individual, per_population


def objective_matrix(problem: Problem, trials: Sequence[Trial]) -> np.ndarray:
    """``(n, m)`` objective scores to maximise; ``-inf`` for trials that were not evaluated."""
    out = np.full((len(trials), len(problem.objectives)), -np.inf)
    for i, t in enumerate(trials):
        if t.status is Status.OK:
            out[i] = [o.score(t.metrics) for o in problem.objectives]
    return out


def violation_order(problem: Problem, trials: Sequence[Trial]) -> np.ndarray:
    """Ordinal constraint violation (0 = feasible; larger is worse), see the module docstring."""
    keys = []
    for t in trials:
        if t.status is Status.OK:
            keys.append((0, problem.soft_violation(t.metrics)))
        elif t.status is Status.INFEASIBLE:
            keys.append((1, t.violation))
        else:
            keys.append((2, math.inf))
    distinct = sorted(set(keys))
    if distinct and distinct[0] != (0, 0.0):
        distinct.insert(0, (0, 0.0))  # ordinal 0 is reserved for feasible members
    index = {k: i for i, k in enumerate(distinct)}
    return np.array([index[k] for k in keys], dtype=np.float64)


def crowding_distance(objectives: np.ndarray) -> np.ndarray:
    """Crowding distance of each member of one front; boundary members get ``inf``.

    An objective with non-finite values in the front, or with zero range, contributes nothing.
    """
    f = np.asarray(objectives, dtype=np.float64)
    n, m = f.shape
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for k in range(m):
        col = f[:, k]
        if not np.all(np.isfinite(col)):
            continue
        order = np.argsort(col, kind="stable")
        lo, hi = col[order[0]], col[order[-1]]
        dist[order[0]] = dist[order[-1]] = np.inf
        if hi - lo <= 0:
            continue
        dist[order[1:-1]] += (col[order[2:]] - col[order[:-2]]) / (hi - lo)
    return dist


def rank_and_crowding(problem: Problem, population: Sequence[Individual]) -> tuple[np.ndarray, np.ndarray]:
    """Front index (0 = best) and crowding distance of every member."""
    trials = [ind.trial for ind in population]
    f = objective_matrix(problem, trials)
    rank = np.zeros(len(population), dtype=np.int64)
    crowd = np.zeros(len(population))
    for r, front in enumerate(non_dominated_sort(f, violation_order(problem, trials))):
        rank[front] = r
        crowd[front] = crowding_distance(f[front])
    return rank, crowd


@dataclass(frozen=True)
class RankAndCrowding:
    """NSGA-II survivors: whole fronts best first; the last front that fits is cut by crowding distance."""

    def survive(
        self, population: Sequence[Individual], capacity: int, *, problem: Problem, rng: np.random.Generator
    ) -> list[Individual]:
        if len(population) <= capacity:
            return sorted(population, key=lambda ind: ind.birth)
        rank, crowd = rank_and_crowding(problem, population)
        order = sorted(range(len(population)), key=lambda i: (rank[i], -crowd[i], -population[i].birth))
        return sorted((population[i] for i in order[:capacity]), key=lambda ind: ind.birth)


@dataclass(frozen=True)
class CrowdedTournament:
    """NSGA-II parents: best of ``size`` by (lower front, larger crowding distance, younger).

    The fronts and crowding distances of the last population tuple seen are kept (the same tuple is
    passed on each of the deduplicator's breeding retries and a generation's asks; a non-dominated sort per
    retry made ``nsga2`` cost 47 ms per trial late in an NB201 search)."""

    size: int = 2
    _last: list = field(default_factory=list, init=False, repr=False, compare=False)  # see per_population

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ConfigError(f"tournament size must be >= 1, got {self.size}")

    def select(
        self, population: Sequence[Individual], n: int, *, problem: Problem, rng: np.random.Generator
    ) -> list[Individual]:
        if not population:
            raise ConfigError("crowded tournament selection needs a non-empty population")
        rank, crowd = per_population(self._last, population, problem, lambda: rank_and_crowding(problem, population))
        k = min(self.size, len(population))
        out = []
        for _ in range(n):
            idx = [int(i) for i in rng.choice(len(population), size=k, replace=False)]
            best = min(idx, key=lambda i: (rank[i], -crowd[i], -population[i].birth))
            out.append(population[best])
        return out


def nsga2(
    space: SearchSpace,
    problem: Problem,
    *,
    seed: int = 0,
    population_size: int = 50,
    initialization: Initialization = RandomInit(),
    variation: Variation = Variation(crossover_prob=0.9, mutation=Mutation(), mutate_crossover_children=True),
    max_generations: int | None = None,
    tournament_size: int = 2,
    breeds: int = 1,
) -> EvolutionaryStrategy:
    """NSGA-II as an :class:`EvolutionaryStrategy`: generations of ``population_size`` children, parents from a
    crowded tournament of ``tournament_size``."""
    return EvolutionaryStrategy(
        space, problem, population_size=population_size, offspring_per_generation=population_size,
        initialization=initialization, parent_selection=CrowdedTournament(size=tournament_size),
        survivor_selection=RankAndCrowding(), variation=variation, max_generations=max_generations, breeds=breeds,
        seed=seed,
    )
