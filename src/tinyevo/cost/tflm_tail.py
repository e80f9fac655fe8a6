"""The persistent ("tail") part of a TFLite-Micro tensor arena, from TFLM's own data structures.

TFLM splits its one arena into a *head* (non-persistent: the greedy planner's activation buffers and kernel
scratch, modelled by :class:`~tinyevo.cost.memory.TFLMPlanner`) and a *tail* that grows down from the arena's
end and holds everything that lives as long as the interpreter. This module replays, allocation by
allocation, what TFLM puts in the tail for a model, with the **pointer size as a parameter** (8 on a 64-bit
host such as the Python ``tflite-micro`` interpreter, 4 on a Cortex-M), so the same model gives the host's
number (validated: ``benchmarks/tflm_tail_check.py``, equal byte for byte) and the MCU's.

Every allocation is ``(size, alignment)``; the tail pointer moves down by the size and is then aligned down,
so the bytes a sequence takes depend on its order. The end of the arena is 16-byte aligned
(``MicroArenaBufferAlignment``). In TFLM's order (``MicroInterpreter`` construction, ``AllocateTensors``):

1. the arena allocator object (``SingleArenaBufferAllocator``: two interface vtable pointers, five pointers,
   an ``intptr_t`` checksum and an ``int`` count; the host's recording build adds four ``size_t`` counters),
   the ``GreedyMemoryPlanner`` object (a vtable pointer, four pointers, one more pointer, five ``int`` and a
   ``bool``) and the ``MicroAllocator`` object (a vtable pointer, four pointers, a ``bool``, two ``size_t``
   and a pointer; the recording build adds a pointer and seven ``RecordedAllocation`` records of three
   ``size_t``);
2. ``StartModelAllocation``: the builtin-data allocator object (vtable pointer + pointer), one
   ``SubgraphAllocations`` (two pointers), the ``TfLiteEvalTensor`` array (pointer, pointer, enum: one per
   tensor of the flatbuffer, constants included) and the ``NodeAndRegistration`` array (TFLM's static
   ``TfLiteNode``: six pointers and an ``int``, plus the registration pointer: one per operator);
3. each operator's parsed builtin options (``TfLiteConvParams`` etc., allocated with their own alignment;
   PAD, PADV2 and ZEROS_LIKE have none);
4. each kernel's ``Init``: its ``OpData`` (16-byte aligned, like every buffer a kernel asks for);
5. each kernel's ``Prepare``: conv, depthwise conv and per-channel dense layers allocate two ``int32``
   arrays (multiplier and shift) per output channel;
6. ``FinishModelAllocation``: one ``ScratchBufferHandle`` (a pointer) per scratch buffer requested, if any
   (MEAN and SUM ask for three, REDUCE_MAX for two with the reference kernels);
7. the interpreter's input and output ``TfLiteTensor*`` arrays and, for each graph input and output, a
   persistent ``TfLiteTensor`` (TFLM's static-memory layout) with its ``TfLiteAffineQuantization`` and a
   zero-point ``TfLiteIntArray`` of one ``int`` per quantisation channel.

Struct layouts follow the C rules (each member at a multiple of its alignment, the size a multiple of the
largest alignment; enums and ``int`` are 4 bytes, ``size_t`` and pointers ``pointer_size``); C++ derived
classes place their members after the base's data (the Itanium / AAPCS rule). The kernels are TFLM's
reference kernels without ``USE_TFLM_COMPRESSION`` (what the Python interpreter runs); a CMSIS-NN build asks
for the same ``OpData`` sizes of conv / depthwise / pooling plus scratch handles (not modelled separately).

Two entry points: :func:`tail_spec_from_flatbuffer` describes a real ``.tflite`` (what the validation uses),
:func:`tail_spec_from_graph` the cost model's lowered graph (what the search uses, before any export).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tinyevo.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from tinyevo.cost.lowering import DeployGraph
    from tinyevo.deploy.tflm import FlatbufferInfo

__all__ = [
    "POINTER_SIZES", "TailBreakdown", "TailOp", "TailSpec", "tflm_arena_required", "tflm_tail", "tflm_tail_bytes",
    "tail_spec_from_flatbuffer", "tail_spec_from_graph", "KNOWN_KERNELS",
]

POINTER_SIZES = (4, 8)
ARENA_ALIGNMENT = 16  # MicroArenaBufferAlignment(): kernels' persistent buffers and the arena's end

# member kinds: "ptr" (pointer, size_t, intptr_t), "i32" (int, int32_t, float, enums), "i8" (bool, int8_t)
Member = tuple[str, int]  # (kind, count)


def _layout(members: Iterable[Member], ptr: int, *, start: int = 0, align: int = 1) -> tuple[int, int, int]:
    """(data size, size, alignment) of a C struct / C++ class whose members are laid out after ``start``
    bytes of base-class data (alignment ``align`` so far)."""
    off = start
    for kind, count in members:
        size = {"ptr": ptr, "i32": 4, "i8": 1}[kind]
        a = size
        off = -(-off // a) * a + size * count
        align = max(align, a)
    return off, -(-off // align) * align, align


def _struct(members: Iterable[Member], ptr: int) -> tuple[int, int]:
    _d, size, align = _layout(members, ptr)
    return size, align


# --- TFLM's runtime objects (see the module docstring) -----------------------------------------------------

def _arena_allocator(ptr: int, recording: bool) -> tuple[int, int]:
    # SingleArenaBufferAllocator: INonPersistentBufferAllocator + IPersistentBufferAllocator (a vptr each),
    # buffer_head_, buffer_tail_, head_, tail_, temp_, intptr_t checksum, int count
    data, size, align = _layout([("ptr", 2), ("ptr", 5), ("ptr", 1), ("i32", 1)], ptr)
    if recording:  # RecordingSingleArenaBufferAllocator: requested head / tail, used bytes, count (size_t)
        _d, size, align = _layout([("ptr", 4)], ptr, start=data, align=align)
    return size, align


def _greedy_planner(ptr: int) -> tuple[int, int]:
    # vptr; max_buffer_count_, buffer_count_; requirements_, buffer_sizes_sorted_, buffer_ids_sorted_,
    # buffers_sorted_by_offset_; next_free_entry_, first_entry_index_; buffer_offsets_; bool
    return _struct([("ptr", 1), ("i32", 2), ("ptr", 4), ("i32", 2), ("ptr", 1), ("i8", 1)], ptr)


def _micro_allocator(ptr: int, recording: bool, compression: bool) -> tuple[int, int]:
    # vptr; non-persistent, persistent, builtin-data allocators, planner; bool model_is_allocating_;
    # size_t scratch request count; uint8_t* scratch head; size_t max head usage
    data, size, align = _layout([("ptr", 5), ("i8", 1), ("ptr", 3)], ptr)
    if recording:  # RecordingMicroAllocator: allocator pointer + 7 (8 with compression) RecordedAllocation
        records = 8 if compression else 7  # {size_t requested, used, count}
        _d, size, align = _layout([("ptr", 1 + records * 3)], ptr, start=data, align=align)
    return size, align


def _eval_tensor(ptr: int) -> tuple[int, int]:
    return _struct([("ptr", 2), ("i32", 1)], ptr)  # TfLitePtrUnion data, TfLiteIntArray* dims, TfLiteType


def _node_and_registration(ptr: int) -> tuple[int, int]:
    # static TfLiteNode: inputs, outputs, intermediates, user_data, builtin_data, custom_initial_data, int;
    # then the TFLMRegistration pointer
    node_size, align = _struct([("ptr", 6), ("i32", 1)], ptr)
    return node_size + ptr, align


def _tflite_tensor(ptr: int) -> tuple[int, int]:
    # static TfLiteTensor: TfLiteQuantization {enum, void*}, TfLiteQuantizationParams {float, int32},
    # data, dims, size_t bytes, TfLiteType, TfLiteAllocationType, bool is_variable
    return _struct([("i32", 1), ("ptr", 1), ("i32", 2), ("ptr", 3), ("i32", 2), ("i8", 1)], ptr)


def _affine_quantization(ptr: int) -> tuple[int, int]:
    return _struct([("ptr", 2), ("i32", 1)], ptr)  # TfLiteFloatArray* scale, TfLiteIntArray* zp, int32 dim


# builtin options structs (no pointers): (size, alignment); PAD / PADV2 / ZEROS_LIKE parse no options
_BUILTIN_PARAMS: dict[str, tuple[int, int] | None] = {
    "CONV_2D": (7 * 4, 4),  # padding, strides x2, activation, dilations x2, quantized_bias_type
    "DEPTHWISE_CONV_2D": (7 * 4, 4),  # padding, strides x2, depth_multiplier, activation, dilations x2
    # activation, weights_format, 2 bools (+2 pad), quantized_bias_type: 16 bytes in TFLM's source of
    # 2026-08; the installed wheel (tflite-micro 0.dev20261023) allocates 32 (measured: the only size that
    # makes every validation network exact, with one and with three dense layers), taken for both pointer
    # sizes (an upper bound on a 32-bit MCU should the new members be pointers)
    "FULLY_CONNECTED": (32, 4),
    "AVERAGE_POOL_2D": (10 * 4, 4),  # padding, strides x2, filter x2, activation, computed padding x4
    "MAX_POOL_2D": (10 * 4, 4),
    "ADD": (8, 4),  # activation, bool pot_scale_int16
    "MUL": (4, 4),
    "DIV": (4, 4),
    "SUB": (8, 4),  # activation, bool pot_scale_int16
    "CONCATENATION": (8, 4),  # axis, activation
    "RESHAPE": (9 * 4, 4),  # int32 shape[8], num_dimensions
    "MEAN": (1, 1),  # bool keep_dims
    "SUM": (1, 1),
    "REDUCE_MAX": (1, 1),
    "SOFTMAX": (4, 4),  # float beta
    "PAD": None,
    "PADV2": None,
    "ZEROS_LIKE": None,
    "SLICE": None,  # empty SliceOptions (the kernel has no Init either: no OpData)
    "RELU": None,
    "RELU6": None,
    "HARD_SWISH": None,
    "LOGISTIC": None,
    "QUANTIZE": None,
    "DEQUANTIZE": None,
}


def _op_data(kernel: str, ptr: int, compression: bool) -> int | None:
    """sizeof the OpData a reference kernel's Init allocates (None: no Init allocation). With
    ``USE_TFLM_COMPRESSION`` conv / depthwise / dense add two scratch indices, CONCATENATION ten."""
    extra = 2 if compression else 0
    if kernel in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        # OpDataConv: TfLitePaddingValues (4 int), 5 int32, 2 int32*, 3 int32 (+ 2 int)
        return _struct([("i32", 4 + 5), ("ptr", 2), ("i32", 3 + extra)], ptr)[0]
    if kernel == "FULLY_CONNECTED":
        # OpDataFullyConnected: 9 int32 / int, 2 int32*, bool is_per_channel (+ 2 int)
        return _struct([("i32", 9), ("ptr", 2), ("i8", 1)] + ([("i32", extra)] if extra else []), ptr)[0]
    if kernel == "RELU":
        return _struct([("i32", 7)], ptr)[0]  # ReluOpData {ReluParams {uint8 enum, 2 int32; 4 int32}}
    if kernel == "RELU6":
        return _struct([("i32", 2)], ptr)[0]  # Relu6OpData {int32 six, zero}
    if kernel in ("ADD", "SUB"):
        # OpDataAdd: bool requires_broadcast, 14 int32 / float
        return _struct([("i8", 1), ("i32", 14)], ptr)[0]
    if kernel in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        return _struct([("i32", 4 + 4)], ptr)[0]  # OpDataPooling: padding (4 int), 2 int32, 2 float
    if kernel == "DIV":
        return _struct([("i32", 7)], ptr)[0]  # OpDataDiv
    if kernel == "MUL":
        return _struct([("i32", 9)], ptr)[0]  # OpDataMul
    if kernel in ("MEAN", "SUM", "REDUCE_MAX"):
        return _struct([("i32", 11)], ptr)[0]  # OpDataReduce
    if kernel in ("PAD", "PADV2"):
        # OpData {PadParams {int8, int32[5], int8, int32[5], enum}, int32 output_zero_point}
        return _struct([("i8", 1), ("i32", 5), ("i8", 1), ("i32", 5), ("i32", 1), ("i32", 1)], ptr)[0]
    if kernel == "CONCATENATION":
        # OpData {ConcatenationParams {int32 axis, const int32*, const float*, int32 x2, float}
        #         (+ int scratch_indices[10])}
        return _struct([("i32", 1), ("ptr", 2), ("i32", 3 + (10 if compression else 0))], ptr)[0]
    if kernel in ("RESHAPE", "ZEROS_LIKE"):
        return None
    return None


# scratch buffers the reference kernels request in Prepare (int8)
_SCRATCH_REQUESTS = {"MEAN": 3, "SUM": 3, "REDUCE_MAX": 2}
KNOWN_KERNELS = frozenset(_BUILTIN_PARAMS)


@dataclass(frozen=True)
class TailOp:
    """What one operator makes TFLM allocate in the tail."""

    kernel: str  # TFLite builtin operator name
    per_channel: int = 0  # channels of a per-channel quantised weight (conv / depthwise / dense), else 0
    scratch_requests: int | None = None  # None: the reference kernel's count for ``kernel``
    dims_copies: tuple[int, ...] = ()  # ranks of tensor dims a kernel copies into the tail (RESHAPE -1)
    # quantisation channels of each tensor the kernel reads or writes (0: not quantised): Prepare holds a
    # temporary TfLiteTensor for each (see :func:`tflm_arena_required`); () = unknown (counted as none)
    io_channels: tuple[int, ...] = ()


@dataclass(frozen=True)
class TailSpec:
    """The parts of a model TFLM's tail depends on."""

    ops: tuple[TailOp, ...]
    tensors: int  # all tensors of the (first) subgraph, constants included
    inputs: tuple[int, ...] = (1,)  # quantisation channels of each graph input (0: not quantised)
    outputs: tuple[int, ...] = (1,)
    subgraphs: int = 1
    planned: int = 0  # tensors the memory planner places (non-constant, non-empty): for tflm_arena_required


