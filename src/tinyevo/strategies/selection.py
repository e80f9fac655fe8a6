"""Selection operators: which members become parents, and which members survive.

Every operator works on a sequence of :class:`Individual` (a told trial plus its birth order) and ranks
members with :func:`~tinyevo.strategies.base.rank_key` (constraint-domination for one objective: feasible by
fitness, then infeasible by violation, failed last). Ties are broken by age: the younger member wins, so runs
are deterministic.

Parent selection (``select(population, n, *, problem, rng) -> list[Individual]``, ``n`` draws with
replacement):

* :class:`TournamentSelection` -- best of ``size`` members sampled without replacement (Real et al.).
* :class:`RouletteSelection` -- fitness-proportional.
* :class:`TruncationSelection` -- uniform among the ``top`` best (elitist parent choice, MCUNet's top-k).
* :class:`RandomSelection` -- uniform (no pressure; pair it with a selective survivor rule).

Survivor selection (``survive(population, capacity, *, problem, rng) -> list[Individual]``, returned oldest
first, at most ``capacity`` members):

* :class:`Elitism` -- keep the ``elites`` best whatever their age, fill the rest with the youngest.
* :class:`DiscardWorst` -- remove the worst until ``capacity`` remain ((mu + lambda) truncation).
* :class:`DiscardOldest` -- remove the oldest (aging, regularized evolution).
* :class:`DiscardWorstOldest` -- remove the worst among the oldest ``window`` members (between aging and
  discard-worst).

The objects hold only options (frozen dataclasses), plus, in the parent selections, what they last computed
from a population passed as a *tuple* (the ranking, the roulette weights): a tuple of frozen members cannot
change, and :class:`~tinyevo.strategies.evolution.EvolutionaryStrategy` passes the same tuple until its population
changes, so the deduplicator's retries and a generation's asks do not recompute it. They are usable outside
:class:`~tinyevo.strategies.evolution.EvolutionaryStrategy`, e.g. by the surrogate-assisted strategy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np

from tinyevo.errors import ConfigError
from tinyevo.spaces.base import Genome
from tinyevo.strategies.base import Problem, Trial, fitness, rank_key

T = TypeVar("T")


@dataclass(frozen=True)
class Individual:
    """A population member: the genome, its finished trial and ``birth`` (join order; smaller is older).

    ``rank`` optionally holds :func:`~tinyevo.strategies.base.rank_key` of the trial under the problem the
    population is selected for, computed once when the member joins (a strategy's problem never changes), so
    that selections that run many times per proposal do not recompute it; ``None`` computes it on demand.
    """

    genome: Genome
    trial: Trial
    birth: int
    rank: tuple[int, float, float] | None = field(default=None, compare=False)

    @classmethod
    def ranked(cls, problem: Problem, genome: Genome, trial: Trial, birth: int) -> Individual:
        """A member whose ``rank`` is computed now under ``problem``."""
        return cls(genome=genome, trial=trial, birth=birth, rank=rank_key(problem, trial))


def sort_key(problem: Problem, ind: Individual) -> tuple[int, float, float, int]:
    """Total order of individuals, larger is better: :func:`rank_key`, ties to the younger."""
    rank = ind.rank if ind.rank is not None else rank_key(problem, ind.trial)
    return (*rank, ind.birth)


def member_fitness(problem: Problem, ind: Individual) -> float:
    """:func:`~tinyevo.strategies.base.fitness` of a member (from its ``rank`` when known)."""
    if ind.rank is None:
        return fitness(problem, ind.trial)
    return ind.rank[2] if ind.rank[0] == 2 else -math.inf


def best_first(problem: Problem, population: Sequence[Individual]) -> list[Individual]:
    """The population sorted best first (deterministic)."""
    return sorted(population, key=lambda ind: sort_key(problem, ind), reverse=True)


def _by_birth(population: Sequence[Individual]) -> list[Individual]:
    return sorted(population, key=lambda ind: ind.birth)


def _check_nonempty(population: Sequence[Individual], what: str) -> None:
    if not population:
        raise ConfigError(f"{what} needs a non-empty population")


def per_population(cache: list, population: Sequence[Individual], problem: Problem, compute: Callable[[], T]) -> T:
    """``compute()``, kept in the one-entry ``cache`` while the same tuple ``population`` and ``problem`` come
    back (a list may change in place: it is never cached)."""
    if cache and cache[0][0] is population and cache[0][1] is problem:
        return cache[0][2]
    value = compute()
    if isinstance(population, tuple):
        cache[:] = [(population, problem, value)]
    return value


# --- parent selection ---------------------------------------------------------------------------------------
@runtime_checkable
class ParentSelection(Protocol):
    def select(
        self, population: Sequence[Individual], n: int, *, problem: Problem, rng: np.random.Generator
    ) -> list[Individual]:
        """``n`` parents drawn (with replacement across draws) from a non-empty ``population``."""
        ...


@dataclass(frozen=True)
class TournamentSelection:
    """Each parent is the best of ``size`` members drawn uniformly without replacement (all if fewer)."""

    size: int = 10
    _last: list = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ConfigError(f"tournament size must be >= 1, got {self.size}")

    def select(
        self, population: Sequence[Individual], n: int, *, problem: Problem, rng: np.random.Generator
    ) -> list[Individual]:
        _check_nonempty(population, "tournament selection")
        keys = per_population(self._last, population, problem, lambda: [sort_key(problem, ind) for ind in population])
        k = min(self.size, len(population))
        out = []
        for _ in range(n):
            idx = rng.choice(len(population), size=k, replace=False)
            out.append(population[max((int(i) for i in idx), key=keys.__getitem__)])
        return out


@dataclass(frozen=True)
class RouletteSelection:
    """Fitness-proportional selection on :func:`~tinyevo.strategies.base.fitness`.

    Weights are the fitness values when all finite ones are >= 0, else fitness minus the smallest finite
    fitness (so the worst gets weight 0). Failed and infeasible members (fitness ``-inf``) get weight 0; when
    every weight is 0 the draw is uniform.
    """

    _last: list = field(default_factory=list, init=False, repr=False, compare=False)

    def weights(self, population: Sequence[Individual], *, problem: Problem) -> np.ndarray:
        f = np.array([member_fitness(problem, ind) for ind in population], dtype=np.float64)
        finite = np.isfinite(f)
        w = np.zeros_like(f)
        if finite.any():
            lo = float(f[finite].min())
            w[finite] = f[finite] - min(lo, 0.0)
        total = float(w.sum())
        if not total > 0 or not math.isfinite(total):
            return np.full(len(f), 1.0 / len(f))
        return w / total

    def select(
        self, population: Sequence[Individual], n: int, *, problem: Problem, rng: np.random.Generator
    ) -> list[Individual]:
        _check_nonempty(population, "roulette selection")
        p = per_population(self._last, population, problem, lambda: self.weights(population, problem=problem))
        return [population[int(i)] for i in rng.choice(len(population), size=n, replace=True, p=p)]


@dataclass(frozen=True)
class TruncationSelection:
    """Uniform among the ``top`` best members (all if fewer): elitist parent choice, e.g. MCUNet's top-20."""

    top: int = 20
    _last: list = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.top < 1:
            raise ConfigError(f"truncation selection needs top >= 1, got {self.top}")

    def select(
        self, population: Sequence[Individual], n: int, *, problem: Problem, rng: np.random.Generator
    ) -> list[Individual]:
        _check_nonempty(population, "truncation selection")
        elite = per_population(self._last, population, problem, lambda: best_first(problem, population)[: self.top])
        return [elite[int(i)] for i in rng.integers(0, len(elite), size=n)]


@dataclass(frozen=True)
class RandomSelection:
    """Uniform parent choice (no selection pressure)."""

    def select(
        self, population: Sequence[Individual], n: int, *, problem: Problem, rng: np.random.Generator
    ) -> list[Individual]:
        _check_nonempty(population, "random selection")
        return [population[int(i)] for i in rng.integers(0, len(population), size=n)]


# --- survivor selection -------------------------------------------------------------------------------------
@runtime_checkable
class SurvivorSelection(Protocol):
    def survive(
        self, population: Sequence[Individual], capacity: int, *, problem: Problem, rng: np.random.Generator
    ) -> list[Individual]:
        """At most ``capacity`` members of ``population`` (oldest first)."""
        ...


@dataclass(frozen=True)
class Elitism:
    """Keep the ``elites`` best members whatever their age; fill the remaining places with the youngest.

    ``elites=None`` keeps the ``capacity`` best (plain truncation, same as :class:`DiscardWorst`).
    """

    elites: int | None = None

    def __post_init__(self) -> None:
        if self.elites is not None and self.elites < 0:
            raise ConfigError(f"elitism needs elites >= 0, got {self.elites}")

    def survive(
        self, population: Sequence[Individual], capacity: int, *, problem: Problem, rng: np.random.Generator
    ) -> list[Individual]:
        if len(population) <= capacity:
            return _by_birth(population)
        k = capacity if self.elites is None else min(self.elites, capacity)
        keep = best_first(problem, population)[:k]
        chosen = {id(ind) for ind in keep}
        rest = [ind for ind in sorted(population, key=lambda i: -i.birth) if id(ind) not in chosen]
        keep += rest[: capacity - k]
        return _by_birth(keep)


@dataclass(frozen=True)
class DiscardWorst:
    """Remove the worst members (ties: the oldest goes first) until ``capacity`` remain."""

    def survive(
        self, population: Sequence[Individual], capacity: int, *, problem: Problem, rng: np.random.Generator
    ) -> list[Individual]:
        return _by_birth(best_first(problem, population)[:capacity])


@dataclass(frozen=True)
class DiscardOldest:
    """Aging (regularized evolution): remove the oldest members until ``capacity`` remain."""

    def survive(
        self, population: Sequence[Individual], capacity: int, *, problem: Problem, rng: np.random.Generator
    ) -> list[Individual]:
        ordered = _by_birth(population)
        return ordered[max(0, len(ordered) - capacity):]


@dataclass(frozen=True)
class DiscardWorstOldest:
    """Repeatedly remove the worst among the oldest ``window`` members until ``capacity`` remain.

    ``window`` is ``max(1, round(window_fraction * capacity))``: ``1`` is pure aging, ``capacity + 1`` or
    more is pure discard-worst; in between an old member survives only while it is better than its peers in
    age.
    """

    window_fraction: float = 0.5

    def __post_init__(self) -> None:
        if not self.window_fraction > 0:
            raise ConfigError(f"window_fraction must be > 0, got {self.window_fraction}")

    def survive(
        self, population: Sequence[Individual], capacity: int, *, problem: Problem, rng: np.random.Generator
    ) -> list[Individual]:
        window = max(1, round(self.window_fraction * capacity))
        members = _by_birth(population)
        while len(members) > capacity:
            worst = min(range(min(window, len(members))), key=lambda i: sort_key(problem, members[i]))
            del members[worst]
        return members

