"""Mutation, crossover and duplicate-free proposal."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategy_fakes import TinyGenome, TinySpace, make_population

from tinyevo.errors import ConfigError, SearchExhaustedError
from tinyevo.spaces import create_space
from tinyevo.strategies.base import Candidate
from tinyevo.strategies.operators import Deduplicator, Mutation, Variation, gene_count
from tinyevo.strategies.selection import TournamentSelection


def test_gene_count_of_nb201_is_its_six_edges(nb201):
    assert gene_count(nb201, nb201.trivial()) == 6


def test_gene_count_prefers_the_space_hook():
    class Hooked(TinySpace):
        def num_genes(self, genome):
            return 17

    assert gene_count(Hooked(), TinyGenome(0)) == 17
    assert gene_count(TinySpace(), TinyGenome(0)) == 1  # dataclass with one int field


def test_mutation_without_rate_makes_one_edit(nb201):
    rng = np.random.default_rng(0)
    g = nb201.sample(rng)
    for _ in range(50):
        child = Mutation().mutate(nb201, g, rng)
        assert sum(a != b for a, b in zip(g.ops, child.ops, strict=True)) == 1


def test_mutation_rate_sets_the_number_of_edits():
    rng = np.random.default_rng(0)
    edits = np.array([Mutation(rate=0.1).edits(100, rng) for _ in range(4000)])
    assert edits.min() >= 1
    assert abs(edits.mean() - 10.0) < 0.3  # Binomial(100, 0.1)
    low = np.array([Mutation(rate=0.1).edits(6, rng) for _ in range(4000)])
    assert set(np.unique(low)) <= set(range(1, 7)) and low.min() == 1
    with pytest.raises(ConfigError):
        Mutation(rate=1.5)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rate=st.sampled_from([None, 0.1, 0.5, 1.0]))
def test_mutated_and_crossed_children_are_valid_genomes(seed, rate):
    nb201 = create_space("nb201")
    rng = np.random.default_rng(seed)
    a, b = nb201.sample(rng), nb201.sample(rng)
    v = Variation(crossover_prob=0.5, mutation=Mutation(rate=rate), mutate_crossover_children=True)
    for kind in ("mutation", "crossover"):
        child = v.offspring(nb201, kind, [a, b], rng)
        assert nb201.parse(str(child)) == child
    if rate is None:
        assert v.offspring(nb201, "mutation", [a], rng) != a


def test_kinds_split_offspring_exactly_and_steady_state_by_probability():
    rng = np.random.default_rng(0)
    kinds = Variation(crossover_prob=0.5).kinds(100, rng)
    assert kinds.count("crossover") == 50 and kinds.count("mutation") == 50
    assert Variation(crossover_prob=0.0).kinds(10, rng) == ["mutation"] * 10
    assert Variation(crossover_prob=1.0).kinds(3, rng) == ["crossover"] * 3
    single = [Variation(crossover_prob=0.3).kinds(1, rng)[0] for _ in range(4000)]
    assert abs(single.count("crossover") / 4000 - 0.3) < 0.03
    with pytest.raises(ConfigError):
        Variation(crossover_prob=-0.1)


def test_child_records_parents_and_origin(acc_problem):
    space = TinySpace(10)
    pop = make_population([1, 2, 3])
    pop = [type(p)(genome=TinyGenome(i), trial=p.trial, birth=p.birth) for i, p in enumerate(pop)]
    rng = np.random.default_rng(0)
    c = Variation().child(space, "crossover", pop, selection=TournamentSelection(size=3), problem=acc_problem,
                          rng=rng, generation=4)
    assert c.origin == "crossover" and c.generation == 4 and c.parents == ("t2", "t2")
    m = Variation().child(space, "mutation", pop, selection=TournamentSelection(size=3), problem=acc_problem,
                          rng=rng)
    assert m.origin == "mutation" and m.parents == ("t2",) and m.genome != TinyGenome(2)


def test_deduplicator_never_repeats_and_then_raises():
    space = TinySpace(4)
    rng = np.random.default_rng(0)
    seen = Deduplicator(max_retries=50)
    got = {str(seen.propose(None, space=space, rng=rng).genome) for _ in range(4)}
    assert got == {"t0", "t1", "t2", "t3"} and len(seen) == 4
    with pytest.raises(SearchExhaustedError):
        seen.propose(None, space=space, rng=rng)


def test_deduplicator_mutates_the_last_child_further_when_make_only_repeats():
    space = TinySpace(4)
    seen = Deduplicator(max_retries=20, breeds=3)
    seen.add("t0")
    calls = []

    def make() -> Candidate:
        calls.append(1)
        return Candidate(genome=TinyGenome(0), parents=("t1", "t2"), generation=7, origin="crossover")

    c = seen.propose(make, space=space, rng=np.random.default_rng(0))
    assert len(calls) == 3  # bounded by breeds
    assert str(c.genome) != "t0" and str(c.genome) in seen
    assert (c.parents, c.generation, c.origin) == (("t1", "t2"), 7, "crossover")  # the child's provenance kept


class _StuckSpace(TinySpace):
    """``mutate`` returns its argument: a walk never leaves a seen genome."""

    def __init__(self, size: int = 4) -> None:
        super().__init__(size)
        self.mutations = 0
        self.samples = 0

    def mutate(self, genome, rng):
        self.mutations += 1
        return genome

    def sample(self, rng):
        self.samples += 1
        return super().sample(rng)


def test_deduplicator_falls_back_to_random_samples_when_the_walk_finds_nothing():
    space = _StuckSpace(4)
    seen = Deduplicator(max_retries=20, breeds=5)
    seen.add("t0")
    calls = []

    def make() -> Candidate:
        calls.append(1)
        return Candidate(genome=TinyGenome(0), origin="mutation")

    c = seen.propose(make, space=space, rng=np.random.default_rng(0))
    assert len(calls) == 5 and space.mutations == 20  # both bounded
    assert c.origin == "random" and str(c.genome) != "t0"
    # every genome looked at is counted: 5 made, 20 walked, the samples until a new one
    assert seen.proposals == 5 + 20 + space.samples and seen.found == 1
    seen.update(["t1", "t2", "t3"])
    with pytest.raises(SearchExhaustedError, match="exhausted"):
        seen.propose(make, space=space, rng=np.random.default_rng(0))


def test_deduplicator_rejects_bad_retries():
    with pytest.raises(ConfigError):
        Deduplicator(max_retries=0)
    with pytest.raises(ConfigError):
        Deduplicator(breeds=0)


def test_deduplicator_without_a_walk_goes_from_breeding_to_random_samples():
    space = _StuckSpace(4)
    seen = Deduplicator(max_retries=20, breeds=2, walk=0)
    seen.add("t0")
    c = seen.propose(lambda: Candidate(genome=TinyGenome(0), origin="mutation"), space=space,
                     rng=np.random.default_rng(0))
    assert space.mutations == 0 and c.origin == "random" and str(c.genome) != "t0"
    with pytest.raises(ConfigError):
        Deduplicator(walk=-1)
