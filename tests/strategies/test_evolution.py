"""EvolutionaryStrategy: steady-state and generational modes, dedup, determinism, replay, exhaustion."""

from __future__ import annotations

import numpy as np
import pytest
from strategy_fakes import TinySpace, conv_count

from tinyevo.errors import ConfigError, SearchExhaustedError
from tinyevo.strategies.base import Candidate, Constraint, Objective, Problem, Status, rank_key, replay
from tinyevo.strategies.evolution import EvolutionaryStrategy
from tinyevo.strategies.loop import finish_trial, run_search
from tinyevo.strategies.nsga2 import nsga2
from tinyevo.strategies.operators import Mutation, Variation
from tinyevo.strategies.selection import DiscardOldest, DiscardWorst, TournamentSelection, TruncationSelection


def step(strategy, problem, n, evaluate=conv_count, start=0):
    """Ask and tell ``n`` times; returns the (candidate, trial) history."""
    out = []
    for i in range(n):
        cand = strategy.ask()
        trial = finish_trial(start + i, cand, problem, cost={}, evaluate=evaluate)
        strategy.tell(cand, trial)
        out.append((cand, trial))
    return out


def state(s: EvolutionaryStrategy):
    return (
        [(str(ind.genome), ind.birth, ind.trial) for ind in s.population],
        s.generation,
        s.rng.bit_generator.state,
        len(s.seen),
    )


def steady(space, problem, seed=0, size=5):
    return EvolutionaryStrategy(
        space, problem, population_size=size, parent_selection=TournamentSelection(size=3),
        survivor_selection=DiscardOldest(), seed=seed,
    )


def generational(space, problem, seed=0):
    return EvolutionaryStrategy(
        space, problem, population_size=4, offspring_per_generation=3,
        parent_selection=TruncationSelection(top=2), survivor_selection=DiscardWorst(),
        variation=Variation(crossover_prob=0.5, mutation=Mutation(rate=0.3)), seed=seed,
    )


def small_nsga2(space, problem, seed=0):
    return nsga2(space, problem, seed=seed, population_size=6)


def test_steady_state_fills_then_ages_one_member_per_tell(nb201, conv_problem):
    s = steady(nb201, conv_problem)
    hist = step(s, conv_problem, 5)
    assert [c.origin for c, _ in hist] == ["random"] * 5
    assert [ind.birth for ind in s.population] == [0, 1, 2, 3, 4]
    for k in range(5, 12):
        members = {str(ind.genome) for ind in s.population}
        (cand, _), = step(s, conv_problem, 1, start=k)
        assert cand.origin == "mutation" and set(cand.parents) <= members
        assert [ind.birth for ind in s.population] == list(range(k - 4, k + 1))  # the oldest left


def test_generational_population_changes_only_when_a_generation_is_complete(nb201, conv_problem):
    s = generational(nb201, conv_problem)
    trials = [t for _, t in step(s, conv_problem, 4)]
    before = [ind.birth for ind in s.population]
    assert before == [0, 1, 2, 3] and s.generation == 0
    cands = [s.ask() for _ in range(3)]
    assert [c.generation for c in cands] == [1, 1, 1]
    kinds = [c.origin for c in cands]
    assert kinds in (["crossover", "mutation", "mutation"], ["crossover", "crossover", "mutation"])
    for i, c in enumerate(cands):
        trials.append(finish_trial(4 + i, c, conv_problem, cost={}, evaluate=conv_count))
        s.tell(c, trials[-1])
        if i < 2:
            assert [ind.birth for ind in s.population] == before
    # the whole generation is told: discard-worst keeps the best 4 of the 7
    best4 = sorted(range(7), key=lambda b: (rank_key(conv_problem, trials[b]), b), reverse=True)[:4]
    assert [ind.birth for ind in s.population] == sorted(best4)
    assert s.ask().generation == 2


def test_generational_uses_the_survivor_rule_on_population_plus_children(nb201, conv_problem):
    s = generational(nb201, conv_problem)
    step(s, conv_problem, 4 + 3 * 5)
    everyone = sorted(
        ((conv_count(ind.genome)["convs"], -conv_count(ind.genome)["pools"]) for ind in s.population),
        reverse=True,
    )
    assert len(everyone) == 4
    assert everyone[0][0] >= 3  # truncation + discard-worst climbs quickly on this easy objective


def test_never_asks_a_genome_twice(nb201, conv_problem):
    s = steady(nb201, conv_problem, size=10)
    hist = step(s, conv_problem, 400)
    names = [str(c.genome) for c, _ in hist]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("make", [steady, generational, small_nsga2])
def test_same_seed_same_asks_and_different_seed_different_asks(nb201, conv_problem, make):
    a = [str(c.genome) for c, _ in step(make(nb201, conv_problem, seed=3), conv_problem, 40)]
    b = [str(c.genome) for c, _ in step(make(nb201, conv_problem, seed=3), conv_problem, 40)]
    c = [str(c.genome) for c, _ in step(make(nb201, conv_problem, seed=4), conv_problem, 40)]
    assert a == b and a != c


