"""Random search: uniform samples of the space, never repeating a genome."""

from __future__ import annotations

import numpy as np

from tinyevo.spaces.base import SearchSpace
from tinyevo.strategies.base import Candidate, Problem, Trial
from tinyevo.strategies.operators import Deduplicator


class RandomSearch:
    """Ask / tell random search. ``tell`` only records the genome as seen (nothing is learnt)."""

    def __init__(
        self, space: SearchSpace, problem: Problem, *, seed: int = 0, max_retries: int = 100
    ) -> None:
        self.space = space
        self.problem = problem
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.seen = Deduplicator(max_retries=max_retries)
        self.told = 0

    def ask(self) -> Candidate:
        return self.seen.propose(None, space=self.space, rng=self.rng)

    def tell(self, candidate: Candidate, trial: Trial) -> None:
        self.seen.add(candidate.genome)
        self.told += 1
