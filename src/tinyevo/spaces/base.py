"""The search-space protocol and the space registry.

A search space produces genomes and decodes them into :class:`~tinyevo.ir.ArchIR`. It never builds torch modules
and never evaluates anything. Genomes are immutable and hashable; ``str(genome)`` is the canonical string, which
is the dedup key and the storage key, and ``space.parse(str(g)) == g`` for every genome.

Every space supports three initialisations: ``sample`` (random), ``trivial`` (the smallest valid network) and
seeding from given genomes (see :mod:`tinyevo.strategies.init`).

Besides :class:`SearchSpace`, a space may offer optional capabilities, each a small protocol that the code using it
checks with ``isinstance``: :class:`ValidatingSpace` (``validate``), :class:`RepairingSpace` (``repair``),
:class:`NeighbourSpace` (``neighbours``) and :class:`GeneCountingSpace` (``num_genes``). A space composes its
variation from operator objects (``chain``'s :class:`~tinyevo.spaces.chain.InsertLayer` ...; the categorical-gene
operators of :mod:`tinyevo.spaces.genes` for ``nb201`` and ``macro``).
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


# --- optional capabilities: declared here, checked with isinstance where they are used ---------------------------


@runtime_checkable
class ValidatingSpace(Protocol[G]):
    """A space that checks a genome belongs to it (every built-in space: chain, blocks, nb201, macro). Used to
    check genomes made outside the space's own operators (``deepen``'s children, the supernet's, a policy's)."""

    def validate(self, genome: G) -> G:
        """``genome`` if it belongs to this space, else :class:`~tinyevo.errors.InvalidGenomeError`."""
        ...


@runtime_checkable
class RepairingSpace(Protocol[G]):
    """A space that maps an almost-valid genome (an operator's raw output) to the nearest valid one (chain)."""

    def repair(self, genome: G) -> G:
        """The nearest valid genome to ``genome``."""
        ...


@runtime_checkable
class NeighbourSpace(Protocol[G]):
    """A space that lists every genome one edit away (nb201, macro). :func:`tinyevo.run.precheck.
    check_limits_reachable` prices the trivial genome's neighbours too when the space has them."""

    def neighbours(self, genome: G) -> list[G]:
        """Every genome one edit away from ``genome``, in a fixed order."""
        ...


@runtime_checkable
class GeneCountingSpace(Protocol[G]):
    """A space that says how many genes a genome has, for per-gene mutation rates
    (:func:`tinyevo.strategies.operators.gene_count`; without it a dataclass genome's fields are counted)."""

    def num_genes(self, genome: G) -> int:
        """The number of genes of ``genome``."""
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
