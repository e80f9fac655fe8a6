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


MAX_LAYERS = 256
"""Bounds on space options (a network for a microcontroller is far smaller): layers of a network, ..."""
MAX_CHANNELS = 8192  # ... channels (or units) of a layer, ...
MAX_KERNEL = 31  # ... a kernel, pool or stride size, ...
MAX_CLASSES = 100_000  # ... output classes ...
MAX_INPUT = 4096  # ... and an input or resolution side


def check_bound(name: str, values: object, upper: int | float) -> None:
    """A :class:`~tinyevo.errors.ConfigError` naming the bound when ``values`` (a number or several) exceed
    ``upper`` -- so that a typo like ``max_layers = 1000000`` is refused instead of sampling 500k-layer networks."""
    from tinyevo.errors import ConfigError

    items = values if isinstance(values, (tuple, list)) else (values,)
    for v in items:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v > upper:
            raise ConfigError(f"space option {name} must be at most {upper}, got {v}")


def create_space(name: str, **options: object) -> SearchSpace:
    """Instantiate the registered space ``name`` (``options`` are the space's keyword-only arguments)."""
    return SPACES.create(name, **options)
