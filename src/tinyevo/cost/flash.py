"""Flash (model size) of a deployed graph, modelled on an int8 ``.tflite`` flatbuffer.

``flash = weights + biases + quantisation parameters + flatbuffer metadata``:

* **weights**: one byte per element in int8 (four in float32);
* **biases**: int32 (float32) per output channel; every conv and depthwise conv has one (BatchNorm folded);
* **other constants**: small operands of some kernels (reduction axes, paddings, window-count maps), shared
  when equal;
* **quantisation parameters** (int8 only): every tensor carries a ``QuantizationParameters`` table with a
  scale vector (float32) and a zero-point vector (int64). Conv and depthwise weights and their biases are
  quantised per output channel (one scale + zero point each), fully connected ones too (the exporter's
  int8 scheme), activations per tensor;
* **metadata**: the flatbuffer tables around that data: one ``Operator`` per kernel (opcode index, input and
  output index vectors, builtin options), one ``Tensor`` per tensor (shape vector, type, buffer index, name),
  one ``Buffer`` per tensor (constant data is 16-byte aligned), one ``OperatorCode`` per distinct kernel type,
  and a fixed part (model and subgraph tables, description, ``min_runtime_version`` and conversion metadata,
  signature def).

The per-item constants are a linear fit to real files (tensor names stripped, see :class:`FlatbufferLayout`);
they live in :class:`FlatbufferLayout` so that another calibration can replace them without touching the
counting. The interpreter code
itself (TFLite Micro, CMSIS-NN) is not part of this number.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinyevo.cost.lowering import DeployGraph


@dataclass(frozen=True)
class FlatbufferLayout:
    """Bytes a ``.tflite`` flatbuffer spends besides the constant data (see the module docstring).

    Calibrated on 20 random chain / blocks / NB201 networks exported by litert-torch with tensor names stripped
    (``benchmarks/tflm_vs_estimate.py --per-space 8 --seed 0``, summary ``flatbuffer_overhead_fit``): ``.tflite``
    bytes - constant bytes = 758 + 41 x kernels + 81 x tensors + 12 x quantisation channels, max residual 187 B.
    The remaining fields (the schema-based split of the earlier estimate) are 0 by default; a layout may set them.
    """

    fixed: int = 758  # Model/SubGraph tables, description, metadata buffers, signature def (measured fit)
    per_op: int = 41  # Operator table: opcode index, input/output int32 vectors, builtin options (measured fit)
    per_opcode: int = 0  # OperatorCode table per distinct kernel type (inside ``fixed`` / ``per_op`` in the fit)
    per_tensor: int = 81  # Tensor + Buffer tables, shape vector, QuantizationParameters table (measured fit)
    per_buffer: int = 0  # Buffer table per tensor (inside ``per_tensor`` in the fit)
    const_alignment: int = 0  # padding of constant buffers (inside the fit's residual)
    per_quantized_tensor: int = 0  # QuantizationParameters table + vector headers (inside ``per_tensor``)
    per_channel: int = 12  # one float32 scale + one int64 zero point per quantisation channel (measured fit)


DEFAULT_LAYOUT = FlatbufferLayout()


@dataclass(frozen=True)
class FlashBreakdown:
    """Where the flash bytes go."""

    weights: int
    biases: int
    quantization: int
    metadata: int
    other_constants: int = 0  # small constant operands: reduction axes, paddings, window-count maps

    @property
    def total(self) -> int:
        return self.weights + self.biases + self.quantization + self.metadata + self.other_constants


def op_constant_bytes(graph: DeployGraph, index: int, layout: FlatbufferLayout = DEFAULT_LAYOUT) -> int:
    """Constant bytes of kernel ``index``: its weights, biases and their quantisation parameters."""
    op = graph.ops[index]
    total = op.weights * graph.element_bytes + op.biases * 4
    if graph.precision == "int8" and op.weights:
        total += 2 * (layout.per_quantized_tensor + op.quant_channels * layout.per_channel)
    return total


def flash_breakdown(graph: DeployGraph, layout: FlatbufferLayout = DEFAULT_LAYOUT) -> FlashBreakdown:
    """The flash bytes of ``graph`` under ``layout``."""
    eb = graph.element_bytes
    int8 = graph.precision == "int8"
    weights = biases = quant = 0
    const_tensors = 0
    for op in graph.ops:
        if op.weights:
            weights += op.weights * eb
            const_tensors += 1
        if op.biases:
            biases += op.biases * 4
            const_tensors += 1
        if int8 and op.weights:
            # weight tensor + bias tensor, each with quant_channels scales and zero points
            quant += 2 * (layout.per_quantized_tensor + op.quant_channels * layout.per_channel)
    other: dict[str, tuple[int, int]] = {}  # shared small constants: key -> (bytes, quantisation channels)
    for op in graph.ops:
        for key, nbytes, channels in op.constants:
            other[key] = (nbytes, channels)
    const_tensors += len(other)
    if int8:
        quant += sum(ch for _b, ch in other.values()) * layout.per_channel
    act_tensors = len(graph.tensors)
    if int8:
        quant += act_tensors * (layout.per_quantized_tensor + layout.per_channel)
    n_tensors = act_tensors + const_tensors
    metadata = (
        layout.fixed
        + layout.per_op * len(graph.ops)
        + layout.per_opcode * len({op.tflite for op in graph.ops})
        + layout.per_tensor * n_tensors
        + layout.per_buffer * n_tensors
        + layout.const_alignment * const_tensors
    )
    return FlashBreakdown(weights=weights, biases=biases, quantization=quant, metadata=metadata,
                          other_constants=sum(b for b, _ch in other.values()))


def tensor_counts(graph: DeployGraph) -> tuple[int, int]:
    """(tensors, int8 weight quantisation channels) of the flatbuffer ``graph`` exports: activation tensors,
    weight and bias tensors and the shared small constants; the channels of its int8 constant tensors (weight
    out channels, plus one per int8 small constant)."""
    const = sum((op.weights > 0) + (op.biases > 0) for op in graph.ops)
    other = {key: channels for op in graph.ops for key, _b, channels in op.constants}
    channels = sum(op.quant_channels for op in graph.ops if op.weights) + sum(other.values())
    return len(graph.tensors) + const + len(other), channels
