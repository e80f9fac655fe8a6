"""Blocks space: genome grammar, resolution / width genes, TinyNAS sub-spaces and the four block types."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyevo.errors import ConfigError, InvalidGenomeError
from tinyevo.ir import Add, Concat, Conv2d
from tinyevo.nn import build_model
from tinyevo.spaces import create_space
from tinyevo.spaces.blocks import BlocksGenome, BlocksSpace, Stage, round_channels

SEEDS = st.integers(min_value=0, max_value=2**32 - 1)
EXAMPLE = (
    "r96_w0.5-mb_d2_k3_e6_c16-res_d1_k5_c24-dense_d2_k3_c40-conv_d1_k3_c64-mb_d3_k7_e4_c96-mb_d1_k3_e1_c160"
)
SMALL = {
    "resolutions": (8, 16),
    "width_multipliers": (0.5, 1.0),
    "stage_strides": (1, 2),
    "stage_channels": ((8, 16), (16, 24)),
    "depths": (1, 2),
    "stem_channels": 8,
}


def test_defaults() -> None:
    space = create_space("blocks")
    assert space.input_shape == (3, 96, 96) and space.num_classes == 10
    assert space.width_multipliers == (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    assert space.resolutions == (48, 64, 80, 96, 112, 128, 144, 160, 176)


def test_string_round_trip_and_fields() -> None:
    g = BlocksSpace().parse(EXAMPLE)
    assert g.resolution == 96 and g.width == 0.5
    assert g.stages[0] == Stage("mb", 2, 16, 3, 6) and g.stages[1] == Stage("res", 1, 24, 5, None)
    assert str(g) == EXAMPLE
    assert str(BlocksSpace().parse(EXAMPLE.replace("w0.5", "w0.50"))) == EXAMPLE  # one canonical form


@pytest.mark.parametrize("r", [48, 112, 176])
def test_resolution_gene_sets_the_input_shape(r: int) -> None:
    space = BlocksSpace(input_shape=(1, 50, 50))
    ir = space.decode(space.parse(EXAMPLE.replace("r96", f"r{r}")))
    assert ir.input_shape == (1, r, r)


def test_round_channels() -> None:
    assert [round_channels(c) for c in (1, 4.8, 11.9, 12, 20, 28, 24.000000000000004, 100)] == [
        8,
        8,
        8,
        16,
        24,
        32,
        24,
        104,
    ]


def test_width_multiplier_scales_channels_in_multiples_of_eight() -> None:
    space = BlocksSpace()
    for w in space.width_multipliers:
        ir = space.decode(space.parse(EXAMPLE.replace("w0.5", f"w{w!r}")))
        convs = [
            n.op.out_channels for n in ir.nodes if isinstance(n.op, Conv2d) and n.name.endswith("project")
        ]
        assert all(c % 8 == 0 and c >= 8 for c in convs)
        assert ir.shapes["stem"][0] == round_channels(16 * w)
        assert ir.shapes["s5b0.project"][0] == round_channels(160 * w)


def test_tinynas_subspace_fixes_width_and_resolution() -> None:
    space = create_space("blocks", width_multipliers=(0.7,), resolutions=(80,))
    rng = np.random.default_rng(0)
    g = space.sample(rng)
    for _ in range(30):
        g = space.mutate(g, rng)
        assert (g.resolution, g.width) == (80, 0.7)
        assert space.decode(g).input_shape == (3, 80, 80)
    with pytest.raises(InvalidGenomeError, match="resolution 96"):
        space.parse(EXAMPLE.replace("w0.5", "w0.7"))


def test_block_structures() -> None:
    space = BlocksSpace(**SMALL)
    ir = space.decode(space.parse("r16_w1.0-mb_d2_k5_e1_c8-dense_d2_k3_c24"))
    names = {n.name for n in ir.nodes}
    assert "s0b0.expand" not in names and ir.node("s0b0.dw").op.kernel == 5  # expand 1: no expansion conv
    assert ir.node("s0b0.add").inputs == ("s0b0.project", "stem")  # stem 8 -> 8, stride 1: shortcut
    assert isinstance(ir.node("s1b0.concat").op, Concat)
    assert ir.node("s1b0.transition").op.stride == 2 and ir.shapes["s1b0.concat"] == (24, 4, 4)
    assert ir.shapes["s1b1.transition"][0] == 12 and ir.shapes["s1b1.concat"] == (24, 4, 4)

    ir = space.decode(space.parse("r16_w1.0-res_d1_k3_c16-conv_d2_k5_c24"))
    assert isinstance(ir.node("s0b0.add").op, Add) and ir.node("s0b0.add").inputs == (
        "s0b0.conv2",
        "s0b0.proj",
    )
    assert ir.node("s1b0.conv").op.kernel == 5 and ir.node("s1b0.conv").op.stride == 2
    assert ir.shapes["s1b1.conv"] == (24, 4, 4)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("w0.5-" + EXAMPLE.split("-", 1)[1], "must start with"),
        ("r96_w0.5", "6 stages"),
        (EXAMPLE.replace("mb_d2_k3_e6_c16", "mb_d2_k3_c16"), "expansion ratio"),
        (EXAMPLE.replace("res_d1_k5_c24", "res_d1_k5_e3_c24"), "expansion ratio"),
        (EXAMPLE.replace("res_d1_k5_c24", "sep_d1_k5_c24"), "malformed stage"),
        (EXAMPLE.replace("w0.5", "w0.55"), "width multiplier 0.55"),
        (EXAMPLE.replace("r96", "r95"), "resolution 95"),
        (EXAMPLE.replace("res_d1_k5_c24", "res_d1_k5_c32"), "channels 32"),
        (EXAMPLE.replace("res_d1_k5_c24", "res_d9_k5_c24"), "depth 9"),
        (EXAMPLE.replace("res_d1_k5_c24", "res_d1_k4_c24"), "kernel 4"),
        (EXAMPLE.replace("e6", "e5"), "expand 5"),
        (EXAMPLE.replace("res_d1", "res_d0"), "depth must be"),
    ],
)
def test_invalid_genomes_raise_with_a_clear_message(text: str, match: str) -> None:
    with pytest.raises(InvalidGenomeError, match=match):
        BlocksSpace().parse(text)


def test_trivial_takes_every_smallest_choice() -> None:
    assert str(BlocksSpace().trivial()) == (
        "r48_w0.3-mb_d1_k3_e1_c8-mb_d1_k3_e1_c16-mb_d1_k3_e1_c24-mb_d1_k3_e1_c48-mb_d1_k3_e1_c80-mb_d1_k3_e1_c128"
    )
    assert BlocksSpace(block_types=("res", "conv")).trivial().stages[0].block == "conv"


@settings(max_examples=25, deadline=None)
@given(seed=SEEDS)
def test_mutation_changes_exactly_one_gene(seed: int) -> None:
    space = BlocksSpace()
    rng = np.random.default_rng(seed)
    a = space.sample(rng)
    b = space.mutate(a, rng)
    diffs = (a.resolution != b.resolution) + (a.width != b.width)
    for sa, sb in zip(a.stages, b.stages, strict=True):
        changed = [f.name for f in fields(Stage) if getattr(sa, f.name) != getattr(sb, f.name)]
        # switching to or from MBConv also sets / clears the expansion ratio
        diffs += 1 if changed and set(changed) <= {"block", "expand"} and "block" in changed else len(changed)
    assert diffs == 1


@settings(max_examples=25, deadline=None)
@given(seed=SEEDS)
def test_crossover_takes_each_gene_from_a_parent(seed: int) -> None:
    space = BlocksSpace()
    rng = np.random.default_rng(seed)
    a, b = space.sample(rng), space.sample(rng)
    c = space.crossover(a, b, rng)
    assert c.resolution in (a.resolution, b.resolution) and c.width in (a.width, b.width)
    assert all(s in (x, y) for s, x, y in zip(c.stages, a.stages, b.stages, strict=True))


def test_single_point_space_mutation_returns_the_genome() -> None:
    space = BlocksSpace(
        width_multipliers=(1.0,),
        resolutions=(16,),
        block_types=("conv",),
        depths=(1,),
        kernels=(3,),
        stage_strides=(2,),
        stage_channels=((8,),),
    )
    g = space.trivial()
    assert space.mutate(g, np.random.default_rng(0)) == g


def test_features_layout() -> None:
    space = BlocksSpace()
    vec = space.features(space.parse(EXAMPLE))
    assert vec.shape == (2 + 6 * 8,)
    assert vec[0] == 96 / 176 and vec[1] == 0.5
    assert vec[2:6].tolist() == [1, 0, 0, 0] and vec[9] == 1.0  # stage 0: mb, expand 6 / 6
    assert vec[10:14].tolist() == [0, 1, 0, 0] and vec[17] == 0.0  # stage 1: res, no expand


def test_full_size_networks_run() -> None:
    space = BlocksSpace()
    g = space.parse(EXAMPLE.replace("r96", "r48").replace("w0.5", "w0.3"))
    model = build_model(space.decode(g), seed=0)
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 48, 48)).shape == (1, 10)


def test_bad_options_raise_config_error() -> None:
    with pytest.raises(ConfigError):
        BlocksSpace(stage_strides=(1, 2), stage_channels=((8,),))
    with pytest.raises(ConfigError):
        BlocksSpace(block_types=("transformer",))
    with pytest.raises(ConfigError):
        BlocksSpace(width_multipliers=(0.0,))


def test_genome_constructor_normalises_width() -> None:
    assert BlocksGenome(32, 1, ()).width == 1.0 and str(BlocksGenome(32, 1, ())) == "r32_w1.0"
