"""Warm start: evaluate given seed genomes first, then hand over to any strategy.

:class:`WarmStart` wraps a strategy: its first asks return the seeds (``origin="seed"``), after that every ask is
the inner strategy's. Every outcome, the seeds' included, is told to the inner strategy, which takes a trial it
did not propose as a warm start (evolution merges it into the population, the surrogate adds it to its training
set). With the seeds from :func:`tinyevo.spaces.zoo.resolve_seeds` this is the "rich" initialisation of
the literature (a population seeded with known architectures) for every registered strategy.

Deterministic like the inner strategy, so :func:`~tinyevo.strategies.base.replay` rebuilds it on resume. When
several candidates are asked before any is told (a batched executor), the inner strategy may not yet know the
seeds; a proposal equal to a pending seed is then re-asked, so no genome is proposed twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from tinyevo.errors import SearchExhaustedError
from tinyevo.spaces.base import Genome
from tinyevo.strategies.base import Candidate, Strategy, Trial


class WarmStart:
    """``seeds`` first, then ``inner``'s proposals; every outcome is told to ``inner``."""

    def __init__(self, inner: Strategy, seeds: Sequence[Genome], *, max_retries: int = 100) -> None:
        self.inner = inner
        self.seeds = tuple(seeds)
        self.max_retries = max_retries
        self._next = 0
        self._asked: set[str] = set()

    def ask(self) -> Candidate:
        while self._next < len(self.seeds):
            g = self.seeds[self._next]
            self._next += 1
            if str(g) not in self._asked:
                self._asked.add(str(g))
                return Candidate(genome=g, origin="seed")
        for _ in range(self.max_retries):
            cand = self.inner.ask()
            if str(cand.genome) not in self._asked:
                self._asked.add(str(cand.genome))
                return cand
        raise SearchExhaustedError(f"the strategy kept proposing seed genomes ({self.max_retries} tries)")

    def tell(self, candidate: Candidate, trial: Trial) -> None:
        self.inner.tell(candidate, trial)
