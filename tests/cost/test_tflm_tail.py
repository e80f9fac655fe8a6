"""The TFLM persistent-tail model: struct layouts against ctypes (the host's C compiler rules), a hand-computed
32-bit tail, and the ``tflm-mcu`` planner (the default) pricing head + tail."""

from __future__ import annotations

import ctypes as C

import pytest

from tinyevo.cost import TFLMArenaPlanner, estimate_cost, lower, sram_caption, tflm_persistent_bytes
from tinyevo.cost import tflm_tail as T
from tinyevo.cost.tflm_tail import (
    TailOp,
    TailSpec,
    tail_spec_from_graph,
    tflm_arena_required,
    tflm_tail,
    tflm_tail_bytes,
)
from tinyevo.errors import ConfigError
from tinyevo.ir import ArchIR

from test_cost_memory import chain3  # input 1x8x8 -> conv c4 -> conv c8 /2 -> global pool -> dense 10


def _ctypes(*fields: type) -> tuple[int, int]:
    class S(C.Structure):
        _fields_ = [(f"f{i}", t) for i, t in enumerate(fields)]
    return C.sizeof(S), C.alignment(S)


P, I, B = C.c_void_p, C.c_int32, C.c_bool


@pytest.mark.skipif(C.sizeof(C.c_void_p) != 8, reason="the oracle is this host's 64-bit C layout")
def test_struct_layouts_match_the_c_compiler_on_a_64_bit_host() -> None:
    assert T._eval_tensor(8) == _ctypes(P, P, I)
    assert T._tflite_tensor(8) == _ctypes(I, P, C.c_float, I, P, P, C.c_size_t, I, I, B)
    assert T._node_and_registration(8) == _ctypes(P, P, P, P, P, P, I, P)
    assert T._affine_quantization(8) == _ctypes(P, P, I)
    assert T._greedy_planner(8) == _ctypes(P, I, I, P, P, P, P, I, I, P, B)
    assert T._arena_allocator(8, False) == _ctypes(P, P, P, P, P, P, P, C.c_ssize_t, I)
    # OpDataConv (+ two scratch indices with compression), OpDataFullyConnected
    assert T._op_data("CONV_2D", 8, False) == _ctypes(*[I] * 9, P, P, I, I, I)[0]
    assert T._op_data("CONV_2D", 8, True) == _ctypes(*[I] * 9, P, P, *[I] * 5)[0]
    assert T._op_data("FULLY_CONNECTED", 8, False) == _ctypes(*[I] * 9, P, P, B)[0]
    assert T._op_data("CONCATENATION", 8, False) == _ctypes(I, P, P, I, I, C.c_float)[0]
    assert T._op_data("PAD", 8, False) == _ctypes(C.c_int8, *[I] * 5, C.c_int8, *[I] * 5, I, I)[0]


def test_32_bit_structs() -> None:
    assert T._eval_tensor(4) == (12, 4)
    assert T._tflite_tensor(4) == (40, 4)
    assert T._node_and_registration(4) == (32, 4)
    assert T._micro_allocator(4, False, False) == (36, 4)
    assert T._op_data("CONV_2D", 4, False) == 56


def test_hand_computed_32_bit_tail_of_one_conv() -> None:
    # allocator 36 | planner 44 -> 80 | MicroAllocator 36 -> 116 | builtin-data allocator 8 -> 124 |
    # SubgraphAllocations 8 -> 132 | 4 eval tensors x 12 -> 180 | 1 node x 32 -> 212 | conv params 28 -> 240 |
    # OpDataConv 56 @16 -> 304 | 2 x (8 x int32) @16 -> 336, 368 | input array 4 @16 -> 384 |
    # TfLiteTensor 40 -> 424, quantisation 12 -> 436, zero points 8 -> 444 | output array 4 @16 -> 448 |
    # TfLiteTensor 40 -> 488, quantisation 12 -> 500, zero points 8 -> 508
    spec = TailSpec(ops=(TailOp("CONV_2D", per_channel=8),), tensors=4)
    assert tflm_tail_bytes(spec, pointer_size=4) == 508
    # the 64-bit host's recording allocator with compression (the same allocations, bigger structs)
    assert tflm_tail_bytes(spec, pointer_size=8, recording=True, compression=True) > 508


