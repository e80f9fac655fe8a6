"""Variation operators (mutation, crossover) and duplicate-free proposal.

All operators act through the space's own ``mutate`` / ``crossover`` methods, so they work with every space.

**Per-gene mutation rate.** A space's ``mutate`` makes one small random edit. :class:`Mutation` with
``rate=p`` applies ``k = max(1, Binomial(n, p))`` successive edits, where ``n`` is the number of genes of the
genome (:func:`gene_count`); the expected number of changed genes is then about ``n * p`` as in a per-gene
mutation probability ``p``, but never zero (a child must differ from its parent). Successive edits may touch
the same gene. ``rate=None`` means exactly one edit.

**Offspring counts.** :meth:`Variation.kinds` splits ``n`` children: exactly
``floor(crossover_prob * n)`` crossover children, plus one more with probability equal to the fractional part
(so a steady-state strategy with ``n = 1`` does crossover with probability ``crossover_prob``, and MCUNet's
generation of 100 with ``crossover_prob = 0.5`` has exactly 50 crossover and 50 mutation children).

**Never re-ask.** :class:`Deduplicator` remembers every proposed genome string. It makes a child (``breeds``
times, default once) and, while the child was asked before, mutates it further, one ``space.mutate`` edit at a
time, for at most ``max_retries`` edits (a walk away from the asked genomes that keeps the child's parents and
origin), then tries ``max_retries`` uniform samples, then raises :class:`~tinyevo.errors.SearchExhaustedError` --
never an unbounded loop. A converged population breeds mostly children asked before; breeding anew until a child
is new (up to 100 times, the rule before) made the evolutionary strategies' time per trial grow 2-10x as the
population converged (``benchmarks/strategy_overhead.py``), while one more edit usually leaves the asked
neighbourhood (about 2 genomes looked at per ask, 20,000 trials into a chain-space search).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from tinyevo.errors import ConfigError, SearchExhaustedError
from tinyevo.spaces.base import GeneCountingSpace, Genome, SearchSpace
from tinyevo.strategies.base import Candidate, Problem
from tinyevo.strategies.selection import Individual, ParentSelection

Kind = Literal["crossover", "mutation"]


def gene_count(space: SearchSpace, genome: Genome) -> int:
    """Number of genes of ``genome``, for per-gene mutation rates.

    Uses the space's ``num_genes(genome)`` when it has one (:class:`~tinyevo.spaces.base.GeneCountingSpace`);
    for a dataclass genome, counts the items of its tuple/list fields (1 per other field); else the length of
    ``space.features(genome)``.
    """
    if isinstance(space, GeneCountingSpace):
        return max(1, int(space.num_genes(genome)))
    if dataclasses.is_dataclass(genome) and not isinstance(genome, type):
        n = 0
        for f in dataclasses.fields(genome):
            v = getattr(genome, f.name)
            n += len(v) if isinstance(v, (tuple, list)) else 1
        return max(1, n)
    return max(1, len(space.features(genome)))


@dataclass(frozen=True)
class Mutation:
    """``rate=None``: one edit by ``space.mutate``; ``rate=p``: ``max(1, Binomial(n_genes, p))`` edits."""

    rate: float | None = None

    def __post_init__(self) -> None:
        if self.rate is not None and not 0.0 <= self.rate <= 1.0:
            raise ConfigError(f"mutation rate must be in [0, 1], got {self.rate}")

    def edits(self, n_genes: int, rng: np.random.Generator) -> int:
        """How many successive ``space.mutate`` edits to apply."""
        if self.rate is None:
            return 1
        return max(1, int(rng.binomial(n_genes, self.rate)))

    def mutate(self, space: SearchSpace, genome: Genome, rng: np.random.Generator) -> Genome:
        k = self.edits(gene_count(space, genome), rng) if self.rate is not None else 1
        for _ in range(k):
            genome = space.mutate(genome, rng)
        return genome


@dataclass(frozen=True)
class Variation:
    """How children are made: crossover with probability ``crossover_prob``, else mutation of one parent.

    ``mutate_crossover_children`` also mutates every crossover child (classic GA / NSGA-II); by default a
    crossover child is the plain recombination (MCUNet).
    """

    crossover_prob: float = 0.0
    mutation: Mutation = Mutation()
    mutate_crossover_children: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.crossover_prob <= 1.0:
            raise ConfigError(f"crossover_prob must be in [0, 1], got {self.crossover_prob}")

    def kinds(self, n: int, rng: np.random.Generator) -> list[Kind]:
        """The operator of each of ``n`` children: crossover ones first, then mutation ones."""
        expected = self.crossover_prob * n
        c = math.floor(expected)
        frac = expected - c
        if frac > 1e-12 and rng.random() < frac:
            c += 1
        c = min(c, n)
        return ["crossover"] * c + ["mutation"] * (n - c)

    @staticmethod
    def parents_needed(kind: Kind) -> int:
        return 2 if kind == "crossover" else 1

    def offspring(
        self, space: SearchSpace, kind: Kind, parents: Sequence[Genome], rng: np.random.Generator
    ) -> Genome:
        """One child of ``parents`` (two for crossover, one for mutation)."""
        if kind == "crossover":
            child = space.crossover(parents[0], parents[1], rng)
            if self.mutate_crossover_children:
                child = self.mutation.mutate(space, child, rng)
            return child
        return self.mutation.mutate(space, parents[0], rng)

    def child(
        self,
        space: SearchSpace,
        kind: Kind,
        population: Sequence[Individual],
        *,
        selection: ParentSelection,
        problem: Problem,
        rng: np.random.Generator,
        generation: int = 0,
    ) -> Candidate:
        """Select parents from ``population`` and make one child :class:`Candidate` (not deduplicated)."""
        parents = selection.select(population, self.parents_needed(kind), problem=problem, rng=rng)
        genome = self.offspring(space, kind, [p.genome for p in parents], rng)
        return Candidate(
            genome=genome, parents=tuple(str(p.genome) for p in parents), generation=generation, origin=kind
        )


class Deduplicator:
    """Genome strings proposed so far, and bounded, duplicate-free proposal (see the module docstring).

    ``proposals`` counts the genomes checked against the seen set (made, walked or sampled), ``found`` the new
    ones returned: ``proposals / found`` is the number of tries per ask, which grows for any sampler once a finite
    space is mostly asked.
    """

    def __init__(self, *, max_retries: int = 100, breeds: int = 1, walk: int | None = None) -> None:
        if max_retries < 1:
            raise ConfigError(f"max_retries must be >= 1, got {max_retries}")
        if breeds < 1:
            raise ConfigError(f"breeds must be >= 1, got {breeds}")
        if walk is not None and walk < 0:
            raise ConfigError(f"walk must be >= 0, got {walk}")
        self.max_retries = max_retries
        self.breeds = breeds
        self.walk = max_retries if walk is None else walk
        self.proposals = 0
        self.found = 0
        self._seen: set[str] = set()

    def __contains__(self, genome: object) -> bool:
        return str(genome) in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, genome: Genome | str) -> None:
        self._seen.add(str(genome))

    def update(self, genomes: Iterable[Genome | str]) -> None:
        for g in genomes:
            self.add(g)

    def claim(self, genome: Genome) -> bool:
        """Whether ``genome`` is unseen (counted in ``proposals``); if so it is recorded as seen (and counted in
        ``found``)."""
        self.proposals += 1
        key = str(genome)
        if key in self._seen:
            return False
        self._seen.add(key)
        self.found += 1
        return True

    def propose(
        self,
        make: Callable[[], Candidate] | None,
        *,
        space: SearchSpace,
        rng: np.random.Generator,
        generation: int = 0,
        breeds: int | None = None,
    ) -> Candidate:
        """A new candidate: ``make()`` up to ``breeds`` times (default: the deduplicator's), then the last child
        mutated further (up to ``max_retries`` edits), then up to ``max_retries`` random samples, else raise.

        The returned genome is recorded as seen.
        """
        tries = 0
        if make is not None:
            cand = None
            for _ in range(max(1, self.breeds if breeds is None else breeds)):
                cand = make()
                tries += 1
                if self.claim(cand.genome):
                    return cand
            genome = cand.genome  # type: ignore[union-attr]
            for _ in range(self.walk):
                genome = space.mutate(genome, rng)
                tries += 1
                if self.claim(genome):
                    return dataclasses.replace(cand, genome=genome)  # type: ignore[type-var]
        for _ in range(self.max_retries):
            g = space.sample(rng)
            tries += 1
            if self.claim(g):
                return Candidate(genome=g, generation=generation, origin="random")
        raise SearchExhaustedError(
            f"no new genome in {tries} tries after {len(self._seen)} distinct genomes; the search space looks "
            "exhausted"
        )
