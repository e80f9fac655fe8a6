"""Calibrated latency of tinyevo's native C runtime on Cortex-M cores (planner ``native``).

The latency of the generated C model on a core is ``instructions x CPI / clock``:

* **instructions** = sum over kernels of a per-kernel linear model plus the glue of ``tinyevo_model_invoke``.
  A kernel's instructions are ``theta[key] . features`` with ``features`` = (:data:`FEATURES`): MACs (conv /
  depthwise / dense; 0 otherwise), output elements, output pixels (H x W), input bytes (all activation inputs),
  output channels and 1 (the call). (A "windows" feature -- inner dot products, MACs / input channels -- was
  tried and cross-validated worse on the benchmark's networks: 8.9 % vs 5.7 % median error on the M4.) Every feature is known both to the search (the lowered IR) and to the code
  generator (the ``.tflite``), so the same model is fitted on one and applied to the other. ``key`` is the TFLite kernel
  (``CONV_2D_1x1`` for a pointwise conv); a kernel seen too rarely in the calibration set uses its op class's
  coefficients. The glue is ``g0 + g1 x kernels + g2 x (input + output bytes)`` (the copies in and out of the
  arena). The coefficients are least-squares fits (non-negative per kernel) to instruction counts of the
  generated model emulated on QEMU (:mod:`tinyevo.codegen.cortexm.calibrate`, which writes
  ``native_latency.json`` beside this module with its command, the networks used and the held-back error).
* **CPI** (cycles per instruction) is a documented per-core factor, not measured: QEMU counts instructions, not
  cycles. See ``native_latency.json`` for each core's value and reasoning.

The search uses this model when the planner is ``native`` and the device's core has a calibration
(``cortex-m4``, ``cortex-m7``); otherwise the device's uncalibrated :class:`~tinyevo.devices.CoreModel`
(TFLite Micro + CMSIS-NN estimates) prices latency.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from tinyevo.cost.lowering import DeployGraph, DeployOp
from tinyevo.errors import ConfigError

FEATURES: tuple[str, ...] = ("macs", "out_elements", "out_pixels", "in_bytes", "out_channels", "one")
DATA_FILE = "native_latency.json"


def kernel_key(tflite: str, op_class: str) -> str:
    """The calibration key of a kernel: its TFLite name, ``CONV_2D_1x1`` for a pointwise convolution."""
    if tflite == "CONV_2D" and op_class == "pointwise":
        return "CONV_2D_1x1"
    return tflite


def op_key(op: DeployOp) -> str:
    return kernel_key(op.tflite, op.op_class)


def kernel_features(tflite: str, macs: int, out_shape: tuple[int, int, int], in_bytes: int,
                    in_channels: int) -> tuple[float, ...]:
    """:data:`FEATURES` of a ``tflite`` kernel with ``macs``, output ``(C, H, W)``, ``in_bytes`` of activation
    inputs and ``in_channels`` channels in its first input."""
    del tflite, in_channels  # part of the signature for features that need them (none at present)
    c, h, w = out_shape
    return (float(macs), float(c * h * w), float(h * w), float(in_bytes), float(c), 1.0)


def op_features(graph: DeployGraph, op: DeployOp) -> tuple[float, ...]:
    """The :data:`FEATURES` of a kernel of the lowered graph."""
    in_bytes = sum(graph.tensors[t].nbytes for t in op.inputs)
    in_channels = graph.tensors[op.inputs[0]].shape[0] if op.inputs else 1
    return kernel_features(op.tflite, op.macs, graph.tensors[op.name].shape, in_bytes, in_channels)


def glue_features(graph: DeployGraph) -> tuple[float, ...]:
    """Features of the glue of one inference: (1, kernels, input + output bytes)."""
    io = graph.tensors[graph.input].nbytes + graph.tensors[graph.output].nbytes
    return (1.0, float(len(graph.ops)), float(io))


@dataclass(frozen=True)
class NativeLatencyModel:
    """One core's calibrated model (see the module docstring)."""

    core: str
    cpi: float
    kernels: Mapping[str, tuple[float, ...]]  # key -> coefficients over FEATURES
    classes: Mapping[str, tuple[float, ...]]  # op class -> coefficients (fallback)
    glue: tuple[float, float, float]
    cpi_source: str = ""
    source: str = ""
    held_back_median_abs_error: float | None = None

    def coefficients(self, op: DeployOp) -> tuple[float, ...]:
        key = op_key(op)
        if key in self.kernels:
            return self.kernels[key]
        if op.op_class in self.classes:
            return self.classes[op.op_class]
        raise ConfigError(f"the native latency calibration of {self.core} knows no {key} ({op.op_class}) kernel")

    def op_instructions(self, graph: DeployGraph, op: DeployOp) -> float:
        return sum(c * f for c, f in zip(self.coefficients(op), op_features(graph, op), strict=True))

    def graph_instructions(self, graph: DeployGraph) -> float:
        kernels = sum(self.op_instructions(graph, op) for op in graph.ops)
        return kernels + sum(g * f for g, f in zip(self.glue, glue_features(graph), strict=True))

    def op_cycles(self, graph: DeployGraph, op: DeployOp) -> float:
        return self.op_instructions(graph, op) * self.cpi

    def graph_cycles(self, graph: DeployGraph) -> float:
        return self.graph_instructions(graph) * self.cpi

    def describe(self) -> str:
        err = (f", held-back median |error| {100 * self.held_back_median_abs_error:.1f} %"
               if self.held_back_median_abs_error is not None else "")
        return (f"native runtime, calibrated on emulated {self.core} instruction counts{err}; "
                f"{self.cpi:g} cycles per instruction (documented estimate)")


