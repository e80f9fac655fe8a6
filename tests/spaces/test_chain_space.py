"""Chain space: genome grammar, validity rules, operators, and the range of network sizes it can express."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyevo.errors import ConfigError, InvalidGenomeError
from tinyevo.ir import Add, Conv2d, Dense, DepthwiseConv2d, GlobalPool, Pool2d
from tinyevo.nn import build_model
from tinyevo.spaces import create_space
from tinyevo.spaces.chain import (
    ChainGenome,
    ChainLayer,
    ChainSpace,
    ChangeHead,
    ChangeLayer,
    InsertLayer,
    RemoveLayer,
    ToggleResidual,
)

SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


def params(space: ChainSpace, text: str) -> int:
    return sum(p.numel() for p in build_model(space.decode(space.parse(text))).parameters())


def test_defaults() -> None:
    space = create_space("chain")
    assert space.input_shape == (1, 28, 28) and space.num_classes == 10
    assert str(space.trivial()) == "gap"


def test_string_round_trip_of_a_handwritten_genome() -> None:
    text = "conv_k3_s2_c8-dsc_k3_s1_c8_r-maxpool_k2_s2-avgpool_k3_s1-flat-dense_c32-dense_c16"
    g = ChainSpace().parse(text)
    assert g.layers[1] == ChainLayer("dsc", 3, 1, 8, True)
    assert g.layers[2] == ChainLayer("maxpool", 2, 2)
    assert g.head == "flat" and g.dense == (32, 16)
    assert str(g) == text


def test_decode_structure() -> None:
    space = ChainSpace()
    ir = space.decode(
        space.parse("conv_k3_s2_c8-dsc_k5_s1_c8_r-conv_k3_s2_c16_r-maxpool_k2_s2-gap-dense_c32")
    )
    ops = {n.name: n.op for n in ir.nodes}
    assert isinstance(ops["l0.conv"], Conv2d) and ops["l0.conv"].act == "relu"
    assert isinstance(ops["l1.dw"], DepthwiseConv2d) and ops["l1.dw"].kernel == 5
    assert ops["l1.pw"].act == "none" and isinstance(ops["l1.add"], Add) and ops["l1.add"].act == "relu"
    assert ir.node("l1.add").inputs == ("l1.pw", "l0.conv")  # same shape: identity skip
    assert ir.node("l2.add").inputs == ("l2.conv", "l2.proj")  # stride 2 and 8 -> 16: 1x1 projection
    assert ops["l2.proj"].stride == 2 and ops["l2.proj"].kernel == 1
    assert isinstance(ops["l3"], Pool2d) and ops["l3"].padding == "same"
    assert isinstance(ops["gap"], GlobalPool) and ops["dense0"].act == "relu"
    assert isinstance(ops["classifier"], Dense) and ir.output_shape == (10, 1, 1)
    assert ir.shapes["l3"] == (16, 4, 4)  # 28 -> 14 -> 7 -> 4 (SAME rounds up)


def test_flat_head_flattens_the_feature_map() -> None:
    space = ChainSpace()
    ir = space.decode(space.parse("conv_k3_s2_c4-flat"))
    assert not any(isinstance(n.op, GlobalPool) for n in ir.nodes)
    assert params(space, "conv_k3_s2_c4-flat") == (9 * 4 + 2 * 4) + (4 * 14 * 14 * 10 + 10)


def test_expresses_tiny_and_large_networks() -> None:
    space = ChainSpace()
    assert params(space, "gap") == 20
    # muNAS-scale MNIST net: a few hundred parameters (fits a 4.5 KB int8 flash budget)
    assert params(space, "conv_k3_s2_c4-maxpool_k2_s2-dsc_k3_s2_c8-gap") < 500
    assert params(space, "conv_k3_s1_c32-conv_k3_s2_c64-conv_k3_s2_c64-flat-dense_c128") > 400_000


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("conv_k3_s1_c8", "exactly one head"),
        ("gap-flat", "exactly one head"),
        ("dense_c16-gap", "malformed chain layer"),
        ("gap-conv_k3_s1_c8", "malformed dense"),
        ("conv_k4_s1_c8-gap", "kernel 4"),
        ("conv_k3_s3_c8-gap", "stride 3"),
        ("conv_k3_s1_c7-gap", "channels 7"),
        ("maxpool_k5_s2-gap", "kernel 5"),
        ("maxpool_k2_s2_c8-gap", "malformed"),
        ("gap-dense_c9", "dense width 9"),
        ("conv_k3_s1_c0-gap", "channels must be"),
        ("-".join(["conv_k3_s1_c8"] * 9) + "-gap", "9 feature layers"),
        ("gap-dense_c8-dense_c8-dense_c8", "3 dense layers"),
    ],
)
def test_invalid_genomes_raise_with_a_clear_message(text: str, match: str) -> None:
    with pytest.raises(InvalidGenomeError, match=match):
        ChainSpace().parse(text)


def test_no_stride_or_pool_on_a_1x1_feature_map() -> None:
    space = ChainSpace(input_shape=(1, 4, 4))
    space.parse("conv_k3_s2_c8-conv_k3_s2_c8-conv_k3_s1_c8-gap")  # 4 -> 2 -> 1 is fine
    with pytest.raises(InvalidGenomeError, match="1x1"):
        space.parse("conv_k3_s2_c8-conv_k3_s2_c8-conv_k3_s2_c8-gap")
    with pytest.raises(InvalidGenomeError, match="1x1"):
        space.parse("conv_k3_s2_c8-conv_k3_s2_c8-maxpool_k2_s1-gap")
    broken = ChainGenome(
        tuple(ChainLayer("conv", 3, 2, 8) for _ in range(3)) + (ChainLayer("maxpool", 2, 2),)
    )
    assert str(space.repair(broken)) == "conv_k3_s2_c8-conv_k3_s2_c8-conv_k3_s1_c8-gap"


def test_operators_do_what_they_say() -> None:
    space = ChainSpace()
    rng = np.random.default_rng(0)
    g = space.parse("conv_k3_s2_c8-maxpool_k2_s2-gap-dense_c32")
    assert RemoveLayer()(space, space.trivial(), rng) is None
    assert ToggleResidual()(space, space.parse("maxpool_k2_s2-gap"), rng) is None
    for _ in range(20):
        grown = InsertLayer()(space, g, rng)
        assert len(grown.layers) + len(grown.dense) == 4
        shrunk = RemoveLayer()(space, g, rng)
        assert len(shrunk.layers) + len(shrunk.dense) == 2
        changed = ChangeLayer()(space, g, rng)
        if changed is not None:
            assert len(changed.layers) == 2 and len(changed.dense) == 1
    assert ToggleResidual()(space, g, rng).layers[0].residual
    assert ChangeHead()(space, g, rng).head == "flat"
    full = ChainSpace(max_layers=1, max_dense=1)
    assert InsertLayer()(full, full.parse("conv_k3_s1_c8-gap-dense_c32"), rng) is None


def test_channel_changes_are_one_step() -> None:
    space = ChainSpace(layer_ops=("conv",), kernels=(3,), strides=(1,), heads=("gap",), max_dense=0)
    g = space.parse("conv_k3_s1_c16-gap")
    seen = {ChangeLayer()(space, g, np.random.default_rng(s)) for s in range(40)} - {None}
    assert {c.layers[0].channels for c in seen if c.layers[0].op == "conv"} == {12, 24}


def test_custom_mutation_set_is_used() -> None:
    space = ChainSpace(mutations=(ChangeHead(),))
    rng = np.random.default_rng(1)
    g = space.parse("conv_k3_s1_c8-gap")
    assert space.mutate(g, rng) == space.parse("conv_k3_s1_c8-flat")


@settings(max_examples=25, deadline=None)
@given(seed=SEEDS)
def test_crossover_of_parents_of_different_lengths(seed: int) -> None:
    space = ChainSpace(input_shape=(1, 8, 8))
    rng = np.random.default_rng(seed)
    a = space.parse("conv_k3_s1_c2-conv_k3_s1_c4-conv_k3_s1_c8-conv_k3_s1_c12-conv_k3_s1_c16-gap")
    b = space.parse("dsc_k5_s1_c64-flat-dense_c8")
    child = space.crossover(a, b, rng)
    space.validate(child)
    # a prefix of one parent followed by a suffix of the other
    ok = False
    for p, q in ((a, b), (b, a)):
        for i in range(len(p.layers) + 1):
            for j in range(len(q.layers) + 1):
                ok |= child.layers == p.layers[:i] + q.layers[j:]
    assert ok
    assert child.head in (a.head, b.head)


@settings(max_examples=25, deadline=None)
@given(seed=SEEDS)
def test_long_random_walks_stay_valid(seed: int) -> None:
    space = ChainSpace(input_shape=(1, 6, 6), max_layers=5)
    rng = np.random.default_rng(seed)
    g = space.trivial()
    for _ in range(40):
        g = space.mutate(g, rng)
        space.parse(str(g))
        space.decode(g)


def test_features_layout() -> None:
    space = ChainSpace(max_layers=3, max_dense=2)
    vec = space.features(space.parse("conv_k3_s2_c8_r-maxpool_k2_s2-gap-dense_c16"))
    assert vec.shape == (3 * 9 + 2 * 2 + 4 + 2,)
    assert vec[:2].tolist() == [1.0, 1.0] and vec[8] == 1.0  # present, conv, residual
    assert vec[9 + 3] == 1.0  # second layer is a maxpool
    assert vec[18] == 0.0  # third position empty


def test_bad_options_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="include 1"):
        ChainSpace(strides=(2,))
    with pytest.raises(ConfigError):
        ChainSpace(layer_ops=("conv", "lstm"))
    with pytest.raises(ConfigError):
        ChainSpace(channels=())