@dataclass(frozen=True)
class TailBreakdown:
    """The tail in bytes, with the parts the recording allocator reports (as requested, before alignment)."""

    pointer_size: int
    recording: bool
    total: int  # bytes from the arena's end to the tail pointer (alignment included)
    sections: dict[str, int] = field(default_factory=dict)
    allocations: tuple[tuple[str, int, int], ...] = ()  # (section, size, alignment) in TFLM's order


def _spec_allocations(spec: TailSpec, ptr: int, recording: bool, compression: bool
                      ) -> list[tuple[str, int, int, str]]:
    """(section, size, alignment, stage) in TFLM's order; stage: ``init``, ``prepare:<op index>`` (allocated
    while that kernel prepares), ``handles`` (before planning) or ``io`` (after planning)."""
    allocs: list[tuple[str, int, int, str]] = []

    def add(section: str, size_align: tuple[int, int], count: int = 1) -> None:
        size, align = size_align
        allocs.append((section, size * count, align, "init"))

    add("runtime objects", _arena_allocator(ptr, recording))
    add("runtime objects", _greedy_planner(ptr))
    add("runtime objects", _micro_allocator(ptr, recording, compression))
    add("runtime objects", _struct([("ptr", 2)], ptr))  # MicroBuiltinDataAllocator: vptr + pointer
    # SubgraphAllocations: node_and_registrations, tensors (+ CompressedTensorList {pointer})
    add("runtime objects", _struct([("ptr", 3 if compression else 2)], ptr), spec.subgraphs)
    add("TfLiteEvalTensor data", _eval_tensor(ptr), spec.tensors)
    add("NodeAndRegistration struct", _node_and_registration(ptr), len(spec.ops))
    for op in spec.ops:
        if op.kernel not in _BUILTIN_PARAMS:
            raise ConfigError(f"the TFLM tail model does not know the {op.kernel} kernel; known: "
                              f"{', '.join(sorted(_BUILTIN_PARAMS))}")
        params = _BUILTIN_PARAMS[op.kernel]
        if params is not None:
            allocs.append(("builtin data", *params, "init"))
    for op in spec.ops:
        data = _op_data(op.kernel, ptr, compression)
        if data is not None:
            allocs.append(("Persistent buffer data", data, ARENA_ALIGNMENT, "init"))
    for j, op in enumerate(spec.ops):
        stage = f"prepare:{j}"
        if op.per_channel and op.kernel in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            allocs.append(("Persistent buffer data", 4 * op.per_channel, ARENA_ALIGNMENT, stage))
            allocs.append(("Persistent buffer data", 4 * op.per_channel, ARENA_ALIGNMENT, stage))
        for rank in op.dims_copies:
            allocs.append(("Persistent buffer data", 4 + 4 * rank, ARENA_ALIGNMENT, stage))
    handles = sum(_SCRATCH_REQUESTS.get(op.kernel, 0) if op.scratch_requests is None else op.scratch_requests
                  for op in spec.ops)
    if handles:
        allocs.append(("scratch buffer handles", ptr * handles, ptr, "handles"))
    tensor = _tflite_tensor(ptr)
    quant = _affine_quantization(ptr)
    for group in (spec.inputs, spec.outputs):
        allocs.append(("Persistent buffer data", ptr * len(group), ARENA_ALIGNMENT, "io"))
        for channels in group:
            allocs.append(("Persistent TfLiteTensor data", *tensor, "io"))
            if channels:
                allocs.append(("Persistent TfLiteTensor quantization data", *quant, "io"))
                allocs.append(("Persistent TfLiteTensor quantization data", 4 + 4 * channels, 4, "io"))
    return allocs


