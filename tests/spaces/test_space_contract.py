"""Contract tests run against every registered search space (property tests over random seeds).

Spaces are built with tiny options so every decoded network builds and runs a forward pass in milliseconds.
A space registered later without an entry in ``TINY`` is tested with its defaults.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyevo.errors import InvalidGenomeError, UnknownNameError
from tinyevo.ir import ArchIR
from tinyevo.nn import build_model
from tinyevo.spaces import SPACES, SearchSpace, create_space

TINY: dict[str, dict[str, object]] = {
    "nb201": {"channels": 4, "cells_per_stage": 1, "input_shape": (3, 8, 8), "num_classes": 5},
    "macro": {"init_channels": 4, "head_channels": 8, "input_shape": (3, 8, 8), "num_classes": 5},
    "chain": {
        "input_shape": (1, 8, 8),
        "num_classes": 5,
        "max_layers": 4,
        "max_dense": 2,
        "channels": (2, 4, 8),
        "dense_units": (4, 8),
    },
    "blocks": {
        "input_shape": (3, 16, 16),
        "num_classes": 5,
        "resolutions": (8, 12, 16),
        "width_multipliers": (0.5, 1.0),
        "stage_strides": (1, 2, 2),
        "stage_channels": ((8,), (8, 16), (16, 24)),
        "depths": (1, 2),
        "stem_channels": 8,
    },
}

NAMES = SPACES.names()
SEEDS = st.integers(min_value=0, max_value=2**32 - 1)
PROPERTY = settings(max_examples=25, deadline=None)

_SPACES: dict[str, SearchSpace] = {}


def tiny(name: str) -> SearchSpace:
    if name not in _SPACES:
        _SPACES[name] = create_space(name, **TINY.get(name, {}))
    return _SPACES[name]


def num_params(ir: ArchIR) -> int:
    return sum(p.numel() for p in build_model(ir, seed=0).parameters())


def check_genome(space: SearchSpace, genome: object) -> ArchIR:
    """Hashable, round-trips through its string, decodes to valid IR that builds and runs."""
    hash(genome)
    text = str(genome)
    again = space.parse(text)
    assert again == genome and hash(again) == hash(genome) and str(again) == text
    ir = space.decode(genome)
    assert isinstance(ir, ArchIR)
    c, h, w = ir.input_shape
    model = build_model(ir, seed=0).eval()
    with torch.no_grad():
        out = model(torch.randn(2, c, h, w))
    assert out.shape == (2, getattr(space, "num_classes", out.shape[1]))
    assert torch.isfinite(out).all()
    return ir


def test_at_least_the_four_builtin_spaces_are_registered() -> None:
    assert {"nb201", "macro", "chain", "blocks"} <= set(NAMES)


def test_unknown_space_name_raises() -> None:
    with pytest.raises(UnknownNameError, match="no-such-space"):
        create_space("no-such-space")


@pytest.mark.parametrize("name", NAMES)
def test_space_satisfies_protocol(name: str) -> None:
    space = tiny(name)
    assert isinstance(space, SearchSpace)
    assert space.name == name


@pytest.mark.parametrize("name", NAMES)
@PROPERTY
@given(seed=SEEDS)
def test_sample_is_valid(name: str, seed: int) -> None:
    space = tiny(name)
    check_genome(space, space.sample(np.random.default_rng(seed)))


@pytest.mark.parametrize("name", NAMES)
@PROPERTY
@given(seed=SEEDS)
def test_mutate_gives_a_different_valid_genome(name: str, seed: int) -> None:
    space = tiny(name)
    rng = np.random.default_rng(seed)
    parent = space.sample(rng)
    child = space.mutate(parent, rng)
    assert child != parent
    check_genome(space, child)


@pytest.mark.parametrize("name", NAMES)
@PROPERTY
@given(seed=SEEDS)
def test_crossover_gives_a_valid_genome(name: str, seed: int) -> None:
    space = tiny(name)
    rng = np.random.default_rng(seed)
    a, b = space.sample(rng), space.mutate(space.sample(rng), rng)
    check_genome(space, space.crossover(a, b, rng))
    assert space.crossover(a, a, rng) == a  # a child of two identical parents is that parent


@pytest.mark.parametrize("name", NAMES)
@PROPERTY
@given(seed=SEEDS)
def test_same_seed_same_sequence(name: str, seed: int) -> None:
    space = tiny(name)

    def run(s: int) -> list[str]:
        rng = np.random.default_rng(s)
        a, b = space.sample(rng), space.sample(rng)
        return [str(a), str(b), str(space.mutate(a, rng)), str(space.crossover(a, b, rng))]

    assert run(seed) == run(seed)


@pytest.mark.parametrize("name", NAMES)
@PROPERTY
@given(seed=SEEDS)
def test_features_have_fixed_length(name: str, seed: int) -> None:
    space = tiny(name)
    rng = np.random.default_rng(seed)
    ref = space.features(space.trivial())
    for genome in (space.sample(rng), space.sample(rng)):
        vec = space.features(genome)
        assert isinstance(vec, np.ndarray) and vec.dtype.kind == "f"
        assert vec.shape == ref.shape and vec.ndim == 1
        assert np.isfinite(vec).all()


@pytest.mark.parametrize("name", NAMES)
def test_features_distinguish_genomes(name: str) -> None:
    space = tiny(name)
    rng = np.random.default_rng(0)
    genomes = {space.sample(rng) for _ in range(30)}
    vectors = {space.features(g).tobytes() for g in genomes}
    assert len(vectors) >= 0.9 * len(genomes)


@pytest.mark.parametrize("name", NAMES)
def test_trivial_is_valid(name: str) -> None:
    space = tiny(name)
    check_genome(space, space.trivial())


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=10, deadline=None)
@given(seed=SEEDS)
def test_trivial_is_no_bigger_than_samples(name: str, seed: int) -> None:
    space = tiny(name)
    smallest = num_params(space.decode(space.trivial()))
    assert smallest <= num_params(space.decode(space.sample(np.random.default_rng(seed))))


BAD_STRINGS = ["", "   ", "garbage", "???", "-", "0" * 200, "|none~0|"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("text", BAD_STRINGS)
def test_malformed_strings_raise_invalid_genome(name: str, text: str) -> None:
    with pytest.raises(InvalidGenomeError):
        tiny(name).parse(text)


@pytest.mark.parametrize("name", NAMES)
@PROPERTY
@given(seed=SEEDS, junk=st.sampled_from(["#", " x", "\x00", "~~"]), at_end=st.booleans())
def test_corrupted_genome_strings_raise_invalid_genome(name: str, seed: int, junk: str, at_end: bool) -> None:
    space = tiny(name)
    text = str(space.sample(np.random.default_rng(seed)))
    with pytest.raises(InvalidGenomeError):
        space.parse(text + junk if at_end else junk + text)


@pytest.mark.parametrize("name", NAMES)
def test_default_options_decode(name: str) -> None:
    """The full-size default space decodes its trivial network and a sample (IR only, no torch)."""
    space = create_space(name)
    for genome in (space.trivial(), space.sample(np.random.default_rng(0))):
        ir = space.decode(genome)
        assert ir.output_shape[0] == getattr(space, "num_classes", ir.output_shape[0])
        assert math.prod(ir.output_shape[1:]) == 1
