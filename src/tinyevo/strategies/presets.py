"""Named compositions registered in :data:`~tinyevo.strategies.base.STRATEGIES`.

Every factory is called as ``factory(space, problem, *, seed, settings=StrategySettings())`` and returns a fresh
strategy; ``settings`` (:mod:`tinyevo.strategies.settings`) override the preset's hyper-parameters.

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
from tinyevo.strategies.nsga2 import nsga2
from tinyevo.strategies.random_search import RandomSearch
from tinyevo.strategies.selection import (
    DiscardOldest,
    DiscardWorst,
    DiscardWorstOldest,
    Elitism,
    SurvivorSelection,
)
from tinyevo.strategies.settings import (
    StrategySettings,
    check_settings,
    given_over,
    initialization,
    parent_selection,
    register_settings,
    variation,
)

GENERATIONAL_BREEDS = 16
"""Children ``mcunet``, ``nsga2``, ``evolution-discard-worst`` and ``evolution-worst-oldest`` breed per ask before
mutating an asked one further (the others: 1). They exhaust the children of a converged elite: on NB201 under a
latency limit (50 seeds, 1,000 evaluations) ``mcunet`` found the optimum in 12 % of seeds with 1, 40 % with 16 and
48 % breeding up to 100 times (the rule before); ``evolution-discard-worst`` 14 %, 42 % and 56 %.
``evolution-tournament`` breeds once: its hits (10 % with 1 or 100 breeds) follow the fallback after the breeds,
not their number (28 % with uniform samples instead of the further mutation, at a lower mean best)."""

_EVOLUTION = ("population", "offspring", "generations", "selection", "tournament_size", "parents", "mutation_rate",
              "crossover_prob", "initialization", "breeds")
"""The settings every evolutionary preset takes (:mod:`tinyevo.strategies.settings`)."""


def _evolution(
    space: SearchSpace, problem: Problem, seed: int, settings: StrategySettings, defaults: StrategySettings, *,
    survivors: SurvivorSelection, breeds: int = 1,
) -> EvolutionaryStrategy:
    """An :class:`EvolutionaryStrategy` from the preset's ``defaults`` with the user's ``settings`` over them."""
    s = given_over(settings, defaults)
    return EvolutionaryStrategy(
        space, problem, population_size=s.population or 50, offspring_per_generation=s.offspring or 1,
        initialization=initialization(s), parent_selection=parent_selection(s), survivor_selection=survivors,
        variation=variation(s), max_generations=s.generations, breeds=s.breeds or breeds, seed=seed,
    )


@STRATEGIES.register("random", help="uniform random search (never repeats a genome)")
def random_search(space: SearchSpace, problem: Problem, *, seed: int,
                  settings: StrategySettings = StrategySettings()) -> RandomSearch:
    check_settings("random", settings)
    return RandomSearch(space, problem, seed=seed)


register_settings("random", ())


@STRATEGIES.register("regularized-evolution", help="Real et al.: population 50, tournament 10, aging")
def regularized_evolution(space: SearchSpace, problem: Problem, *, seed: int,
                          settings: StrategySettings = StrategySettings()) -> EvolutionaryStrategy:
    check_settings("regularized-evolution", settings)
    defaults = StrategySettings(population=50, offspring=1, selection="tournament", tournament_size=10,
                                crossover_prob=0.0, initialization="random")
    return _evolution(space, problem, seed, settings, defaults, survivors=DiscardOldest())


register_settings("regularized-evolution", _EVOLUTION)


@STRATEGIES.register("mcunet", help="MCUNet: population 100, top-20 parents, 50+50 children, 30 generations")
def mcunet(space: SearchSpace, problem: Problem, *, seed: int,
           settings: StrategySettings = StrategySettings()) -> EvolutionaryStrategy:
    check_settings("mcunet", settings)
    defaults = StrategySettings(population=100, offspring=100, generations=30, selection="truncation", parents=20,
                                mutation_rate=0.1, crossover_prob=0.5, initialization="random")
    return _evolution(space, problem, seed, settings, defaults, survivors=DiscardWorst(), breeds=GENERATIONAL_BREEDS)


register_settings("mcunet", _EVOLUTION)


@STRATEGIES.register("nsga2", help="NSGA-II: Pareto rank + crowding, constraint-domination (multi-objective)")
def nsga2_preset(space: SearchSpace, problem: Problem, *, seed: int,
                 settings: StrategySettings = StrategySettings()) -> EvolutionaryStrategy:
    """NSGA-II: ``population`` is also the generation size; parents come from a crowded tournament
    (``tournament_size``, default 2)."""
    check_settings("nsga2", settings)
    s = settings.over(StrategySettings(population=50, crossover_prob=0.9, tournament_size=2))
    return nsga2(space, problem, seed=seed, population_size=s.population or 50, initialization=initialization(s),
                 variation=variation(s, mutate_crossover_children=True), max_generations=s.generations,
                 tournament_size=s.tournament_size or 2, breeds=s.breeds or GENERATIONAL_BREEDS)


register_settings("nsga2", ("population", "generations", "tournament_size", "mutation_rate", "crossover_prob",
                            "initialization", "breeds"))


def _selection_preset(name: str, parents: StrategySettings, survivors: SurvivorSelection, help: str, *,
                      breeds: int = 1) -> None:
    """``parents``: the preset's parent selection, as settings (``selection`` and its pool size)."""

    def factory(space: SearchSpace, problem: Problem, *, seed: int,
                settings: StrategySettings = StrategySettings()) -> EvolutionaryStrategy:
        check_settings(name, settings)
        defaults = parents.over(StrategySettings(population=50, offspring=1, crossover_prob=0.5,
                                                 initialization="random"))
        return _evolution(space, problem, seed, settings, defaults, survivors=survivors,
                          breeds=breeds)

    factory.__name__ = name.replace("-", "_")
    STRATEGIES.register(name, help=help)(factory)
    register_settings(name, _EVOLUTION)


_selection_preset("evolution-elitism", StrategySettings(selection="truncation", parents=10), Elitism(elites=10),
                  "elitism: parents from the top 10, the best 10 always survive")
_selection_preset("evolution-discard-worst", StrategySettings(selection="random"), DiscardWorst(),
                  "steady state, uniform parents, the worst member is discarded", breeds=GENERATIONAL_BREEDS)
_selection_preset("evolution-aging", StrategySettings(selection="tournament", tournament_size=10), DiscardOldest(),
                  "aging: tournament-10 parents, the oldest member is discarded")
_selection_preset("evolution-worst-oldest", StrategySettings(selection="random"),
                  DiscardWorstOldest(window_fraction=0.5),
                  "uniform parents, the worst of the oldest half is discarded", breeds=GENERATIONAL_BREEDS)
_selection_preset("evolution-roulette", StrategySettings(selection="roulette"), DiscardOldest(),
                  "fitness-proportional (roulette) parents, aging")
_selection_preset("evolution-tournament", StrategySettings(selection="tournament", tournament_size=10),
                  DiscardWorst(),
                  "tournament-10 parents, the worst member is discarded")
