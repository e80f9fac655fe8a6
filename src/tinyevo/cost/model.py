"""The MCU cost model: ArchIR -> :class:`CostReport` (MACs, params, flash, peak SRAM, latency, energy).

``estimate_cost(ir, device="stm32f746")`` lowers the IR to the kernels an int8 ``.tflite`` model runs
(:mod:`tinyevo.cost.lowering`), counts constants and flatbuffer metadata (:mod:`tinyevo.cost.flash`), plans
activation memory (:mod:`tinyevo.cost.memory`) and, with a device, estimates latency and energy:

``cycles = sum over kernels of (c[op class] x work x f + memory x bytes moved + op_overhead)``,
``latency_ms = cycles / clock``, ``energy_mj = latency_ms x active power``, with the per-core coefficients
``c``, ``memory``, ``op_overhead`` and the float32 factor ``f`` from the device's
:class:`~tinyevo.devices.CoreModel` (sources in ``devices/builtin.toml``). With the ``native`` planner (tinyevo's
own C runtime) on a core calibrated by emulation (Cortex-M4 / M7), latency comes instead from
:mod:`tinyevo.cost.latency_native` (``CostReport.latency_model`` says which). Work is MACs for conv / depthwise /
dense, window elements for pooling and output elements for element-wise kernels; bytes moved are activations
read and written plus constants read.

Counting conventions: ``macs`` counts multiply-accumulates of convolutions and fully connected layers only
(what fvcore reports for ``conv`` + ``linear``); ``params`` counts deployed parameters: weights plus one bias
per output channel of every conv, depthwise conv and dense layer (BatchNorm folded into the conv bias).
``weight_bytes`` is the bytes of those parameters as TFLite Micro stores them: weights at the precision's
element size (1 byte in int8, 4 in float32) and biases as int32 (float32) -- the "model size" muNAS bounds,
without the quantisation parameters and flatbuffer metadata that ``flash_bytes`` adds.

``peak_sram_bytes`` is what the planner prices: by default (``tflm-mcu``) the whole TFLite Micro arena of a
32-bit MCU (the greedy planner's head plus the interpreter's persistent tail), i.e. what an SRAM limit must
bound; ``optimal`` / ``sequential`` / ``tflm`` price activations only (see :mod:`tinyevo.cost.memory`).

Peak-SRAM conventions (:data:`SRAM_CONVENTIONS`): ``mcunet`` counts the network input and output buffers (as
MCUNet and the TFLM arena do), ``munas`` counts neither (as muNAS does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol, runtime_checkable

from tinyevo.cost.flash import (
    DEFAULT_LAYOUT,
    FlashBreakdown,
    FlatbufferLayout,
    flash_breakdown,
    op_constant_bytes,
)
from tinyevo.cost.latency_native import NativeLatencyModel, native_latency_model
from tinyevo.cost.lowering import OP_CLASSES, DeployGraph, DeployOp, lower
from tinyevo.cost.memory import MemoryPlan, Planner, get_planner
from tinyevo.devices.profiles import DeviceProfile, get_device
from tinyevo.ir import ArchIR, Shape

SRAM_CONVENTIONS: dict[str, tuple[bool, bool]] = {"mcunet": (True, True), "munas": (False, False)}
"""Peak-SRAM convention -> (``count_input``, ``count_output``) of :func:`estimate_cost`."""
COST_METRICS: tuple[str, ...] = ("macs", "params", "weight_bytes", "flash_bytes", "peak_sram_bytes")
"""The metrics :meth:`CostReport.as_metrics` always gives (each the report's attribute of that name)."""
DEVICE_METRICS: tuple[str, ...] = ("latency_ms", "energy_mj")
"""The metrics :meth:`CostReport.as_metrics` gives too when a device is known."""


@dataclass(frozen=True)
class OpCost:
    """Cost of one deployed kernel."""

    name: str  # the kernel's output tensor
    tflite: str
    nodes: tuple[str, ...]  # IR nodes it implements
    output_shape: Shape
    macs: int
    params: int
    constant_bytes: int  # weights + biases + their quantisation parameters
    io_bytes: int  # activation bytes read + written
    live_bytes: int  # activation bytes live while it runs (from the memory plan)
    cycles: float | None = None  # with a device
    latency_ms: float | None = None


@dataclass(frozen=True)
class CostReport:
    """Everything the cost model knows about one architecture. ``as_metrics()`` is what searches consume.

    ``ops`` (the per-kernel costs) is computed on first access: searches that only need the totals skip it.
    """

    precision: str
    device: str | None
    macs: int
    params: int
    flash_bytes: int
    peak_sram_bytes: int
    latency_ms: float | None
    energy_mj: float | None
    flash: FlashBreakdown
    memory: MemoryPlan
    graph: DeployGraph = field(repr=False, compare=False)
    device_profile: DeviceProfile | None = field(default=None, repr=False, compare=False)
    layout: FlatbufferLayout = field(default=DEFAULT_LAYOUT, repr=False, compare=False)
    native_latency: NativeLatencyModel | None = field(default=None, repr=False, compare=False)

    @property
    def latency_model(self) -> str | None:
        """Where ``latency_ms`` comes from (``None`` without a device)."""
        if self.device_profile is None:
            return None
        if self.native_latency is not None:
            return self.native_latency.describe()
        core = self.device_profile.core
        return f"{core.name} coefficients (TFLite Micro + CMSIS-NN estimates): {core.source}"

    @property
    def live_at_peak(self) -> tuple[tuple[str, int], ...]:
        """(tensor, bytes) live at the SRAM peak, largest first."""
        return self.memory.live_at_peak

    @cached_property
    def ops(self) -> tuple[OpCost, ...]:
        """Per-kernel costs, in graph order."""
        graph, device = self.graph, self.device_profile
        live = dict(zip(self.memory.order, self.memory.live_bytes, strict=True))
        out = []
        for i, op in enumerate(graph.ops):
            cycles = latency = None
            if device is not None:
                cycles = (self.native_latency.op_cycles(graph, op) if self.native_latency is not None
                          else op_cycles(graph, op, device))
                latency = device.cycles_to_ms(cycles)
            out.append(OpCost(
                name=op.name, tflite=op.tflite, nodes=op.nodes, output_shape=graph.tensors[op.name].shape,
                macs=op.macs, params=op.params, constant_bytes=op_constant_bytes(graph, i, self.layout),
                io_bytes=_io_bytes(graph, op), live_bytes=live.get(op.name, 0), cycles=cycles,
                latency_ms=latency,
            ))
        return tuple(out)

    @property
    def weight_bytes(self) -> int:
        """Bytes of weights (at the precision's element size) and biases (int32 / float32): the model size
        without quantisation parameters and flatbuffer metadata."""
        return self.flash.weights + self.flash.biases

    def as_metrics(self) -> dict[str, float]:
        """:data:`COST_METRICS` (``macs``, ``params``, ``weight_bytes``, ``flash_bytes``, ``peak_sram_bytes``)
        and, with a device, :data:`DEVICE_METRICS` (``latency_ms``, ``energy_mj``)."""
        out = {m: float(getattr(self, m)) for m in COST_METRICS}
        if self.latency_ms is not None and self.energy_mj is not None:
            out.update({m: float(getattr(self, m)) for m in DEVICE_METRICS})
        return out


@runtime_checkable
class CostModel(Protocol):
    """Estimates the deployment cost of an architecture."""

    def estimate(self, ir: ArchIR) -> CostReport:
        ...


@dataclass(frozen=True)
class MCUCostModel:
    """The analytical microcontroller cost model with its options (see the module docstring).

    ``planner`` is a registered planner name or a :class:`~tinyevo.cost.memory.Planner`: ``tflm-mcu`` (default:
    the whole TFLite Micro arena a 32-bit MCU needs, planned head + persistent tail), ``tflm`` (the head
    only), ``optimal``, ``sequential`` (activations only), ``native`` (the arena of tinyevo's native C runtime,
    in-place kernels included: :mod:`tinyevo.cost.native`). ``count_input`` / ``count_output``: whether the network input and
    output buffers count towards peak SRAM (MCUNet and the TFLM arena: both; muNAS: neither). ``inplace``:
    depthwise convs and adds may overwrite a dying input.
    """

    device: DeviceProfile | None = None
    precision: str = "int8"
    planner: str | Planner = "tflm-mcu"
    count_input: bool = True
    count_output: bool = True
    inplace: bool = False
    layout: FlatbufferLayout = DEFAULT_LAYOUT

    def estimate(self, ir: ArchIR) -> CostReport:
        graph = lower(ir, precision=self.precision)
        plan = get_planner(self.planner).plan(
            graph, count_input=self.count_input, count_output=self.count_output, inplace=self.inplace
        )
        return _report(graph, plan, self.device, self.layout)


def estimate_cost(
    ir: ArchIR,
    *,
    device: str | DeviceProfile | None = None,
    precision: str = "int8",
    planner: str | Planner = "tflm-mcu",
    count_input: bool = True,
    count_output: bool = True,
    inplace: bool = False,
    layout: FlatbufferLayout = DEFAULT_LAYOUT,
) -> CostReport:
    """Cost of ``ir`` deployed at ``precision`` (``"int8"``, ``"float32"``); latency and energy on ``device``.

    See :class:`MCUCostModel` for the options.
    """
    dev = get_device(device) if device is not None else None
    model = MCUCostModel(device=dev, precision=precision, planner=planner, count_input=count_input,
                         count_output=count_output, inplace=inplace, layout=layout)
    return model.estimate(ir)


def op_cycles(graph: DeployGraph, op: DeployOp, device: DeviceProfile) -> float:
    """Estimated cycles of one kernel on ``device`` (see the module docstring)."""
    core = device.core
    compute = core.coefficient(op.op_class) * op.work
    if graph.precision == "float32":
        compute *= core.float32
    moved = _io_bytes(graph, op) + op.weights * graph.element_bytes + op.biases * 4
    return compute + core.memory * moved + core.op_overhead


def _total_cycles(graph: DeployGraph, device: DeviceProfile) -> float:
    """``sum(op_cycles(graph, op, device) for op in graph.ops)``, inlined (this runs on every estimate)."""
    core = device.core
    f = core.float32 if graph.precision == "float32" else 1.0
    eb = graph.element_bytes
    nbytes = {name: t.nbytes for name, t in graph.tensors.items()}
    coefficient = {c: core.coefficient(c) for c in OP_CLASSES}
    compute = moved = 0.0
    for op in graph.ops:
        compute += coefficient[op.op_class] * op.work
        io = nbytes[op.name]
        for t in op.inputs:
            io += nbytes[t]
        moved += io + op.weights * eb + op.biases * 4
    return compute * f + core.memory * moved + core.op_overhead * len(graph.ops)


def _io_bytes(graph: DeployGraph, op: DeployOp) -> int:
    return sum(graph.tensors[t].nbytes for t in op.inputs) + graph.tensors[op.name].nbytes


def _report(graph: DeployGraph, plan: MemoryPlan, device: DeviceProfile | None,
            layout: FlatbufferLayout) -> CostReport:
    flash = flash_breakdown(graph, layout)
    latency_ms = energy = None
    native = None
    if device is not None and plan.planner == "native" and graph.precision == "int8":
        native = native_latency_model(device.core.name)
    if device is not None:
        total_cycles = native.graph_cycles(graph) if native is not None else _total_cycles(graph, device)
        latency_ms = device.cycles_to_ms(total_cycles)
        energy = device.energy_mj(latency_ms)
    macs = params = 0
    for op in graph.ops:
        macs += op.macs
        params += op.weights + op.biases
    return CostReport(
        precision=graph.precision, device=device.name if device else None, macs=macs, params=params,
        flash_bytes=flash.total, peak_sram_bytes=plan.peak_bytes, latency_ms=latency_ms, energy_mj=energy,
        flash=flash, memory=plan, graph=graph, device_profile=device, layout=layout, native_latency=native,
    )