def test_tail_grows_with_ops_tensors_and_channels() -> None:
    base = TailSpec(ops=(TailOp("CONV_2D", per_channel=8),), tensors=4)
    more_channels = TailSpec(ops=(TailOp("CONV_2D", per_channel=64),), tensors=4)
    more_tensors = TailSpec(ops=(TailOp("CONV_2D", per_channel=8),), tensors=40)
    more_ops = TailSpec(ops=(TailOp("CONV_2D", per_channel=8), TailOp("ADD")), tensors=4)
    b = tflm_tail_bytes(base)
    assert tflm_tail_bytes(more_channels) == b + 2 * 4 * 56  # two int32 arrays, 16-aligned sizes
    assert tflm_tail_bytes(more_tensors) > b and tflm_tail_bytes(more_ops) > b


def test_scratch_handles_and_unknown_kernels() -> None:
    with_mean = TailSpec(ops=(TailOp("MEAN"),), tensors=3)
    b = tflm_tail(with_mean, pointer_size=4)
    assert b.sections["scratch buffer handles"] == 3 * 4
    with pytest.raises(ConfigError, match="SPLIT"):
        tflm_tail(TailSpec(ops=(TailOp("SPLIT"),), tensors=3))
    with pytest.raises(ConfigError, match="pointer_size"):
        tflm_tail(with_mean, pointer_size=2)


def test_hand_computed_32_bit_required_arena_of_one_conv() -> None:
    # Prepare of the conv: scratch-request array 12 x 12 = 144, then seven temporary TfLiteTensors (40) with
    # quantisation (12) and zero points (input / output 8, filter / bias 4 + 4 x 8 = 36): output, input,
    # filter held by ConvPrepare (60 + 60 + 88) and input, filter, bias, output by CalculateOpDataConv
    # (60 + 88 + 88 + 60): 144 + 208 + 296 = 648, while the tail holds everything up to the conv's
    # per-channel arrays (368): 1016. Planning: 144 + subgraph offset 4 + 4 AllocationInfo x 24 -> 244 ->
    # 256 + 2 planned buffers x 40 = 336 (+ 368 = 704). After: head 0 + the tail 508.
    spec = TailSpec(ops=(TailOp("CONV_2D", per_channel=8, io_channels=(1, 8, 8, 1)),), tensors=4, planned=2)
    assert tflm_arena_required(spec, 0, pointer_size=4) == 1024  # 1016 rounded up to 16
    assert tflm_arena_required(spec, 4096, pointer_size=4) == 4096 + 512  # a big head dominates (508 -> 512)


def test_tflm_mcu_planner_is_head_plus_32_bit_tail_and_the_default() -> None:
    ir: ArchIR = chain3()
    head = estimate_cost(ir, planner="tflm")
    arena = estimate_cost(ir, planner="tflm-mcu")
    spec = tail_spec_from_graph(lower(ir))
    tail = tflm_tail_bytes(spec, pointer_size=4)
    assert arena.peak_sram_bytes == tflm_arena_required(spec, head.peak_sram_bytes, pointer_size=4)
    assert arena.peak_sram_bytes >= head.peak_sram_bytes + tail
    assert arena.memory.persistent_bytes == tail and arena.memory.head_bytes >= head.peak_sram_bytes
    assert estimate_cost(ir).peak_sram_bytes == arena.peak_sram_bytes  # the default prices the whole arena
    assert estimate_cost(ir, planner="optimal").memory.persistent_bytes == 0
    host = estimate_cost(ir, planner=TFLMArenaPlanner(pointer_size=8, recording=True, compression=True))
    assert host.memory.persistent_bytes == tflm_persistent_bytes(lower(ir), pointer_size=8, recording=True,
                                                                 compression=True) > tail


def test_sram_captions_name_the_runtime() -> None:
    assert sram_caption("tflm-mcu") == "SRAM (TFLM arena, 32-bit)"
    assert sram_caption(TFLMArenaPlanner(pointer_size=8)) == "SRAM (TFLM arena, 64-bit)"
    assert "optimal" in sram_caption("optimal")
