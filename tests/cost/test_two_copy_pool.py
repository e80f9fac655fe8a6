"""A padded strided average pool of a 1-channel tensor lowers to the exporter's two-copy chain
(``CONCATENATION(x, x)`` -> 2-channel ``AVERAGE_POOL_2D`` -> ``SLICE``) for the TFLM planners, and the native
planner folds it back into one pool (the native code generator does the same to the exported model).

The expected buffers are counted by hand here; ``tests/deploy/test_two_copy_pool_arena.py`` compares them with
the real TFLite-Micro arena."""

from __future__ import annotations

import math

import pytest

from tinyevo.cost import estimate_cost, fold_duplicated_channels, lower
from tinyevo.cost.tflm_tail import tail_spec_from_graph, tflm_tail
from tinyevo.spaces import create_space


def _ir(genome: str, shape: tuple[int, int, int] = (1, 12, 12)):  # type: ignore[no-untyped-def]
    space = create_space("chain", input_shape=shape, num_classes=5)
    return space.decode(space.parse(genome))


def _tf_same_padding_total(size: int, kernel: int, stride: int) -> int:
    """TF's SAME padding on one axis (pad_total = max((ceil(n / s) - 1) * s + k - n, 0)), written out here."""
    return max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)


@pytest.mark.parametrize("hw", [7, 8, 12, 13])
@pytest.mark.parametrize("kernel", [2, 3])
def test_one_channel_strided_avg_pool_lowers_to_the_chain_exactly_when_padded(hw: int, kernel: int) -> None:
    ir = _ir(f"avgpool_k{kernel}_s2-flat", (1, hw, hw))
    kinds = [op.tflite for op in lower(ir).ops]
    padded = _tf_same_padding_total(hw, kernel, 2) > 0
    assert (kinds[:3] == ["CONCATENATION", "AVERAGE_POOL_2D", "SLICE"]) == padded, kinds
    if not padded:
        assert kinds[0] == "AVERAGE_POOL_2D"


def test_chain_shapes_and_the_tflm_head_counted_by_hand() -> None:
    ir = _ir("avgpool_k3_s2-conv_k3_s1_c4-flat-dense_c8")
    g = lower(ir)
    cat, pool, sl = g.ops[:3]
    assert cat.inputs == (g.input, g.input)
    assert g.tensors[cat.name].shape == (2, 12, 12)
    assert pool.inputs == (cat.name,) and g.tensors[pool.name].shape == (2, 6, 6)
    assert sl.inputs == (pool.name,) and g.tensors[sl.name].shape == (1, 6, 6)
    assert g.tensor_of["l0"] == sl.name  # the pool's value is the slice's output
    # during the concatenation the 144 B input and the 288 B copies are live (16-byte aligned, int8)
    assert estimate_cost(ir, planner="tflm").peak_sram_bytes == 144 + 288
    # other channel counts, max pools and stride 1 keep one kernel
    for genome, shape in [("avgpool_k3_s2-flat", (2, 12, 12)), ("maxpool_k3_s2-flat", (1, 12, 12)),
                          ("avgpool_k3_s1-flat", (1, 12, 12))]:
        assert "SLICE" not in [op.tflite for op in lower(_ir(genome, shape)).ops], genome


def test_tail_model_knows_the_chain_kernels() -> None:
    g = lower(_ir("avgpool_k3_s2-flat-dense_c8"))
    spec = tail_spec_from_graph(g)
    assert [op.kernel for op in spec.ops][:3] == ["CONCATENATION", "AVERAGE_POOL_2D", "SLICE"]
    # input, copies, pooled copies, slice, dense, classifier activations + begin, size, 2 x (weights, bias)
    assert spec.tensors == 6 + 2 + 4
    assert tflm_tail(spec).total > 0


def test_native_planner_folds_the_chain() -> None:
    ir = _ir("avgpool_k3_s2-flat")
    folded = fold_duplicated_channels(lower(ir))
    assert [op.tflite for op in folded.ops] == ["AVERAGE_POOL_2D", "FULLY_CONNECTED"]
    op = folded.ops[0]
    assert op.inputs == (folded.input,) and folded.ops[1].inputs == (op.name,)
    assert op.work == 6 * 6 * 9  # one copy's window elements
    report = estimate_cost(ir, planner="native")
    assert [o.tflite for o in report.graph.ops] == ["AVERAGE_POOL_2D", "FULLY_CONNECTED"]
    assert report.peak_sram_bytes == 144 + 36  # the pool's input and output, no copies
    # folding is idempotent, and a graph without a chain comes back as is
    assert fold_duplicated_channels(folded) is folded


def test_a_chain_whose_copies_have_another_reader_does_not_fold() -> None:
    g = lower(_ir("avgpool_k3_s2-flat"))
    cat = g.ops[0]
    extra = cat._replace(name="other", tflite="RELU", inputs=(cat.name,))
    shared = type(g)(precision=g.precision, ops=(*g.ops, extra), tensors={**g.tensors, "other": g.tensors[cat.name]},
                     input=g.input, output=g.output, tensor_of=g.tensor_of)
    assert [op.tflite for op in fold_duplicated_channels(shared).ops] == [
        "CONCATENATION", "AVERAGE_POOL_2D", "SLICE", "FULLY_CONNECTED", "RELU"]
