"""A padded strided average pool of a 1-channel tensor lowers to one ``AVERAGE_POOL_2D`` (the exporter folds its
two-copy chain, ``tests/deploy/test_two_copy_pool_arena.py``), and the TFLM tail model knows ``SLICE`` (models
from elsewhere may have one). Buffers are counted by hand here."""

from __future__ import annotations

import math

import pytest

from tinyevo.cost import estimate_cost, lower
from tinyevo.cost.tflm_tail import TailOp, TailSpec, tflm_tail
from tinyevo.spaces import create_space


def _ir(genome: str, shape: tuple[int, int, int] = (1, 12, 12)):  # type: ignore[no-untyped-def]
    space = create_space("chain", input_shape=shape, num_classes=5)
    return space.decode(space.parse(genome))


@pytest.mark.parametrize("hw", [7, 8, 12, 13])
@pytest.mark.parametrize("kernel", [2, 3])
def test_one_channel_strided_avg_pool_is_one_kernel(hw: int, kernel: int) -> None:
    ir = _ir(f"avgpool_k{kernel}_s2-flat", (1, hw, hw))
    g = lower(ir)
    assert [op.tflite for op in g.ops] == ["AVERAGE_POOL_2D", "FULLY_CONNECTED"]
    out = math.ceil(hw / 2)
    assert g.tensors[g.ops[0].name].shape == (1, out, out)


def test_tflm_head_of_the_folded_pool_counted_by_hand() -> None:
    ir = _ir("avgpool_k3_s2-conv_k3_s1_c4-flat-dense_c8")
    # during the pool the 144 B input and its 36 B output (48 B, 16-byte aligned) are live; during the
    # depthwise conv 48 B in + 144 B out
    assert estimate_cost(ir, planner="tflm").peak_sram_bytes == 144 + 48


def test_tail_model_knows_slice() -> None:
    base = TailSpec(ops=(TailOp("AVERAGE_POOL_2D", io_channels=(1, 1)),), tensors=2, planned=2)
    with_slice = TailSpec(ops=(*base.ops, TailOp("SLICE", io_channels=(1, 0, 0, 1))), tensors=5, planned=3)
    host = {"pointer_size": 8, "recording": True, "compression": True}
    a, b = tflm_tail(base, **host), tflm_tail(with_slice, **host)
    # a SLICE adds a node (NodeAndRegistration) and its tensors, no builtin data and no OpData
    assert b.sections.get("builtin data", 0) == a.sections.get("builtin data", 0)
    assert b.sections["Persistent buffer data"] == a.sections["Persistent buffer data"]
    assert b.total > a.total
