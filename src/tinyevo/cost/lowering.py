"""Lowering: ArchIR -> the graph of kernels an int8 ``.tflite`` model would run (:class:`DeployGraph`).

The cost model counts what a deployed model stores and runs, not what the IR says literally. The rules, each a
decision that a later calibration against real ``.tflite`` files may tighten:

* **BatchNorm** (implicit after every conv in the IR) folds into the conv at export: every ``Conv2d`` and
  ``DepthwiseConv2d`` gets an int32 bias; BN itself costs nothing.
* **Fused activations**: an ``Act`` whose producer is a conv, depthwise conv, dense or add without an
  activation and read by nothing else becomes that kernel's ``fused_activation_function`` (the TFLite
  converter does this); otherwise it is a separate ``RELU`` / ``RELU6`` kernel with its own output tensor.
* **Identity** is an alias of its input: no kernel, no tensor.
* **Common subexpressions**: weightless ops (activations, pools, adds, concat, zero) with identical attributes
  and identical inputs are computed once (the converter's MLIR pipeline runs CSE). NAS-Bench-201 cells, which
  apply a separate ReLU per edge to the same tensor, share one ReLU after export. (The converter also fuses
  such a shared ReLU into its producer when nothing else reads that tensor, and reorders kernels; neither is
  modelled: the TFLM arena depends on that order, and fusing without it fits the measurements worse.)
* **n-ary Add** becomes a chain of binary ``ADD`` kernels (``a + b``, then ``+ c``, ...), with an intermediate
  tensor each, as in the torch builder and in a TFLite export. Each partial sum is subject to CSE like any add,
  and ``a + b`` equals ``b + a`` (the exporter merges duplicate ops before quantisation,
  :func:`tinyevo.deploy.quantize.merge_duplicates`): in an NB201 cell ``n3 = p + n1 + q`` with ``n2 = p + n1`` is
  ``n2 + q``.
* A **depthwise** ``Conv2d`` (``groups == in_channels == out_channels``) is a ``DEPTHWISE_CONV_2D``.
* **Dense** reads its input flattened (``FULLY_CONNECTED`` flattens internally; no ``RESHAPE`` kernel).
* **GlobalPool** is ``MEAN`` (average) or ``REDUCE_MAX``; an average over a 1 x 1 map is exported as ``SUM``.
  **Zero** is a kernel writing zeros (``ZEROS_LIKE``).
* A conv with **one input channel** (``groups == 1``) runs as ``DEPTHWISE_CONV_2D`` (depth multiplier = out
  channels): the converter rewrites it so (same weights, MACs and op class).
* An ``Act`` after a **Pool2d** fuses into it (``AVERAGE_POOL_2D`` / ``MAX_POOL_2D`` have a fused activation).
* Model input and output are int8 (full-integer quantisation, no ``QUANTIZE`` / ``DEQUANTIZE`` at the ends).

Tensors are named after the IR node that produces them (after fusion: the last fused node). ``scratch_bytes``
is the CMSIS-NN scratch buffer a kernel asks the TFLM arena for (``arm_*_get_buffer_size``);
:func:`scratch_buffers` gives a kernel's scratch buffers for either kernel library; only the TFLM-style arena
planner uses them.

* A **global pool on a 1-channel network input** reads it through a ``RESHAPE`` (the layout transpose).
* A stride-1 **same pool with asymmetric padding** (an even kernel) is ``PADV2`` + ``MAX_POOL_2D`` (max) or
  ``PAD`` + ``AVERAGE_POOL_2D`` + ``DIV`` by a window-count map (average), as the converter exports the torch
  builder's explicit padding.
* A **padded strided average pool of a 1-channel tensor** is one ``AVERAGE_POOL_2D`` like any pool: the export
  runs it on two copies of its input (a converter limitation) and then folds the ``CONCATENATION`` + 2-channel
  pool + ``SLICE`` chain back into the pool (:func:`tinyevo.deploy.tflite.strip_flatbuffer`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from tinyevo.errors import ConfigError
from tinyevo.ir import (
    Act,
    Add,
    ArchIR,
    Concat,
    Conv2d,
    Dense,
    DepthwiseConv2d,
    GlobalPool,
    Identity,
    Node,
    Op,
    Pool2d,
    Shape,
    Zero,
    same_pads,
)

PRECISIONS: dict[str, int] = {"int8": 1, "float32": 4}
"""Precision -> bytes per activation / weight element (biases are 4 bytes in both: int32 or float32)."""

#: Op classes (keys of the per-core latency coefficients in :class:`~tinyevo.devices.CoreModel`).
OP_CLASSES: tuple[str, ...] = ("conv", "pointwise", "depthwise", "dense", "pool", "elementwise")
#: TFLite kernels that may write their output over a dying input (the cost model's in-place option).
INPLACE_KERNELS: frozenset[str] = frozenset({"DEPTHWISE_CONV_2D", "ADD"})
_FUSE_INTO = (Conv2d, DepthwiseConv2d, Dense, Add, Pool2d)
#: Kernel libraries whose scratch buffers :func:`scratch_buffers` models.
KERNELS: tuple[str, ...] = ("reference", "cmsis-nn")
_WEIGHTLESS = frozenset({Act, Pool2d, GlobalPool, Add, Concat, Zero})


class Tensor(NamedTuple):
    """An activation tensor of the deployed graph.

    (:class:`Tensor` and :class:`DeployOp` are immutable named tuples rather than frozen dataclasses: lowering
    creates one per kernel on every estimate, and named tuples are about 2.5x cheaper to create.)
    """

    name: str
    shape: Shape
    nbytes: int

    @property
    def elements(self) -> int:
        c, h, w = self.shape
        return c * h * w


class DeployOp(NamedTuple):
    """One kernel invocation of the deployed model."""

    name: str  # = the name of its output tensor
    tflite: str  # TFLite builtin operator, e.g. CONV_2D
    op_class: str  # one of OP_CLASSES (selects the latency coefficient)
    nodes: tuple[str, ...]  # the IR nodes this kernel implements (a conv and its fused activation, ...)
    inputs: tuple[str, ...]  # input tensor names
    macs: int
    work: int  # latency work: MACs (conv / depthwise / dense), window elements (pool), output elements (rest)
    weights: int  # weight elements (constant tensor)
    biases: int  # bias elements (BN folded)
    quant_channels: int  # quantisation channels of the weight and bias tensors (per-channel: out channels)
    scratch_bytes: int = 0  # CMSIS-NN scratch buffer (int8 only)
    act: str = "none"  # fused activation
    # small constant operands besides weights and biases (axes, paddings, ...): (key, bytes, quantisation
    # channels); equal keys are one tensor shared by the graph
    constants: tuple[tuple[str, int, int], ...] = ()

    @property
    def output(self) -> str:
        return self.name

    @property
    def params(self) -> int:
        return self.weights + self.biases

    @property
    def inplace_capable(self) -> bool:
        return self.tflite in INPLACE_KERNELS


@dataclass(frozen=True)
class DeployGraph:
    """Kernels in execution order (the IR's topological order) and the tensors they read and write."""

    precision: str
    ops: tuple[DeployOp, ...]
    tensors: Mapping[str, Tensor]
    input: str
    output: str
    tensor_of: Mapping[str, str]  # IR node -> tensor holding its value (aliases, fusion and CSE resolved)

    @property
    def element_bytes(self) -> int:
        return PRECISIONS[self.precision]


def _elements(shape: Shape) -> int:
    return shape[0] * shape[1] * shape[2]


def lower(ir: ArchIR, *, precision: str = "int8") -> DeployGraph:
    """The deployed kernel graph of ``ir`` at ``precision`` (``"int8"`` or ``"float32"``)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    eb = PRECISIONS[precision]
    int8 = precision == "int8"
    readers: dict[str, int] = {}  # IR node -> number of nodes reading it
    for n in ir.nodes:
        for s in n.inputs:
            readers[s] = readers.get(s, 0) + 1
    shapes = ir.shapes
    tensors: dict[str, Tensor] = {}
    ops: list[DeployOp] = []
    op_index: dict[str, int] = {}  # tensor name -> index of the op producing it
    tensor_of: dict[str, str] = {}
    cse: dict[tuple[object, ...], str] = {}
    aliased: set[str] = set()  # tensors standing for more than one IR node (Identity, CSE): never fused into
    count_maps: dict[tuple[object, ...], str] = {}  # padded average pools: (shape, kernel, pads) -> count tensor

    first = ir.nodes[0].name
    tensors[first] = Tensor(first, shapes[first], _elements(shapes[first]) * eb)
    tensor_of[first] = first
    for node in ir.nodes[1:]:
        op = node.op
        name = node.name
        kind = type(op)
        if kind is Identity:
            src = tensor_of[node.inputs[0]]
            tensor_of[name] = src
            aliased.add(src)
            continue
        inputs = node.inputs
        ins = (tensor_of[inputs[0]],) if len(inputs) == 1 else tuple(tensor_of[s] for s in inputs)
        if kind is Act and inputs[0] not in aliased and _fusable(ir, node, readers, tensor_of, op_index, ops):
            src = inputs[0]
            for key in [k for k, v in cse.items() if v == src]:
                del cse[key]  # the fused tensor now holds the activated value
            i = op_index.pop(src)
            old = ops[i]
            ops[i] = old._replace(name=name, nodes=(*old.nodes, name), act=op.fn)  # type: ignore[union-attr]
            del tensors[src]
            tensors[name] = Tensor(name, shapes[name], _elements(shapes[name]) * eb)
            op_index[name] = i
            tensor_of[src] = name
            tensor_of[name] = name
            continue
        if kind in _WEIGHTLESS:
            key = (_op_key(op), _add_operands(ins) if kind is Add and len(ins) == 2 else ins)
            hit = cse.get(key)
            if hit is not None:
                tensor_of[name] = hit
                aliased.add(hit)
                continue
            cse[key] = name
        tensor_of[name] = name
        out_shape = shapes[name]
        nbytes = _elements(out_shape) * eb
        if kind is Add and len(ins) > 2:
            acc = ins[0]
            for k, other in enumerate(ins[1:-1], start=1):
                # a partial sum is an add like any other: the export computes an equal one once
                partial = (_PLAIN_ADD, _add_operands((acc, other)))
                hit = cse.get(partial)
                if hit is not None:
                    aliased.add(hit)
                    acc = hit
                    continue
                tmp = f"{name}#{k}"
                cse[partial] = tmp
                tensors[tmp] = Tensor(tmp, out_shape, nbytes)
                op_index[tmp] = len(ops)
                ops.append(_add(tmp, (name,), (acc, other), out_shape, "none"))
                acc = tmp
            ins = (acc, ins[-1])
            last = (_op_key(op), _add_operands(ins))  # the final add may equal an earlier binary one
            hit = cse.get(last)
            if hit is not None:
                cse[key] = hit  # (the whole sum's key, registered above)
                tensor_of[name] = hit
                aliased.add(hit)
                continue
            cse[last] = name
        if kind is Pool2d and _pad_explicitly(op, shapes[inputs[0]]):  # type: ignore[arg-type]
            _lower_padded_pool(name, op, ins[0], shapes[inputs[0]], out_shape, eb,  # type: ignore[arg-type]
                               tensors, ops, op_index, count_maps)
            continue
        if kind is GlobalPool and ins == (first,) and shapes[first][0] == 1:
            # measured: a global pool straight on a 1-channel network input keeps NCHW, the input's layout
            # transpose becoming a RESHAPE (with an int32 [4] shape operand)
            tmp = f"{name}#reshape"
            tensors[tmp] = Tensor(tmp, shapes[first], tensors[first].nbytes)
            op_index[tmp] = len(ops)
            ops.append(DeployOp(tmp, "RESHAPE", "elementwise", (name,), ins, 0, tensors[first].elements, 0, 0, 0,
                                constants=(("shape[4]", 16, 0),)))
            ins = (tmp,)
        in_shapes = (shapes[inputs[0]],) if len(inputs) == 1 else tuple(shapes[s] for s in inputs)
        spec_key = (_op_key(op), in_shapes, out_shape, int8)
        spec = _SPECS.get(spec_key)
        if spec is None:
            if len(_SPECS) >= _MAX_SPECS:
                _SPECS.clear()
            spec = _SPECS[spec_key] = _spec(op, in_shapes, out_shape, int8)
        tflite, op_class, macs, work, weights, biases, qch, scratch, act = spec
        tensors[name] = Tensor(name, out_shape, nbytes)
        op_index[name] = len(ops)
        ops.append(DeployOp(name, tflite, op_class, (name,), ins, macs, work, weights, biases, qch, scratch,
                            act, _AXIS if tflite in ("MEAN", "SUM", "REDUCE_MAX") else ()))
    return DeployGraph(
        precision=precision, ops=tuple(ops), tensors=tensors, input=first,
        output=tensor_of[ir.output], tensor_of=tensor_of,
    )


def _fusable(
    ir: ArchIR, node: Node, readers: Mapping[str, int], tensor_of: Mapping[str, str],
    op_index: Mapping[str, int], ops: list[DeployOp],
) -> bool:
    src = node.inputs[0]
    if tensor_of.get(src) != src or src not in op_index or src == ir.output or readers[src] != 1:
        return False
    producer = ir.node(src).op
    if not isinstance(producer, _FUSE_INTO) or getattr(producer, "act", "none") != "none":
        return False
    return ops[op_index[src]].act == "none" and ops[op_index[src]].nodes[-1] == src


_AXIS = (("axis(1,2)", 8, 0),)  # the int32 reduction-axis operand of MEAN / SUM / REDUCE_MAX


def _pad_explicitly(op: Pool2d, in_shape: Shape) -> bool:
    """Whether a pool exports with an explicit pad: a stride-1 ``same`` pool padded asymmetrically (an even
    kernel), as the torch builder writes it (``F.pad`` + a valid pool)."""
    if op.padding != "same" or op.stride != 1:
        return False
    top, bottom = same_pads(in_shape[1], op.kernel, 1)
    left, right = same_pads(in_shape[2], op.kernel, 1)
    return top != bottom or left != right


def _lower_padded_pool(
    name: str, op: Pool2d, src: str, in_shape: Shape, out_shape: Shape, eb: int, tensors: dict[str, Tensor],
    ops: list[DeployOp], op_index: dict[str, int], count_maps: dict[tuple[object, ...], str],
) -> None:
    """A stride-1 ``same`` pool with asymmetric padding, as the converter exports it (measured):
    max: ``PADV2`` (pad value -128) + a valid ``MAX_POOL_2D``; average (dividing by the real elements per
    window): ``PAD`` + a valid ``AVERAGE_POOL_2D``, the window counts as an ``AVERAGE_POOL_2D`` of a constant
    ones map (once per shape), and ``DIV``."""
    c, h, w = in_shape
    pads = (*same_pads(h, op.kernel, 1), *same_pads(w, op.kernel, 1))
    padded = (c, h + pads[0] + pads[1], w + pads[2] + pads[3])
    pad_const = (f"pads{pads}", 32, 0)  # int32 [4, 2] paddings

    def add(tname: str, tflite: str, op_class: str, ins: tuple[str, ...], shape: Shape, work: int,
            constants: tuple[tuple[str, int, int], ...] = ()) -> None:
        tensors[tname] = Tensor(tname, shape, _elements(shape) * eb)
        op_index[tname] = len(ops)
        ops.append(DeployOp(tname, tflite, op_class, (name,), ins, 0, work, 0, 0, 0, constants=constants))

    n_out = _elements(out_shape)
    window = op.kernel * op.kernel
    if op.mode == "max":
        add(f"{name}#pad", "PADV2", "elementwise", (src,), padded, _elements(padded),
            (pad_const, ("padv2_value", 1, 1)))
        add(name, "MAX_POOL_2D", "pool", (f"{name}#pad",), out_shape, n_out * window)
        return
    add(f"{name}#pad", "PAD", "elementwise", (src,), padded, _elements(padded), (pad_const,))
    add(f"{name}#sum", "AVERAGE_POOL_2D", "pool", (f"{name}#pad",), out_shape, n_out * window)
    key = (padded[1:], op.kernel, pads)
    count = count_maps.get(key)
    if count is None:
        count = count_maps[key] = f"{name}#count"
        ones = (f"ones{key}", padded[1] * padded[2] * eb, 1)
        add(count, "AVERAGE_POOL_2D", "pool", (), (1, *out_shape[1:]), out_shape[1] * out_shape[2] * window,
            (ones,))
    add(name, "DIV", "elementwise", (f"{name}#sum", count), out_shape, n_out)


def scratch_buffers(graph: DeployGraph, op: DeployOp, *, kernels: str = "reference") -> tuple[int, ...]:
    """Bytes of each scratch buffer ``op`` asks the TFLM arena for with ``kernels`` (``"reference"`` or
    ``"cmsis-nn"``); only int8 kernels ask for any.

    Reference kernels: only int8 ``MEAN`` / ``SUM`` (int32 sums per output element plus two small index buffers;
    measured with the Python TFLM: ``align16(4 x output elements) + 32`` bytes). CMSIS-NN: the kernel's
    ``scratch_bytes`` (``arm_*_get_buffer_size``).
    """
    if graph.precision != "int8":
        return ()
    if kernels == "reference":
        if op.tflite in ("MEAN", "SUM"):
            return (-(-4 * graph.tensors[op.name].elements // 16) * 16, 16, 16)
        return ()
    if kernels == "cmsis-nn":
        return (op.scratch_bytes,) if op.scratch_bytes else ()
    raise ConfigError(f"unknown kernels {kernels!r}; expected one of {', '.join(KERNELS)}")


def _add(name: str, nodes: tuple[str, ...], ins: tuple[str, ...], shape: Shape, act: str) -> DeployOp:
    n = _elements(shape)
    return DeployOp(name=name, tflite="ADD", op_class="elementwise", nodes=nodes, inputs=ins, macs=0, work=n,
                    weights=0, biases=0, quant_channels=0, act=act)


_Spec = tuple[str, str, int, int, int, int, int, int, str]
_SPECS: dict[tuple[object, ...], _Spec] = {}  # cache of _spec results: networks repeat ops
_MAX_SPECS = 16384


def _op_key(op: Op) -> tuple[object, ...]:
    """A hashable key, equal for equal ops, cheaper to hash and compare than the op (plain field values)."""
    fields = getattr(op, "__dict__", None)
    return (type(op), *fields.values()) if fields is not None else (op,)


def _add_operands(ins: tuple[str, ...]) -> tuple[str, ...]:
    """The operands of a binary add as a CSE key: ``a + b`` and ``b + a`` are one (the exporter merges them)."""
    return ins if ins[0] <= ins[1] else (ins[1], ins[0])


_PLAIN_ADD = _op_key(Add())


def clear_spec_cache() -> None:
    _SPECS.clear()


def _spec(op: Op, in_shapes: tuple[Shape, ...], out: Shape, int8: bool) -> _Spec:
    """(kernel, op class, MACs, work, weights, biases, quantisation channels, scratch bytes, fused
    activation) of one IR op: the one place that maps IR ops to kernels and their costs."""
    n_out = _elements(out)
    if isinstance(op, Conv2d):
        c_in = in_shapes[0][0]
        per_out = (c_in // op.groups) * op.kernel * op.kernel
        macs = n_out * per_out
        weights = op.out_channels * per_out
        if op.groups > 1 and op.groups == c_in == op.out_channels:
            scratch = 0 if op.kernel == 3 else c_in * op.kernel * op.kernel * 2
            return ("DEPTHWISE_CONV_2D", "depthwise", macs, macs, weights, op.out_channels, op.out_channels,
                    scratch if int8 else 0, op.act)
        pointwise = op.kernel == 1 and op.groups == 1
        # arm_convolve_s8_get_buffer_size: im2col of two output columns as int16; 1x1 convs need none.
        scratch = 0 if pointwise else 2 * per_out * 2
        kernel = "DEPTHWISE_CONV_2D" if c_in == 1 and op.groups == 1 else "CONV_2D"  # the converter's rewrite
        return (kernel, "pointwise" if pointwise else "conv", macs, macs, weights, op.out_channels,
                op.out_channels, scratch if int8 else 0, op.act)
    if isinstance(op, DepthwiseConv2d):
        c = in_shapes[0][0]
        macs = n_out * op.kernel * op.kernel
        # arm_depthwise_conv_wrapper_s8: the 3x3 kernel needs no buffer, the generic one c*k*k int16 values.
        scratch = 0 if op.kernel == 3 else c * op.kernel * op.kernel * 2
        return ("DEPTHWISE_CONV_2D", "depthwise", macs, macs, c * op.kernel * op.kernel, c, c,
                scratch if int8 else 0, op.act)
    if isinstance(op, Dense):
        macs = _elements(in_shapes[0]) * op.out_features
        # FULLY_CONNECTED weights and biases are quantised per output unit (measured in exported .tflite files).
        return ("FULLY_CONNECTED", "dense", macs, macs, macs, op.out_features, op.out_features, 0, op.act)
    if isinstance(op, Pool2d):
        kernel = "AVERAGE_POOL_2D" if op.mode == "avg" else "MAX_POOL_2D"
        scratch = 4 * in_shapes[0][0] if op.mode == "avg" else 0  # arm_avgpool_s8_get_buffer_size: c x int32
        return (kernel, "pool", 0, n_out * op.kernel * op.kernel, 0, 0, 0, scratch if int8 else 0, "none")
    if isinstance(op, GlobalPool):
        kernel = "REDUCE_MAX" if op.mode == "max" else "SUM" if in_shapes[0][1:] == (1, 1) else "MEAN"
        scratch = 4 * in_shapes[0][0] if op.mode == "avg" else 0  # int32 accumulators of the int8 MEAN kernel
        return (kernel, "pool", 0, _elements(in_shapes[0]), 0, 0, 0, scratch if int8 else 0, "none")
    if isinstance(op, Add):
        return ("ADD", "elementwise", 0, n_out, 0, 0, 0, 0, op.act)
    if isinstance(op, Concat):
        return ("CONCATENATION", "elementwise", 0, n_out, 0, 0, 0, 0, "none")
    if isinstance(op, Act):
        return (op.fn.upper(), "elementwise", 0, n_out, 0, 0, 0, 0, "none")
    if isinstance(op, Zero):
        return ("ZEROS_LIKE", "elementwise", 0, n_out, 0, 0, 0, 0, "none")
    raise TypeError(f"the cost model has no rule for op {type(op).__name__}")
