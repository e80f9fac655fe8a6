"""NAS-Bench-Macro space: genome format, skeleton, and agreement with the benchmark's params / FLOPs."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from tinyevo.errors import InvalidGenomeError
from tinyevo.ir import ArchIR, Conv2d, Dense, DepthwiseConv2d
from tinyevo.nn import build_model
from tinyevo.spaces import create_space
from tinyevo.spaces.macro import MacroGenome, MacroSpace


def shared_dir() -> Path:
    env = os.environ.get("TINYEVO_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / ".." / "shared"


BENCH = shared_dir() / "benchmarks" / "nas-bench-macro_cifar10.json"


@cache
def bench() -> dict[str, dict]:
    if not BENCH.is_file():
        pytest.skip(f"NAS-Bench-Macro table not found at {BENCH} (shared data is absent)")
    return json.loads(BENCH.read_text())


def count(ir: ArchIR) -> tuple[int, int]:
    """(params incl. BN affine, multiply-accumulates of convs and dense layers) counted from the IR by
    hand."""
    params = macs = 0
    for node in ir.nodes[1:]:
        op, (c_in, h_in, w_in) = node.op, ir.in_shapes(node)[0]
        c, h, w = ir.shapes[node.name]
        if isinstance(op, Conv2d):
            params += c_in // op.groups * c * op.kernel**2 + 2 * c
            macs += c_in // op.groups * op.kernel**2 * c * h * w
        elif isinstance(op, DepthwiseConv2d):
            params += c * op.kernel**2 + 2 * c
            macs += op.kernel**2 * c * h * w
        elif isinstance(op, Dense):
            params += c_in * h_in * w_in * c + c
            macs += c_in * h_in * w_in * c
    return params, macs


def test_genome_string_is_the_benchmark_key() -> None:
    space = create_space("macro")
    g = space.parse("01201201")
    assert g == MacroGenome((0, 1, 2, 0, 1, 2, 0, 1)) and str(g) == "01201201"
    assert str(space.trivial()) == "00000000"


@pytest.mark.parametrize("text", ["0120120", "012012012", "01201203", "0120120a", "0 201201", "+1201201"])
def test_malformed_keys_raise(text: str) -> None:
    with pytest.raises(InvalidGenomeError, match="8 digits"):
        MacroSpace().parse(text)


def test_genome_of_the_wrong_length_is_rejected() -> None:
    with pytest.raises(InvalidGenomeError, match="8 layers"):
        MacroSpace().decode(MacroGenome((1, 2)))
    with pytest.raises(InvalidGenomeError):
        MacroGenome((0, 3))


def test_skeleton_strides_channels_and_identity_at_downsampling() -> None:
    ir = MacroSpace().decode(MacroGenome((0,) * 8))
    # all-identity: stem, one stride-2 1x1 projection per stage, head conv, pool, classifier
    names = [n.name for n in ir.nodes]
    assert names == ["input", "stem", "l0.down", "l2.down", "l5.down", "head", "gap", "classifier"]
    assert [ir.shapes[n] for n in ("stem", "l0.down", "l2.down", "l5.down", "head")] == [
        (32, 32, 32),
        (64, 16, 16),
        (128, 8, 8),
        (256, 4, 4),
        (1280, 4, 4),
    ]
    down = ir.node("l0.down").op
    assert isinstance(down, Conv2d) and down.kernel == 1 and down.stride == 2 and down.act == "none"


def test_mobilenet_block_shortcut_only_when_shapes_match() -> None:
    ir = MacroSpace().decode(MacroGenome((2, 1, 0, 0, 0, 0, 0, 0)))
    assert "l0.add" not in {n.name for n in ir.nodes}  # stride 2, 32 -> 64
    assert ir.node("l1.add").inputs == ("l1.project", "l0.project")
    assert ir.node("l0.expand").op.out_channels == 32 * 6 and ir.node("l0.dw").op.kernel == 5
    assert ir.node("l1.expand").op.out_channels == 64 * 3 and ir.node("l1.dw").op.kernel == 3


def test_neighbours_are_all_single_edits() -> None:
    space = MacroSpace()
    g = space.parse("01201201")
    nbrs = space.neighbours(g)
    assert len(nbrs) == 16 == len(set(nbrs))
    assert all(sum(a != b for a, b in zip(str(n), str(g), strict=True)) == 1 for n in nbrs)


def test_features_are_one_hot_per_layer() -> None:
    space = MacroSpace()
    vec = space.features(space.parse("01201201"))
    assert vec.shape == (24,) and vec.sum() == 8
    assert vec.reshape(8, 3).argmax(axis=1).tolist() == [0, 1, 2, 0, 1, 2, 0, 1]


@pytest.mark.parametrize("key", ["00000000", "00000001", "10000000", "22222222", "11111111", "01201201"])
def test_torch_parameter_count_matches_benchmark(key: str) -> None:
    space = MacroSpace()
    model = build_model(space.decode(space.parse(key)))
    assert sum(p.numel() for p in model.parameters()) == bench()[key]["params"]


def test_params_and_flops_match_benchmark_for_many_keys() -> None:
    space = MacroSpace()
    table = bench()
    keys = sorted(table)[::17]  # 386 of the 6,561 architectures, spread over the table
    for key in keys:
        params, macs = count(space.decode(space.parse(key)))
        assert (params, macs) == (table[key]["params"], table[key]["flops"]), key


def test_every_benchmark_key_parses_and_sampling_stays_in_the_table() -> None:
    space = MacroSpace()
    table = bench()
    assert len(table) == 3**8
    assert all(str(space.parse(k)) == k for k in table)
    rng = np.random.default_rng(0)
    assert all(str(space.sample(rng)) in table for _ in range(50))
