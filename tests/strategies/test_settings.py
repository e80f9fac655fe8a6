"""Strategy settings (``[strategy_options]``) reach the strategy each preset builds, with one meaning per knob."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinyevo.errors import ConfigError
from tinyevo.strategies import STRATEGIES
from tinyevo.strategies.base import Status, Trial
from tinyevo.strategies.init import RandomInit, TrivialInit
from tinyevo.strategies.nsga2 import CrowdedTournament
from tinyevo.strategies.selection import RouletteSelection, TournamentSelection, TruncationSelection
from tinyevo.strategies.settings import StrategySettings, check_settings, supported_settings

EVOLUTIONARY = [n for n in STRATEGIES.names() if n in ("regularized-evolution", "mcunet")
                or n.startswith("evolution-")]


@pytest.mark.parametrize("name", EVOLUTIONARY)
def test_every_evolutionary_preset_takes_the_common_settings(name, nb201, conv_problem):
    s = StrategySettings(population=7, offspring=3, generations=4, mutation_rate=0.25, crossover_prob=0.4,
                         initialization="trivial")
    strategy = STRATEGIES.create(name, nb201, conv_problem, seed=0, settings=s)
    assert (strategy.population_size, strategy.offspring_per_generation, strategy.max_generations) == (7, 3, 4)
    assert strategy.variation.mutation.rate == 0.25 and strategy.variation.crossover_prob == 0.4
    assert isinstance(strategy.initialization, TrivialInit)
    first = strategy.ask()
    assert str(first.genome) == str(nb201.trivial()) and first.origin == "trivial"


@pytest.mark.parametrize("selection, expected", [
    (StrategySettings(selection="tournament", tournament_size=3), TournamentSelection(size=3)),
    (StrategySettings(selection="truncation", parents=4), TruncationSelection(top=4)),
    (StrategySettings(selection="roulette"), RouletteSelection()),
    (StrategySettings(selection="tournament"), TournamentSelection(size=10)),
    (StrategySettings(selection="truncation"), TruncationSelection(top=20)),
])
@pytest.mark.parametrize("name", ["regularized-evolution", "mcunet"])
def test_selection_and_its_pool_size(name, selection, expected, nb201, conv_problem):
    strategy = STRATEGIES.create(name, nb201, conv_problem, seed=0, settings=selection)
    assert strategy.parent_selection == expected


def test_unchanged_presets_keep_their_published_settings(nb201, conv_problem):
    mc = STRATEGIES.create("mcunet", nb201, conv_problem, seed=0, settings=StrategySettings(population=30))
    assert mc.population_size == 30 and mc.offspring_per_generation == 100 and mc.max_generations == 30
    assert mc.parent_selection == TruncationSelection(top=20) and mc.variation.mutation.rate == 0.1
    assert isinstance(mc.initialization, RandomInit)


def test_a_pool_size_of_another_selection_is_refused(nb201, conv_problem):
    with pytest.raises(ConfigError, match="tournament_size needs selection = 'tournament', not 'truncation'"):
        STRATEGIES.create("mcunet", nb201, conv_problem, seed=0, settings=StrategySettings(tournament_size=5))
    with pytest.raises(ConfigError, match="parents .* needs selection = 'truncation', not 'tournament'"):
        STRATEGIES.create("regularized-evolution", nb201, conv_problem, seed=0,
                          settings=StrategySettings(parents=5))


def test_nsga2_settings(nb201, conv_problem):
    s = StrategySettings(population=12, tournament_size=3, crossover_prob=0.5, mutation_rate=0.1, generations=2)
    strategy = STRATEGIES.create("nsga2", nb201, conv_problem, seed=0, settings=s)
    assert (strategy.population_size, strategy.offspring_per_generation) == (12, 12)
    assert strategy.parent_selection == CrowdedTournament(size=3) and strategy.max_generations == 2
    assert strategy.variation.crossover_prob == 0.5 and strategy.variation.mutation.rate == 0.1
    assert strategy.variation.mutate_crossover_children
    with pytest.raises(ConfigError, match="strategy 'nsga2' has no option 'selection'"):
        STRATEGIES.create("nsga2", nb201, conv_problem, seed=0, settings=StrategySettings(selection="random"))


def test_a_strategy_without_settings_names_those_that_take_them():
    assert supported_settings("random") == frozenset()
    with pytest.raises(ConfigError, match=r"strategy 'random' takes no \[strategy_options\].*mcunet.*nsga2"):
        check_settings("random", StrategySettings(population=5))
    with pytest.raises(ConfigError, match="strategy 'surrogate-evolution' has no option 'mutation_rate'; its "
                                          r"\[strategy_options\] are crossovers, elite"):
        check_settings("surrogate-evolution", StrategySettings(mutation_rate=0.5))
    with pytest.raises(ConfigError, match="strategy 'mcunet' has no option 'lr'; its"):
        check_settings("mcunet", StrategySettings(lr=0.1))
    check_settings("surrogate-evolution", StrategySettings())  # nothing given: nothing to refuse


@pytest.mark.parametrize("bad", [dict(population=0), dict(offspring=-1), dict(generations=-1),
                                 dict(mutation_rate=1.5), dict(crossover_prob=-0.1), dict(selection="best"),
                                 dict(initialization="zoo"), dict(population=True), dict(lr=0.0),
                                 dict(lr=math.inf), dict(baseline_decay=1.0), dict(adam_beta2=-0.1),
                                 dict(entropy=-1.0), dict(batch_size=0), dict(initial=1), dict(max_train=3),
                                 dict(explore=1.5), dict(refit_fraction=math.nan), dict(crossovers=-1),
                                 dict(niche_edits="3")])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ConfigError, match=f"strategy option {next(iter(bad))}"):
        StrategySettings(**bad)


def test_same_settings_same_asks(nb201, conv_problem):
    s = StrategySettings(population=5, selection="roulette", mutation_rate=0.3)

    def asks() -> list[str]:
        strategy = STRATEGIES.create("regularized-evolution", nb201, conv_problem, seed=3, settings=s)
        out = []
        rng = np.random.default_rng(0)
        for i in range(12):
            cand = strategy.ask()
            out.append(str(cand.genome))
            strategy.tell(cand, Trial(number=i, genome=str(cand.genome), status=Status.OK,
                                      metrics={"convs": float(rng.integers(10)), "pools": 1.0}))
        return out

    assert asks() == asks()


def test_reinforce_settings_reach_the_controller(nb201, conv_problem):
    s = StrategySettings(lr=0.05, batch_size=4, baseline_decay=0.5, entropy=0.2, adam_beta2=0.99)
    rl = STRATEGIES.create("reinforce", nb201, conv_problem, seed=0, settings=s)
    assert (rl.lr, rl.batch_size, rl.baseline_decay, rl.entropy) == (0.05, 4, 0.5, 0.2)
    assert rl.adam_betas == (0.5, 0.99)  # the beta not given keeps its default
    default = STRATEGIES.create("reinforce", nb201, conv_problem, seed=0)
    assert (default.lr, default.batch_size, default.adam_betas) == (0.3, 1, (0.5, 0.9))
    with pytest.raises(ConfigError, match="strategy 'reinforce' has no option 'population'"):
        STRATEGIES.create("reinforce", nb201, conv_problem, seed=0, settings=StrategySettings(population=5))


def test_reinforce_batch_size_sets_how_often_the_policy_moves(nb201, conv_problem):
    rl = STRATEGIES.create("reinforce", nb201, conv_problem, seed=0, settings=StrategySettings(batch_size=3))
    for i in range(7):
        cand = rl.ask()
        rl.tell(cand, Trial(number=i, genome=str(cand.genome), status=Status.OK,
                            metrics={"convs": float(i), "pools": 1.0}))
    assert rl.updates == 2  # 7 trials, an update after every 3


def test_surrogate_settings_reach_the_strategy(nb201, conv_problem):
    s = StrategySettings(initial=5, elite=2, niche_edits=1.5, mutants=6, crossovers=0, random_pool=3, patience=4,
                         explore=0.0, max_train=50, max_pool=100, refit_fraction=0.1)
    se = STRATEGIES.create("surrogate-evolution", nb201, conv_problem, seed=0, settings=s)
    got = {name: getattr(se, name) for name in s.given()}
    assert got == s.as_dict()
    assert supported_settings("surrogate-evolution") == frozenset(s.given())
    for i in range(8):  # initial = 5 random trials, then bred: explore = 0 makes every later ask a mutant
        cand = se.ask()
        assert (cand.origin == "random") == (i < 5)
        se.tell(cand, Trial(number=i, genome=str(cand.genome), status=Status.OK,
                            metrics={"convs": float(i % 3), "pools": 1.0}))
