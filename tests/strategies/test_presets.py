"""Contract tests over every registered strategy, and the composition of the named presets."""

from __future__ import annotations

import pytest
from strategy_fakes import conv_count

from tinyevo.errors import UnknownNameError
from tinyevo.strategies import STRATEGIES, Strategy
from tinyevo.strategies.evolution import EvolutionaryStrategy
from tinyevo.strategies.loop import run_search
from tinyevo.strategies.nsga2 import CrowdedTournament, RankAndCrowding
from tinyevo.strategies.operators import Mutation
from tinyevo.strategies.random_search import RandomSearch
from tinyevo.strategies.selection import (
    DiscardOldest,
    DiscardWorst,
    DiscardWorstOldest,
    Elitism,
    RouletteSelection,
    TournamentSelection,
    TruncationSelection,
)

BUDGET = 25


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_every_strategy_runs_a_short_search_deterministically(name, nb201, conv_problem):
    def run(seed):
        strategy = STRATEGIES.create(name, nb201, conv_problem, seed=seed)
        assert isinstance(strategy, Strategy)
        return run_search(strategy, conv_problem, conv_count, budget=BUDGET)

    first = run(0)
    genomes = [t.genome for t in first.trials]
    assert first.evaluations == BUDGET and len(first.trials) == BUDGET
    assert len(set(genomes)) == len(genomes)  # never re-asks
    assert all(t.ok for t in first.trials)
    assert [t.genome for t in run(0).trials] == genomes


def test_unknown_strategy_name():
    with pytest.raises(UnknownNameError, match="regularized-evolution"):
        STRATEGIES.create("no-such-strategy", None, None, seed=0)


def test_one_preset_per_selection_method():
    for method in ("elitism", "discard-worst", "aging", "worst-oldest", "roulette", "tournament"):
        assert f"evolution-{method}" in STRATEGIES
    for name in ("random", "regularized-evolution", "mcunet", "nsga2"):
        assert name in STRATEGIES


def test_textbook_presets(nb201, conv_problem):
    re = STRATEGIES.create("regularized-evolution", nb201, conv_problem, seed=0)
    assert isinstance(re, EvolutionaryStrategy)
    assert (re.population_size, re.offspring_per_generation) == (50, 1)
    assert re.parent_selection == TournamentSelection(size=10) and re.survivor_selection == DiscardOldest()
    assert re.variation.crossover_prob == 0.0

    mc = STRATEGIES.create("mcunet", nb201, conv_problem, seed=0)
    assert (mc.population_size, mc.offspring_per_generation, mc.max_generations) == (100, 100, 30)
    assert mc.parent_selection == TruncationSelection(top=20) and mc.survivor_selection == DiscardWorst()
    assert mc.variation.crossover_prob == 0.5 and mc.variation.mutation == Mutation(rate=0.1)

    ns = STRATEGIES.create("nsga2", nb201, conv_problem, seed=0)
    assert isinstance(ns.parent_selection, CrowdedTournament)
    assert isinstance(ns.survivor_selection, RankAndCrowding)
    assert ns.offspring_per_generation == ns.population_size == 50

    assert isinstance(STRATEGIES.create("random", nb201, conv_problem, seed=0), RandomSearch)


def test_selection_presets_use_their_method(nb201, conv_problem):
    def make(name):
        return STRATEGIES.create(name, nb201, conv_problem, seed=0)

    assert make("evolution-elitism").survivor_selection == Elitism(elites=10)
    assert make("evolution-discard-worst").survivor_selection == DiscardWorst()
    assert make("evolution-aging").survivor_selection == DiscardOldest()
    assert isinstance(make("evolution-worst-oldest").survivor_selection, DiscardWorstOldest)
    assert make("evolution-roulette").parent_selection == RouletteSelection()
    assert make("evolution-tournament").parent_selection == TournamentSelection(size=10)


def test_mcunet_generation_has_50_crossover_and_50_mutation_children(nb201, conv_problem):
    s = STRATEGIES.create("mcunet", nb201, conv_problem, seed=0)
    result = run_search(s, conv_problem, conv_count, budget=200)
    gen1 = [t.origin for t in result.trials if t.generation == 1]
    assert gen1.count("crossover") == 50 and gen1.count("mutation") == 50
    assert s.generation == 1 and len(s.population) == 100


@pytest.mark.parametrize("name", ["regularized-evolution", "evolution-tournament", "nsga2"])
def test_evolution_finds_the_optimum_of_an_easy_objective(name, nb201, conv_problem):
    # six conv edges: 64 of the 15625 genomes; random search with 250 samples finds one about 2 times in 3
    for seed in (0, 1):
        result = run_search(STRATEGIES.create(name, nb201, conv_problem, seed=seed), conv_problem, conv_count,
                            budget=250)
        assert max(t.metrics["convs"] for t in result.trials) == 6.0


def test_presets_that_exhaust_an_elite_breed_more_children_per_ask_than_the_others(nb201, conv_problem):
    from tinyevo.strategies.presets import GENERATIONAL_BREEDS

    for name in ("mcunet", "nsga2", "evolution-discard-worst", "evolution-worst-oldest"):
        assert STRATEGIES.create(name, nb201, conv_problem, seed=0).seen.breeds == GENERATIONAL_BREEDS > 1
    for name in ("regularized-evolution", "evolution-aging", "evolution-elitism", "evolution-roulette",
                 "evolution-tournament"):
        assert STRATEGIES.create(name, nb201, conv_problem, seed=0).seen.breeds == 1
