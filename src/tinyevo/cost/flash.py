"""Flash (model size) of a deployed graph, modelled on an int8 ``.tflite`` flatbuffer.

``flash = weights + biases + quantisation parameters + flatbuffer metadata``:

* **weights**: one byte per element in int8 (four in float32);
* **biases**: int32 (float32) per output channel; every conv and depthwise conv has one (BatchNorm folded);
* **quantisation parameters** (int8 only): every tensor carries a ``QuantizationParameters`` table with a
  scale vector (float32) and a zero-point vector (int64). Conv and depthwise weights and their biases are
  quantised per output channel (one scale + zero point each), fully connected ones per tensor, activations per
  tensor;
* **metadata**: the flatbuffer tables around that data: one ``Operator`` per kernel (opcode index, input and
  output index vectors, builtin options), one ``Tensor`` per tensor (shape vector, type, buffer index, name),
  one ``Buffer`` per tensor (constant data is 16-byte aligned), one ``OperatorCode`` per distinct kernel type,
  and a fixed part (model and subgraph tables, description, ``min_runtime_version`` and conversion metadata,
  signature def).

The per-item constants are estimates from the flatbuffer schema (``tensorflow/lite/schema/schema.fbs``) with
typical converter tensor names (~40 characters); they live in :class:`FlatbufferLayout` so that a calibration
against real files (the deployment issue) can replace them without touching the counting. The interpreter code
itself (TFLite Micro, CMSIS-NN) is not part of this number.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinyevo.cost.lowering import DeployGraph


@dataclass(frozen=True)
class FlatbufferLayout:
    """Bytes a ``.tflite`` flatbuffer spends besides the constant data (see the module docstring)."""

    fixed: int = 1200  # Model/SubGraph tables, "MLIR Converted." description, metadata buffers, signature def
    per_op: int = 64  # Operator table: vtable, opcode index, input/output int32 vectors, builtin options
    per_opcode: int = 24  # OperatorCode table per distinct kernel type
    per_tensor: int = 88  # Tensor table: vtable, shape vector (4 + 4 x rank), type, buffer, ~40-char name
    per_buffer: int = 12  # Buffer table + data vector length (constant buffers add alignment, below)
    const_alignment: int = 8  # average padding to 16-byte alignment per constant buffer
    per_quantized_tensor: int = 32  # QuantizationParameters table + scale / zero-point vector headers
    per_channel: int = 12  # one float32 scale + one int64 zero point per quantisation channel


DEFAULT_LAYOUT = FlatbufferLayout()


@dataclass(frozen=True)
class FlashBreakdown:
    """Where the flash bytes go."""

    weights: int
    biases: int
    quantization: int
    metadata: int

    @property
    def total(self) -> int:
        return self.weights + self.biases + self.quantization + self.metadata


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
    return FlashBreakdown(weights=weights, biases=biases, quantization=quant, metadata=metadata)
