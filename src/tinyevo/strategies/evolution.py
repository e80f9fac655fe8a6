"""One evolutionary algorithm, composed from initialisation, selection and variation objects.

The population is built in *generations* (batches of candidates):

* generation 0 is the initial population: ``population_size`` candidates from ``initialization``;
* every later generation is ``offspring_per_generation`` children, made by ``variation`` from parents that
  ``parent_selection`` picks in the current population;
* when every member of a generation has been asked *and* told, ``survivor_selection`` reduces
  ``population + generation`` to ``population_size``.

``offspring_per_generation=1`` is the steady-state mode (regularized evolution: each tell updates the
population); a larger value is the generational mode (MCUNet: a generation of children is asked, then
survivors are chosen). Every told trial joins the population, including infeasible and failed ones, which the
selections rank last (:func:`~tinyevo.strategies.base.rank_key`); so a population that starts infeasible is
driven towards feasibility by smaller violation.

If ``ask`` is called while no member has been told yet (asynchronous evaluation), random samples are proposed.
Candidates never repeat a genome (:class:`~tinyevo.strategies.operators.Deduplicator`: ``breeds`` children,
then the last one mutated further, then random samples). The population is passed to the selections as one tuple
that changes only when members join or leave, so a selection may keep what it computed from it (a ranking, the
roulette weights) across retries and asks. The strategy draws
every random number from one ``numpy`` Generator seeded with ``seed``, so the same seed and the same outcomes
give the same asks, and :func:`~tinyevo.strategies.base.replay` rebuilds its state. ``max_generations``
(evolved generations after the initial one) ends the search with
:class:`~tinyevo.errors.SearchExhaustedError`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tinyevo.errors import ConfigError, SearchExhaustedError
from tinyevo.spaces.base import Genome, SearchSpace
from tinyevo.strategies.base import Candidate, Problem, Trial
from tinyevo.strategies.init import Initialization, RandomInit
from tinyevo.strategies.operators import Deduplicator, Variation
from tinyevo.strategies.selection import (
    DiscardOldest,
    Individual,
    ParentSelection,
    SurvivorSelection,
    TournamentSelection,
)

_INIT = "init"


class EvolutionaryStrategy:
    """Ask / tell evolutionary search (see module docstring)."""

    def __init__(
        self,
        space: SearchSpace,
        problem: Problem,
        *,
        population_size: int = 50,
        offspring_per_generation: int = 1,
        initialization: Initialization = RandomInit(),
        parent_selection: ParentSelection = TournamentSelection(size=10),
        survivor_selection: SurvivorSelection = DiscardOldest(),
        variation: Variation = Variation(),
        max_generations: int | None = None,
        max_retries: int = 100,
        breeds: int = 1,
        walk: int | None = None,
        seed: int = 0,
    ) -> None:
        if population_size < 1:
            raise ConfigError(f"population_size must be >= 1, got {population_size}")
        if offspring_per_generation < 1:
            raise ConfigError(f"offspring_per_generation must be >= 1, got {offspring_per_generation}")
        if max_generations is not None and max_generations < 0:
            raise ConfigError(f"max_generations must be >= 0, got {max_generations}")
        self.space = space
        self.problem = problem
        self.population_size = population_size
        self.offspring_per_generation = offspring_per_generation
        self.initialization = initialization
        self.parent_selection = parent_selection
        self.survivor_selection = survivor_selection
        self.variation = variation
        self.max_generations = max_generations
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.seen = Deduplicator(max_retries=max_retries, breeds=breeds, walk=walk)
        self._population: tuple[Individual, ...] = ()
        self._births = 0
        self._generation = 0
        self._plan: list[str] = [_INIT] * population_size  # operators still to ask in the current generation
        self._open: dict[int, int] = {}  # generation -> candidates asked but not told
        self._told: dict[int, list[Individual]] = {}  # generation -> told members not yet merged
        self._pending: dict[str, int] = {}  # genome string -> generation, for asked candidates
        self._initial: list[Genome] = []

    # --- state ----------------------------------------------------------------------------------------------
    @property
    def population(self) -> tuple[Individual, ...]:
        """The current population, oldest first."""
        return self._population

    @property
    def generation(self) -> int:
        """The generation now being asked (0 = initial population)."""
        return self._generation

    # --- ask / tell -----------------------------------------------------------------------------------------
    def ask(self) -> Candidate:
        if not self._plan:
            self._next_generation()
        kind = self._plan.pop(0)
        gen = self._generation
        if kind == _INIT:
            cand = self.initialization.propose(
                self.space, index=len(self._initial), previous=self._initial, rng=self.rng, seen=self.seen
            )
            self._initial.append(cand.genome)
        elif not self._population:
            cand = self.seen.propose(None, space=self.space, rng=self.rng, generation=gen)
        else:
            population = self._population

            def make() -> Candidate:
                return self.variation.child(
                    self.space, kind, population, selection=self.parent_selection, problem=self.problem,  # type: ignore[arg-type]
                    rng=self.rng, generation=gen,
                )

            cand = self.seen.propose(make, space=self.space, rng=self.rng, generation=gen)
        if cand.generation != gen:
            cand = replace(cand, generation=gen)
        self._pending[str(cand.genome)] = gen
        self._open[gen] = self._open.get(gen, 0) + 1
        return cand

    def tell(self, candidate: Candidate, trial: Trial) -> None:
        key = str(candidate.genome)
        self.seen.add(key)
        ind = Individual.ranked(self.problem, candidate.genome, trial, self._births)
        self._births += 1
        gen = self._pending.pop(key, None)
        if gen is None:  # not proposed by this strategy (e.g. a warm start): joins at once
            self._merge([ind])
            return
        self._told.setdefault(gen, []).append(ind)
        self._open[gen] -= 1
        complete = self._open[gen] == 0 and (gen != self._generation or not self._plan)
        if complete:
            del self._open[gen]
            self._merge(self._told.pop(gen))

    # --- internals ------------------------------------------------------------------------------------------
    def _next_generation(self) -> None:
        if self.max_generations is not None and self._generation >= self.max_generations:
            raise SearchExhaustedError(f"the evolution finished its {self.max_generations} generations")
        self._generation += 1
        self._plan = list(self.variation.kinds(self.offspring_per_generation, self.rng))

    def _merge(self, members: list[Individual]) -> None:
        self._population = tuple(
            self.survivor_selection.survive(
                [*self._population, *members], self.population_size, problem=self.problem, rng=self.rng
            )
        )
