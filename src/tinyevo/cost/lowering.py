"""Lowering: ArchIR -> the graph of kernels an int8 ``.tflite`` model would run (:class:`DeployGraph`).

The cost model counts what a deployed model stores and runs, not what the IR says literally. The rules, each a
decision that a later calibration against real ``.tflite`` files may tighten:

* **BatchNorm** (implicit after every conv in the IR) folds into the conv at export: every ``Conv2d`` and
  ``DepthwiseConv2d`` gets an int32 bias; BN itself costs nothing.
* **Fused activations**: an ``Act`` whose producer is a conv, depthwise conv, dense or add without an activation
  and read by nothing else becomes that kernel's ``fused_activation_function`` (the TFLite converter does this);
  otherwise it is a separate ``RELU`` / ``RELU6`` kernel with its own output tensor.
* **Identity** is an alias of its input: no kernel, no tensor.
* **Common subexpressions**: weightless ops (activations, pools, adds, concat, zero) with identical attributes and
  identical inputs are computed once (the converter's MLIR pipeline runs CSE). NAS-Bench-201 cells, which apply a
  separate ReLU per edge to the same tensor, share one ReLU after export.
* **n-ary Add** becomes a chain of binary ``ADD`` kernels (``a + b``, then ``+ c``, ...), with an intermediate
  tensor each, as in the torch builder and in a TFLite export.
* A **depthwise** ``Conv2d`` (``groups == in_channels == out_channels``) is a ``DEPTHWISE_CONV_2D``.
* **Dense** reads its input flattened (``FULLY_CONNECTED`` flattens internally; no ``RESHAPE`` kernel).
* **GlobalPool** is ``MEAN`` (average) or ``REDUCE_MAX``. **Zero** is a kernel writing zeros (``ZEROS_LIKE``).
* Model input and output are int8 (full-integer quantisation, no ``QUANTIZE`` / ``DEQUANTIZE`` at the ends).

Tensors are named after the IR node that produces them (after fusion: the last fused node). ``scratch_bytes`` is
the CMSIS-NN scratch buffer a kernel asks the TFLM arena for (``arm_*_get_buffer_size``); only the TFLM-style
arena planner uses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

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
    Input,
    Node,
    Pool2d,
    Shape,
    Zero,
)

PRECISIONS: dict[str, int] = {"int8": 1, "float32": 4}
"""Precision -> bytes per activation / weight element (biases are 4 bytes in both: int32 or float32)."""

#: Op classes (keys of the per-core latency coefficients in :class:`~tinyevo.devices.CoreModel`).
OP_CLASSES: tuple[str, ...] = ("conv", "pointwise", "depthwise", "dense", "pool", "elementwise")
#: TFLite kernels that may write their output over an input that dies at them (the cost model's in-place option).
INPLACE_KERNELS: frozenset[str] = frozenset({"DEPTHWISE_CONV_2D", "ADD"})
_FUSE_INTO = (Conv2d, DepthwiseConv2d, Dense, Add)
_WEIGHTLESS = (Act, Pool2d, GlobalPool, Add, Concat, Zero)


@dataclass(frozen=True)
class Tensor:
    """An activation tensor of the deployed graph."""

    name: str
    shape: Shape
    nbytes: int

    @property
    def elements(self) -> int:
        c, h, w = self.shape
        return c * h * w


@dataclass(frozen=True)
class DeployOp:
    """One kernel invocation of the deployed model."""

    name: str  # = the name of its output tensor
    tflite: str  # TFLite builtin operator, e.g. CONV_2D
    op_class: str  # one of OP_CLASSES (selects the latency coefficient)
    nodes: tuple[str, ...]  # the IR nodes this kernel implements (a conv and its fused activation, ...)
    inputs: tuple[str, ...]  # input tensor names
    macs: int
    work: int  # latency work units: MACs (conv/depthwise/dense), window elements (pool), output elements (rest)
    weights: int  # weight elements (constant tensor)
    biases: int  # bias elements (BN folded)
    quant_channels: int  # quantisation channels of the weight and bias tensors (per-channel: out channels)
    scratch_bytes: int = 0  # CMSIS-NN scratch buffer (int8 only)
    act: str = "none"  # fused activation

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
    consumers = ir.consumers()
    shapes = ir.shapes
    tensors: dict[str, Tensor] = {}
    ops: list[DeployOp] = []
    op_index: dict[str, int] = {}  # tensor name -> index of the op producing it
    tensor_of: dict[str, str] = {}
    cse: dict[tuple[object, ...], str] = {}
    aliased: set[str] = set()  # tensors that stand for more than one IR node (Identity, CSE): never fused into

    def emit(op: DeployOp, shape: Shape) -> None:
        tensors[op.name] = Tensor(op.name, shape, _elements(shape) * eb)
        op_index[op.name] = len(ops)
        ops.append(op)

    for node in ir.nodes:
        op = node.op
        name = node.name
        if isinstance(op, Input):
            tensors[name] = Tensor(name, shapes[name], _elements(shapes[name]) * eb)
            tensor_of[name] = name
            continue
        if isinstance(op, Identity):
            tensor_of[name] = tensor_of[node.inputs[0]]
            aliased.add(tensor_of[name])
            continue
        ins = tuple(tensor_of[s] for s in node.inputs)
        if isinstance(op, Act) and node.inputs[0] not in aliased and _fusable(
            ir, node, consumers, tensor_of, op_index, ops
        ):
            src = node.inputs[0]
            for key in [k for k, v in cse.items() if v == src]:
                del cse[key]  # the fused tensor now holds the activated value
            i = op_index.pop(src)
            old = ops[i]
            ops[i] = replace(old, name=name, nodes=old.nodes + (name,), act=op.fn)
            del tensors[src]
            tensors[name] = Tensor(name, shapes[name], _elements(shapes[name]) * eb)
            op_index[name] = i
            tensor_of[src] = name
            tensor_of[name] = name
            continue
        if isinstance(op, _WEIGHTLESS):
            key = (op, ins)
            if key in cse:
                tensor_of[name] = cse[key]
                aliased.add(cse[key])
                continue
            cse[key] = name
        tensor_of[name] = name
        out_shape = shapes[name]
        if isinstance(op, Add) and len(ins) > 2:
            acc = ins[0]
            for k, other in enumerate(ins[1:-1], start=1):
                tmp = f"{name}#{k}"
                emit(_add(tmp, (name,), (acc, other), out_shape, "none"), out_shape)
                acc = tmp
            emit(_add(name, (name,), (acc, ins[-1]), out_shape, op.act), out_shape)
            continue
        emit(_kernel(node, ins, ir.in_shapes(node), out_shape, int8=int8), out_shape)
    return DeployGraph(
        precision=precision, ops=tuple(ops), tensors=tensors, input=ir.input_name,
        output=tensor_of[ir.output], tensor_of=tensor_of,
    )


def _fusable(
    ir: ArchIR, node: Node, consumers: Mapping[str, tuple[str, ...]], tensor_of: Mapping[str, str],
    op_index: Mapping[str, int], ops: list[DeployOp],
) -> bool:
    src = node.inputs[0]
    if tensor_of.get(src) != src or src not in op_index or src == ir.output or consumers[src] != (node.name,):
        return False
    producer = ir.node(src).op
    if not isinstance(producer, _FUSE_INTO) or producer.act != "none":
        return False
    return ops[op_index[src]].act == "none" and ops[op_index[src]].nodes[-1] == src


def _add(name: str, nodes: tuple[str, ...], ins: tuple[str, ...], shape: Shape, act: str) -> DeployOp:
    n = _elements(shape)
    return DeployOp(name=name, tflite="ADD", op_class="elementwise", nodes=nodes, inputs=ins, macs=0, work=n,
                    weights=0, biases=0, quant_channels=0, act=act)


def _kernel(node: Node, ins: tuple[str, ...], in_shapes: tuple[Shape, ...], out: Shape, *, int8: bool) -> DeployOp:
    """The single kernel implementing ``node`` (the one place that maps IR ops to kernels and their costs)."""
    op = node.op
    n_out = _elements(out)
    common = dict(name=node.name, nodes=(node.name,), inputs=ins)
    if isinstance(op, Conv2d):
        c_in = in_shapes[0][0]
        per_out = (c_in // op.groups) * op.kernel * op.kernel
        macs = n_out * per_out
        weights = op.out_channels * per_out
        if op.groups > 1 and op.groups == c_in == op.out_channels:
            scratch = 0 if op.kernel == 3 else c_in * op.kernel * op.kernel * 2
            return DeployOp(tflite="DEPTHWISE_CONV_2D", op_class="depthwise", macs=macs, work=macs,
                            weights=weights, biases=op.out_channels, quant_channels=op.out_channels,
                            scratch_bytes=scratch if int8 else 0, act=op.act, **common)
        pointwise = op.kernel == 1 and op.groups == 1
        # arm_convolve_s8_get_buffer_size: im2col of two output columns as int16; 1x1 convs need none.
        scratch = 0 if pointwise else 2 * per_out * 2
        return DeployOp(tflite="CONV_2D", op_class="pointwise" if pointwise else "conv", macs=macs, work=macs,
                        weights=weights, biases=op.out_channels, quant_channels=op.out_channels,
                        scratch_bytes=scratch if int8 else 0, act=op.act, **common)
    if isinstance(op, DepthwiseConv2d):
        c = in_shapes[0][0]
        macs = n_out * op.kernel * op.kernel
        # arm_depthwise_conv_wrapper_s8: the 3x3 kernel needs no buffer, the generic one c*k*k int16 values.
        scratch = 0 if op.kernel == 3 else c * op.kernel * op.kernel * 2
        return DeployOp(tflite="DEPTHWISE_CONV_2D", op_class="depthwise", macs=macs, work=macs,
                        weights=c * op.kernel * op.kernel, biases=c, quant_channels=c,
                        scratch_bytes=scratch if int8 else 0, act=op.act, **common)
    if isinstance(op, Dense):
        n_in = _elements(in_shapes[0])
        macs = n_in * op.out_features
        # FULLY_CONNECTED weights are quantised per tensor by default (one scale), biases likewise.
        return DeployOp(tflite="FULLY_CONNECTED", op_class="dense", macs=macs, work=macs, weights=macs,
                        biases=op.out_features, quant_channels=1, act=op.act, **common)
    if isinstance(op, Pool2d):
        kernel = "AVERAGE_POOL_2D" if op.mode == "avg" else "MAX_POOL_2D"
        scratch = 4 * in_shapes[0][0] if op.mode == "avg" else 0  # arm_avgpool_s8_get_buffer_size: c x int32
        return DeployOp(tflite=kernel, op_class="pool", macs=0, work=n_out * op.kernel * op.kernel, weights=0,
                        biases=0, quant_channels=0, scratch_bytes=scratch if int8 else 0, **common)
    if isinstance(op, GlobalPool):
        kernel = "MEAN" if op.mode == "avg" else "REDUCE_MAX"
        scratch = 4 * in_shapes[0][0] if op.mode == "avg" else 0  # int32 accumulators of the int8 MEAN kernel
        return DeployOp(tflite=kernel, op_class="pool", macs=0, work=_elements(in_shapes[0]), weights=0,
                        biases=0, quant_channels=0, scratch_bytes=scratch if int8 else 0, **common)
    if isinstance(op, Add):
        return _add(node.name, (node.name,), ins, out, op.act)
    if isinstance(op, Concat):
        return DeployOp(tflite="CONCATENATION", op_class="elementwise", macs=0, work=n_out, weights=0, biases=0,
                        quant_channels=0, **common)
    if isinstance(op, Act):
        return DeployOp(tflite=op.fn.upper(), op_class="elementwise", macs=0, work=n_out, weights=0, biases=0,
                        quant_channels=0, **common)
    if isinstance(op, Zero):
        return DeployOp(tflite="ZEROS_LIKE", op_class="elementwise", macs=0, work=n_out, weights=0, biases=0,
                        quant_channels=0, **common)
    raise TypeError(f"the cost model has no rule for op {type(op).__name__}")