def parse_models(doc: Mapping[str, object], *, origin: str = DATA_FILE) -> dict[str, NativeLatencyModel]:
    """The per-core models of a calibration document (the JSON the calibration writes)."""
    feats = doc.get("features")
    if list(feats or []) != list(FEATURES):  # type: ignore[call-overload]
        raise ConfigError(f"{origin}: features {feats!r} differ from {list(FEATURES)}; recalibrate")
    out = {}
    cores = doc.get("cores", {})
    if not isinstance(cores, Mapping):
        raise ConfigError(f"{origin}: 'cores' must be a table")
    for core, table in cores.items():
        held = table.get("held_back", {}) or {}
        out[core] = NativeLatencyModel(
            core=core, cpi=float(table["cpi"]),
            kernels={k: tuple(map(float, v)) for k, v in table["kernels"].items()},
            classes={k: tuple(map(float, v)) for k, v in table["classes"].items()},
            glue=tuple(map(float, table["glue"])),  # type: ignore[arg-type]
            cpi_source=str(table.get("cpi_source", "")), source=str(doc.get("source", "")),
            held_back_median_abs_error=held.get("median_abs_error"),
        )
    return out


@functools.cache
def _builtin() -> dict[str, NativeLatencyModel]:
    res = resources.files("tinyevo.cost").joinpath(DATA_FILE)
    if not res.is_file():
        return {}
    return parse_models(json.loads(res.read_text(encoding="utf-8")))


def native_latency_model(core: str) -> NativeLatencyModel | None:
    """The built-in calibration of ``core`` (``None`` when it has none)."""
    return _builtin().get(core)


def load_native_latency(path: str | Path) -> dict[str, NativeLatencyModel]:
    """The per-core models of a calibration file."""
    p = Path(path)
    try:
        return parse_models(json.loads(p.read_text(encoding="utf-8")), origin=str(p))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read the native latency calibration {p}: {exc}") from None


__all__ = ["DATA_FILE", "FEATURES", "NativeLatencyModel", "glue_features", "kernel_features", "kernel_key",
           "load_native_latency", "native_latency_model", "op_features", "op_key", "parse_models"]
