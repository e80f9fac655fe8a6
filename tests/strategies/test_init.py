"""Initial populations: random, trivial, rich (seeded)."""

from __future__ import annotations

import numpy as np
import pytest
from strategy_fakes import TinySpace

from tinyevo.errors import ConfigError, InvalidGenomeError, SearchExhaustedError
from tinyevo.strategies.init import RandomInit, RichInit, TrivialInit
from tinyevo.strategies.operators import Deduplicator


def grow(init, space, n, seed=0):
    rng, seen, prev, out = np.random.default_rng(seed), Deduplicator(), [], []
    for i in range(n):
        c = init.propose(space, index=i, previous=prev, rng=rng, seen=seen)
        prev.append(c.genome)
        out.append(c)
    return out


def test_random_init_is_unique(nb201):
    cands = grow(RandomInit(), nb201, 30)
    assert len({str(c.genome) for c in cands}) == 30
    assert {c.origin for c in cands} == {"random"}


def test_trivial_init_starts_trivial_then_mutates_earlier_members(nb201):
    cands = grow(TrivialInit(), nb201, 30)
    assert cands[0].genome == nb201.trivial() and cands[0].origin == "trivial"
    assert len({str(c.genome) for c in cands}) == 30
    earlier = {str(cands[0].genome)}
    for c in cands[1:]:
        assert c.origin == "mutation" and c.parents[0] in earlier
        parent = nb201.parse(c.parents[0])
        assert sum(a != b for a, b in zip(parent.ops, c.genome.ops, strict=True)) == 1
        earlier.add(str(c.genome))


def test_rich_init_seeds_first_then_mutations(nb201):
    seeds = (
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
        "|nor_conv_1x1~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|",
    )
    cands = grow(RichInit(seeds=seeds + seeds[:1]), nb201, 10)  # a repeated seed is used once
    assert [str(c.genome) for c in cands[:2]] == list(seeds)
    assert [c.origin for c in cands[:2]] == ["seed", "seed"]
    assert all(c.origin == "mutation" for c in cands[2:])
    assert len({str(c.genome) for c in cands}) == 10


def test_rich_init_rejects_bad_seeds(nb201):
    with pytest.raises(ConfigError):
        RichInit(seeds=())
    with pytest.raises(InvalidGenomeError):
        grow(RichInit(seeds=("not a genome",)), nb201, 1)


def test_inits_fall_back_then_raise_on_a_tiny_space():
    for init in (RandomInit(), TrivialInit(), RichInit(seeds=("t2",))):
        assert {str(c.genome) for c in grow(init, TinySpace(3), 3)} == {"t0", "t1", "t2"}
        with pytest.raises(SearchExhaustedError):
            grow(init, TinySpace(3), 4)