def test_same_seed_same_asks_with_interleaved_tells(nb201, conv_problem):
    def run(seed):
        s, asked, n = generational(nb201, conv_problem, seed=seed), [], 0
        for _ in range(8):
            pair = [s.ask(), s.ask()]  # two in flight, told in reverse order
            for c in reversed(pair):
                s.tell(c, finish_trial(n, c, conv_problem, cost={}, evaluate=conv_count))
                n += 1
            asked += [str(c.genome) for c in pair]
        return asked, state(s)

    assert run(7) == run(7)


@pytest.mark.parametrize("make", [steady, generational, small_nsga2])
def test_replay_rebuilds_identical_state(nb201, conv_problem, make):
    original = make(nb201, conv_problem, seed=11)
    hist = step(original, conv_problem, 23)
    rebuilt = make(nb201, conv_problem, seed=11)
    replay(rebuilt, hist)
    assert state(rebuilt) == state(original)
    assert str(rebuilt.ask().genome) == str(original.ask().genome)


def test_replay_with_another_seed_is_refused(nb201, conv_problem):
    hist = step(steady(nb201, conv_problem, seed=1), conv_problem, 6)
    with pytest.raises(ConfigError):
        replay(steady(nb201, conv_problem, seed=2), hist)


def test_exhausted_tiny_space_raises_and_the_loop_stops():
    problem = Problem(objectives=(Objective("v"),))
    s = EvolutionaryStrategy(TinySpace(4), problem, population_size=2, seed=0)
    hist = step(s, problem, 4, evaluate=lambda g: {"v": float(g.value)})
    assert sorted(str(c.genome) for c, _ in hist) == ["t0", "t1", "t2", "t3"]
    with pytest.raises(SearchExhaustedError):
        s.ask()
    result = run_search(
        EvolutionaryStrategy(TinySpace(4), problem, population_size=2, seed=0), problem,
        lambda g: {"v": float(g.value)}, budget=100,
    )
    assert len(result.trials) == 4


def test_max_generations_ends_the_search(nb201, conv_problem):
    s = EvolutionaryStrategy(
        nb201, conv_problem, population_size=3, offspring_per_generation=2, max_generations=2
    )
    step(s, conv_problem, 3 + 2 * 2)
    with pytest.raises(SearchExhaustedError, match="2 generations"):
        s.ask()


def test_asks_before_any_tell_are_random(nb201, conv_problem):
    s = EvolutionaryStrategy(nb201, conv_problem, population_size=2)
    cands = [s.ask() for _ in range(4)]
    assert [c.origin for c in cands] == ["random"] * 4
    assert len({str(c.genome) for c in cands}) == 4
    for i, c in enumerate(cands):
        s.tell(c, finish_trial(i, c, conv_problem, cost={}, evaluate=conv_count))
    assert len(s.population) == 2


def test_a_trial_the_strategy_did_not_ask_joins_at_once(nb201, conv_problem):
    s = steady(nb201, conv_problem)
    g = nb201.sample(np.random.default_rng(0))
    c = Candidate(genome=g, origin="seed")
    s.tell(c, finish_trial(0, c, conv_problem, cost={}, evaluate=conv_count))
    assert [str(ind.genome) for ind in s.population] == [str(g)]
    assert all(str(s.ask().genome) != str(g) for _ in range(20))


def test_infeasible_members_are_ranked_last_and_the_search_moves_to_feasibility(nb201):
    # hard limit: at most 1 conv edge; the objective wants many conv edges
    problem = Problem(objectives=(Objective("convs"),), constraints=(Constraint("convs", upper=1.0),))
    s = steady(nb201, problem, seed=0, size=8)
    result = run_search(s, problem, conv_count, budget=60, cost=conv_count)
    statuses = {t.status for t in result.trials}
    assert Status.INFEASIBLE in statuses and Status.OK in statuses
    ok = [t for t in result.trials if t.ok]
    assert max(t.metrics["convs"] for t in ok) == 1.0
    assert sum(ind.trial.ok for ind in s.population) >= 4  # feasible members took over the population


def test_bad_options_are_config_errors(nb201, conv_problem):
    for kwargs in ({"population_size": 0}, {"offspring_per_generation": 0}, {"max_generations": -1}):
        with pytest.raises(ConfigError):
            EvolutionaryStrategy(nb201, conv_problem, **kwargs)


def test_the_breeding_cap_changes_no_ask_before_it_is_first_reached(nb201, conv_problem):
    """With ``breeds=4`` the asks equal those of ``breeds=100`` (no cap in practice) up to the first ask that
    needed more than 4 children there; from then on the capped run mutates its child further instead."""
    def make(breeds):
        return EvolutionaryStrategy(
            nb201, conv_problem, population_size=20, parent_selection=TournamentSelection(size=2),
            survivor_selection=DiscardWorst(), variation=Variation(crossover_prob=0.5), breeds=breeds, seed=1,
        )

    wide, capped = make(100), make(4)
    makes = []
    for i in range(300):
        before = wide.seen.proposals
        step(wide, conv_problem, 1, start=i)
        makes.append(wide.seen.proposals - before)
    first = next(i for i, m in enumerate(makes) if m > 4)
    assert first > 40  # the comparison covers evolved children, not only the initial population of 20
    hist = step(capped, conv_problem, first + 1)
    wide_again = step(make(100), conv_problem, first + 1)
    assert [str(c.genome) for c, _ in hist[:first]] == [str(c.genome) for c, _ in wide_again[:first]]
    assert [c.origin for c, _ in hist[20:first]].count("random") == 0
