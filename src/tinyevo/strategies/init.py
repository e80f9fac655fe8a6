"""Initial populations, built only from space methods.

An initialisation proposes the ``index``-th member of the initial population, given the genomes it proposed
before (``previous``); the strategy passes its :class:`~tinyevo.strategies.operators.Deduplicator` so that no
genome is proposed twice (bounded retries, then random samples, then
:class:`~tinyevo.errors.SearchExhaustedError`).

* :class:`RandomInit` -- ``space.sample``.
* :class:`TrivialInit` -- ``space.trivial()`` first, then mutations of a uniformly chosen earlier member (a
  random tree grown from the trivial network: little human bias, small networks first).
* :class:`RichInit` -- the given seed genome strings (parsed by ``space.parse``) first, then mutations of a
  uniformly chosen seed or earlier member.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from tinyevo.errors import ConfigError
from tinyevo.spaces.base import Genome, SearchSpace
from tinyevo.strategies.base import Candidate
from tinyevo.strategies.operators import Deduplicator, Mutation


@runtime_checkable
class Initialization(Protocol):
    def propose(
        self,
        space: SearchSpace,
        *,
        index: int,
        previous: Sequence[Genome],
        rng: np.random.Generator,
        seen: Deduplicator,
    ) -> Candidate:
        """The ``index``-th initial candidate (new to ``seen``, and recorded there)."""
        ...


@dataclass(frozen=True)
class RandomInit:
    """Uniform random samples of the space."""

    def propose(
        self,
        space: SearchSpace,
        *,
        index: int,
        previous: Sequence[Genome],
        rng: np.random.Generator,
        seen: Deduplicator,
    ) -> Candidate:
        return seen.propose(None, space=space, rng=rng)


def _grow(
    space: SearchSpace,
    roots: Sequence[Genome],
    previous: Sequence[Genome],
    mutation: Mutation,
    rng: np.random.Generator,
    seen: Deduplicator,
) -> Candidate:
    pool = list(roots) + list(previous)

    def make() -> Candidate:
        parent = pool[int(rng.integers(len(pool)))]
        child = mutation.mutate(space, parent, rng)
        return Candidate(genome=child, parents=(str(parent),), origin="mutation")

    # re-drawn up to max_retries times, not mutated further: each member stays one mutation from its parent
    return seen.propose(make, space=space, rng=rng, breeds=seen.max_retries)


@dataclass(frozen=True)
class TrivialInit:
    """``space.trivial()``, then mutations of earlier members (see module docstring)."""

    mutation: Mutation = Mutation()

    def propose(
        self,
        space: SearchSpace,
        *,
        index: int,
        previous: Sequence[Genome],
        rng: np.random.Generator,
        seen: Deduplicator,
    ) -> Candidate:
        root = space.trivial()
        if root not in seen:
            seen.add(root)
            return Candidate(genome=root, origin="trivial")
        return _grow(space, [root], previous, self.mutation, rng, seen)


@dataclass(frozen=True)
class RichInit:
    """The ``seeds`` (genome strings) first, then mutations of seeds and earlier members."""

    seeds: tuple[str, ...]
    mutation: Mutation = Mutation()

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ConfigError("RichInit needs at least one seed genome string")
        object.__setattr__(self, "seeds", tuple(self.seeds))

    def propose(
        self,
        space: SearchSpace,
        *,
        index: int,
        previous: Sequence[Genome],
        rng: np.random.Generator,
        seen: Deduplicator,
    ) -> Candidate:
        roots = [space.parse(s) for s in self.seeds]
        for g in roots:
            if g not in seen:
                seen.add(g)
                return Candidate(genome=g, origin="seed")
        return _grow(space, roots, previous, self.mutation, rng, seen)
