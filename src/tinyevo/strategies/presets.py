"""Named compositions registered in :data:`~tinyevo.strategies.base.STRATEGIES`.

Every factory is called as ``factory(space, problem, *, seed)`` and returns a fresh strategy.

* ``random`` -- uniform random search.
* ``regularized-evolution`` -- Real et al. (2019): population 50, tournament of 10, aging, one-edit mutation,
  steady state.
* ``mcunet`` -- MCUNet / OFA evolution: population 100, parents uniform among the top 20, per generation 50
  crossover + 50 mutation children (per-gene rate 0.1), (mu + lambda) survivors, 30 generations.
* ``nsga2`` -- NSGA-II: population 50, generations of 50, crowded binary tournament, rank + crowding
  survivors, crossover 0.9 followed by one mutation, constraint-domination.
* ``evolution-<selection>`` -- one preset per selection method, for benchmark comparisons. All share: steady
  state, population 50, random initial population, crossover probability 0.5 else one-edit mutation. The named
  method is the one under test; it is paired with the partner that makes a working algorithm:

  ========================  ==================================  ====================================
  preset                    parent selection                    survivor selection
  ========================  ==================================  ====================================
  evolution-elitism         uniform among the top 10            elitism: best 10 kept, rest youngest
  evolution-discard-worst   uniform                             discard worst
  evolution-aging           tournament of 10                    discard oldest (aging)
  evolution-worst-oldest    uniform                             worst of the oldest half
  evolution-roulette        roulette (fitness-proportional)     discard oldest (aging)
  evolution-tournament      tournament of 10                    discard worst
  ========================  ==================================  ====================================
"""

from __future__ import annotations

from tinyevo.spaces.base import SearchSpace
from tinyevo.strategies.base import STRATEGIES, Problem
from tinyevo.strategies.evolution import EvolutionaryStrategy
from tinyevo.strategies.init import RandomInit
from tinyevo.strategies.nsga2 import nsga2
from tinyevo.strategies.operators import Mutation, Variation
from tinyevo.strategies.random_search import RandomSearch
from tinyevo.strategies.selection import (
    DiscardOldest,
    DiscardWorst,
    DiscardWorstOldest,
    Elitism,
    ParentSelection,
    RandomSelection,
    RouletteSelection,
    SurvivorSelection,
    TournamentSelection,
    TruncationSelection,
)


@STRATEGIES.register("random", help="uniform random search (never repeats a genome)")
def random_search(space: SearchSpace, problem: Problem, *, seed: int) -> RandomSearch:
    return RandomSearch(space, problem, seed=seed)


@STRATEGIES.register("regularized-evolution", help="Real et al.: population 50, tournament 10, aging")
def regularized_evolution(space: SearchSpace, problem: Problem, *, seed: int) -> EvolutionaryStrategy:
    return EvolutionaryStrategy(
        space, problem, population_size=50, offspring_per_generation=1, initialization=RandomInit(),
        parent_selection=TournamentSelection(size=10), survivor_selection=DiscardOldest(),
        variation=Variation(crossover_prob=0.0, mutation=Mutation()), seed=seed,
    )


@STRATEGIES.register("mcunet", help="MCUNet: population 100, top-20 parents, 50+50 children, 30 generations")
def mcunet(space: SearchSpace, problem: Problem, *, seed: int) -> EvolutionaryStrategy:
    return EvolutionaryStrategy(
        space, problem, population_size=100, offspring_per_generation=100, initialization=RandomInit(),
        parent_selection=TruncationSelection(top=20), survivor_selection=DiscardWorst(),
        variation=Variation(crossover_prob=0.5, mutation=Mutation(rate=0.1)), max_generations=30, seed=seed,
    )


@STRATEGIES.register("nsga2", help="NSGA-II: Pareto rank + crowding, constraint-domination (multi-objective)")
def nsga2_preset(space: SearchSpace, problem: Problem, *, seed: int) -> EvolutionaryStrategy:
    return nsga2(space, problem, seed=seed, population_size=50)


def _selection_preset(
    name: str, parents: ParentSelection, survivors: SurvivorSelection, help: str
) -> None:
    def factory(space: SearchSpace, problem: Problem, *, seed: int) -> EvolutionaryStrategy:
        return EvolutionaryStrategy(
            space, problem, population_size=50, offspring_per_generation=1, initialization=RandomInit(),
            parent_selection=parents, survivor_selection=survivors,
            variation=Variation(crossover_prob=0.5, mutation=Mutation()), seed=seed,
        )

    factory.__name__ = name.replace("-", "_")
    STRATEGIES.register(name, help=help)(factory)


_selection_preset("evolution-elitism", TruncationSelection(top=10), Elitism(elites=10),
                  "elitism: parents from the top 10, the best 10 always survive")
_selection_preset("evolution-discard-worst", RandomSelection(), DiscardWorst(),
                  "steady state, uniform parents, the worst member is discarded")
_selection_preset("evolution-aging", TournamentSelection(size=10), DiscardOldest(),
                  "aging: tournament-10 parents, the oldest member is discarded")
_selection_preset("evolution-worst-oldest", RandomSelection(), DiscardWorstOldest(window_fraction=0.5),
                  "uniform parents, the worst of the oldest half is discarded")
_selection_preset("evolution-roulette", RouletteSelection(), DiscardOldest(),
                  "fitness-proportional (roulette) parents, aging")
_selection_preset("evolution-tournament", TournamentSelection(size=10), DiscardWorst(),
                  "tournament-10 parents, the worst member is discarded")