def _tail_by_stage(allocs: Sequence[tuple[str, int, int, str]]) -> tuple[int, dict[str, int]]:
    """(final tail, tail after the last allocation of each stage)."""
    used = 0
    after: dict[str, int] = {}
    for _section, size, align, stage in allocs:
        used = -(-(used + size) // align) * align
        after[stage] = used
    return used, after


def tflm_tail(spec: TailSpec, *, pointer_size: int = 4, recording: bool = False,
              compression: bool = False) -> TailBreakdown:
    """TFLM's tail for ``spec`` on a target with ``pointer_size``-byte pointers (4: Cortex-M, 8: a 64-bit
    host). ``recording=True`` models the ``RecordingMicroAllocator`` that the Python interpreter uses (two
    bigger allocator objects); an MCU build uses the plain ``MicroAllocator``. ``compression=True`` models a
    TFLM built with ``USE_TFLM_COMPRESSION`` (the PyPI wheel is; a default MCU build is not)."""
    if pointer_size not in POINTER_SIZES:
        raise ConfigError(f"pointer_size must be one of {POINTER_SIZES}, got {pointer_size!r}")
    allocs = _spec_allocations(spec, pointer_size, recording, compression)
    used = 0  # bytes below the (16-byte aligned) arena end
    sections: dict[str, int] = {}
    for section, size, align, _stage in allocs:
        used = -(-(used + size) // align) * align
        sections[section] = sections.get(section, 0) + size
    return TailBreakdown(pointer_size, recording, used, sections, tuple(a[:3] for a in allocs))


def tflm_tail_bytes(spec: TailSpec, *, pointer_size: int = 4, recording: bool = False,
                    compression: bool = False) -> int:
    """:func:`tflm_tail`'s total."""
    return tflm_tail(spec, pointer_size=pointer_size, recording=recording, compression=compression).total


def _per_channel(kernel: str, out_channels: int, scale_count: int) -> int:
    """Channels of the multiplier / shift arrays a kernel's Prepare allocates: conv and depthwise conv always
    (one per output channel, whatever the quantisation), a dense layer only for a per-channel weight (more
    than one scale)."""
    if kernel in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        return out_channels
    if kernel == "FULLY_CONNECTED" and scale_count > 1:
        return scale_count
    return 0


def tail_spec_from_flatbuffer(info: FlatbufferInfo) -> TailSpec:
    """The tail spec of a real ``.tflite`` (parsed by :func:`~tinyevo.deploy.tflm.inspect_flatbuffer`)."""
    ops = []
    for op in info.ops:
        channels = 0
        if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(op.inputs) > 1:
            w = info.tensors[op.inputs[1]]
            # the quantised dimension: 0 for CONV_2D (OHWI), 3 for DEPTHWISE_CONV_2D (1HWO)
            out = (w.shape[3] if op.name == "DEPTHWISE_CONV_2D" else w.shape[0]) if w.shape else 1
            channels = _per_channel(op.name, out, w.quant_channels)
        io = tuple(info.tensors[t].quant_channels for t in (*op.inputs, *op.outputs) if t >= 0)
        ops.append(TailOp(op.name, per_channel=channels, io_channels=io))
    return TailSpec(
        ops=tuple(ops), tensors=len(info.tensors),
        planned=sum(1 for t in info.tensors if not t.constant and t.nbytes > 0),
        inputs=tuple(info.tensors[t].quant_channels for t in info.inputs),
        outputs=tuple(info.tensors[t].quant_channels for t in info.outputs),
    )


def tail_spec_from_graph(graph: DeployGraph) -> TailSpec:
    """The tail spec of the cost model's lowered graph: the kernels it lowers to, the flatbuffer's tensor
    count as the flash model counts it (:func:`~tinyevo.cost.flash.tensor_counts`), per-channel weights of
    convs, depthwise convs and dense layers (their output channels)."""
    from tinyevo.cost.flash import tensor_counts

    tensors, _channels = tensor_counts(graph)
    quantised = graph.precision == "int8"
    act = 1 if quantised else 0
    ops = []
    for op in graph.ops:
        out = graph.tensors[op.output].shape[0]  # output channels (C, H, W)
        # in the flatbuffer's order: activation inputs, weights, bias, other constants, then the output
        io = [act] * len(op.inputs)
        io += [op.quant_channels if quantised else 0] * ((op.weights > 0) + (op.biases > 0))
        io += [channels if quantised else 0 for _key, _b, channels in op.constants]
        io.append(act)
        ops.append(TailOp(op.tflite, per_channel=_per_channel(op.tflite, out, op.quant_channels),
                          io_channels=tuple(io)))
    return TailSpec(ops=tuple(ops), tensors=tensors, inputs=(act,), outputs=(act,), planned=len(graph.tensors))


def _scratch_request(ptr: int) -> tuple[int, int]:
    return _struct([("ptr", 1), ("i32", 2)], ptr)  # internal::ScratchBufferRequest {size_t, int, int}


def _allocation_info(ptr: int) -> tuple[int, int]:
    return _struct([("ptr", 2), ("i32", 3), ("i8", 1)], ptr)  # AllocationInfo {size_t, void**, 3 int, bool}


_PLANNER_BYTES_PER_BUFFER = 16 + 4 + 4 + 12 + 4  # GreedyMemoryPlanner::per_buffer_size()
_MAX_SCRATCH_PER_OP = 12  # kMaxScratchBuffersPerOp


def tflm_arena_required(spec: TailSpec, head: int, *, pointer_size: int = 4, recording: bool = False,
                        compression: bool = False) -> int:
    """The smallest ``arena_size`` TFLM runs the model with (an upper bound): the most the head side and the
    tail together ever hold, at each of

    * each kernel's ``Prepare``: the scratch-request array (``ScratchBufferRequest`` x (requests so far + 12))
      and a temporary ``TfLiteTensor`` with its quantisation and zero-point array for every tensor the kernel
      reads or writes (``TailOp.io_channels``, all held at once; conv and depthwise conv hold output, input
      and filter twice: their Prepare keeps them while ``CalculateOpData*`` allocates all four again), with
      the tail as it is then (up to that kernel's per-channel arrays);
    * planning (``CommitStaticMemoryPlan``): the scratch-request array, the subgraph offsets, one
      ``AllocationInfo`` per tensor and scratch buffer and the greedy planner's 40 bytes per planned buffer,
      with the tail up to the scratch handles;
    * after it: ``head`` (the planned activations and scratch: :class:`~tinyevo.cost.memory.TFLMPlanner`, or
      measured) plus the final tail.

    For small models a kernel's ``Prepare`` or the planning, not the activations, sets the arena size.
    """
    ptr = pointer_size
    if ptr not in POINTER_SIZES:
        raise ConfigError(f"pointer_size must be one of {POINTER_SIZES}, got {pointer_size!r}")
    allocs = _spec_allocations(spec, ptr, recording, compression)
    tail, after = _tail_by_stage(allocs)
    req_size, _req_align = _scratch_request(ptr)
    tensor_size, tensor_align = _tflite_tensor(ptr)
    quant_size, quant_align = _affine_quantization(ptr)

    def up(n: int, a: int) -> int:
        return -(-n // a) * a

    need = up(head, ARENA_ALIGNMENT) + tail
    tail_now = after.get("init", 0)
    requests = 0
    for j, op in enumerate(spec.ops):
        tail_now = after.get(f"prepare:{j}", tail_now)
        used = req_size * (requests + _MAX_SCRATCH_PER_OP)
        temps = op.io_channels
        if op.kernel in ("CONV_2D", "DEPTHWISE_CONV_2D") and len(temps) >= 3:
            # ConvPrepare / DepthwiseConvPrepare hold output, input, filter while CalculateOpData* allocates
            # input, filter, bias, output again
            temps = (temps[-1], temps[0], temps[1], *temps)
        for channels in temps:
            used = up(used, tensor_align) + tensor_size
            if channels:
                used = up(used, quant_align) + quant_size
                used = up(used, 4) + 4 + 4 * channels
        need = max(need, used + tail_now)
        requests += _SCRATCH_REQUESTS.get(op.kernel, 0) if op.scratch_requests is None else op.scratch_requests
    tail_now = after.get("handles", tail_now)
    info_size, info_align = _allocation_info(ptr)
    used = req_size * (requests + _MAX_SCRATCH_PER_OP)
    used = up(used, ptr) + ptr * spec.subgraphs  # subgraph offsets (size_t)
    used = up(used, info_align) + info_size * (spec.tensors + requests)
    used = up(used, ARENA_ALIGNMENT) + _PLANNER_BYTES_PER_BUFFER * (spec.planned + requests)
    need = max(need, used + tail_now)
    return up(need, ARENA_ALIGNMENT)
