"""The search-space protocol and the space registry.

A search space produces genomes and decodes them into :class:`~tinyevo.ir.ArchIR`. It never builds torch modules
and never evaluates anything. Genomes are immutable and hashable; ``str(genome)`` is the canonical string, which
is the dedup key and the storage key, and ``space.parse(str(g)) == g`` for every genome.

Every space supports three initialisations: ``sample`` (random), ``trivial`` (the smallest valid network) and
seeding from given genomes (see :mod:`tinyevo.strategies.init`).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np

from tinyevo.ir import ArchIR
from tinyevo.registry import Registry


@runtime_checkable
class Genome(Hashable, Protocol):
    """An immutable, hashable point of a search space whose ``str()`` is its canonical, round-trippable form."""

    def __str__(self) -> str: ...


G = TypeVar("G", bound=Genome)


@runtime_checkable
class SearchSpace(Protocol[G]):
    """What every search space provides. ``rng`` is always an explicit ``numpy.random.Generator``."""

    name: str

    def sample(self, rng: np.random.Generator) -> G:
        """A uniformly random (as far as the space allows) valid genome."""
        ...

    def trivial(self) -> G:
        """The smallest valid genome: a start with little human bias."""
        ...

    def mutate(self, genome: G, rng: np.random.Generator) -> G:
        """A valid genome that differs from ``genome`` by one small random edit."""
        ...

    def crossover(self, a: G, b: G, rng: np.random.Generator) -> G:
        """A valid child that mixes the genes of ``a`` and ``b``."""
        ...

    def decode(self, genome: G) -> ArchIR:
        """The architecture of ``genome`` (validated IR)."""
        ...

    def parse(self, text: str) -> G:
        """Inverse of ``str(genome)``; raises :class:`~tinyevo.errors.InvalidGenomeError` on bad input."""
        ...

    def features(self, genome: G) -> np.ndarray:
        """A fixed-length float vector describing ``genome`` (input of surrogate predictors)."""
        ...


SPACES: Registry[SearchSpace] = Registry("search space")


def create_space(name: str, **options: object) -> SearchSpace:
    """Instantiate the registered space ``name`` (``options`` are the space's keyword-only arguments)."""
    return SPACES.create(name, **options)
