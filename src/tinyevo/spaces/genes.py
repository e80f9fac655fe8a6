"""Variation operators on fixed-length categorical genes, shared by the spaces whose genome is a tuple of
choices (``nb201``: an operation per cell edge; ``macro``: a block choice per layer), as ``chain`` composes its own
operator objects (:class:`~tinyevo.spaces.chain.InsertLayer`, ...).

``choices[i]`` lists the values gene ``i`` may take. Each operator draws its random numbers in a fixed order from
the given ``numpy.random.Generator``, so a space that uses it is deterministic given its seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ChangeOneGene:
    """Mutation: one gene, chosen uniformly, takes another of its values, chosen uniformly."""

    def __call__(self, genes: tuple[Any, ...], choices: Sequence[Sequence[Any]],
                 rng: np.random.Generator) -> tuple[Any, ...]:
        i = int(rng.integers(len(genes)))
        others = [c for c in choices[i] if c != genes[i]]
        if not others:
            return genes
        return genes[:i] + (others[int(rng.integers(len(others)))],) + genes[i + 1:]


@dataclass(frozen=True)
class UniformCrossover:
    """Crossover: each gene from ``a`` or ``b`` with probability ``1/2``."""

    def __call__(self, a: tuple[Any, ...], b: tuple[Any, ...], rng: np.random.Generator) -> tuple[Any, ...]:
        mask = rng.random(len(a)) < 0.5
        return tuple(x if m else y for x, y, m in zip(a, b, mask, strict=True))


def single_edits(genes: tuple[Any, ...], choices: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Every gene tuple one gene-change away from ``genes`` (gene by gene, values in ``choices`` order)."""
    return [genes[:i] + (c,) + genes[i + 1:] for i, cur in enumerate(genes) for c in choices[i] if c != cur]
