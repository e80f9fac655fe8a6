"""Measuring generated models on the emulated cores and fitting the native latency model to the counts.

:func:`measure` builds a generated model twice for a target -- with op hooks (instructions per kernel) and
without (the instructions a deployed model executes per inference) -- and emulates both. :func:`fit` turns the
measurements of many networks into one core's table of :mod:`tinyevo.cost.latency_native`:

* per kernel key (``CONV_2D``, ``CONV_2D_1x1``, ``DEPTHWISE_CONV_2D``, ...) a non-negative least-squares fit of
  the kernel's instructions to its features (columns scaled to unit norm first); keys with fewer than
  ``min_samples`` kernels fall back to their op class's fit (all keys of the class pooled);
* the glue (``instructions without hooks - sum of the hooked kernels' counts``) by ordinary least squares on
  (1, kernels, input + output bytes); the hooks' own instructions end up here with a negative per-kernel term.

:func:`relative_errors` compares a model's predictions with measured totals (held-back networks).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyevo.codegen.cortexm.emulate import emulate
from tinyevo.codegen.cortexm.firmware import ModelSources, SizeReport, build_firmware
from tinyevo.codegen.cortexm.toolchain import Target, Toolchain, get_target
from tinyevo.codegen.generate import GeneratedModel, OpRecord
from tinyevo.cost.latency_native import FEATURES, kernel_features, kernel_key

CPI: dict[str, tuple[float, str]] = {
    "cortex-m4": (1.35, "estimate: single-issue 3-stage pipeline; in the int8 kernels' loops LDRSB/LDR take 2 "
                        "cycles unless pipelined with the next load, MUL/MLA/SMLAD 1, a taken branch 2-4 (Cortex-M4 "
                        "TRM, instruction timings); about 1.35 cycles per instruction from zero-wait-state memory"),
    "cortex-m7": (0.92, "estimate: the M4 figure divided by the cores' CoreMark/MHz ratio (5.01 / 3.40 = 1.47, "
                        "Arm's published figures): dual issue and branch prediction, caches warm"),
}
"""Documented cycles-per-instruction factor per core (QEMU counts instructions, not cycles)."""


@dataclass(frozen=True)
class Measurement:
    """A generated model emulated on one target."""

    target: str
    ops: tuple[OpRecord, ...]
    op_instructions: tuple[int, ...]  # per kernel (hooked build, first input)
    instructions: int  # per inference without hooks (first input)
    outputs: np.ndarray  # int8 outputs of the build without hooks, one row per input
    size: SizeReport  # the build without hooks, whole image
    model_size: SizeReport  # its tinyevo_model.o
    input_output_bytes: int
    input_channels: int = 0  # channels of the network input (NHWC C)

    def kernel_rows(self) -> list[tuple[str, str, tuple[float, ...], int]]:
        """(key, op class, features, instructions) of every kernel."""
        channels = {op.output: op.output_shape[-1] for op in self.ops}
        return [(kernel_key(op.kind, op.op_class), op.op_class,
                 op_record_features(op, channels.get(op.inputs[0], self.input_channels) if op.inputs else 1), n)
                for op, n in zip(self.ops, self.op_instructions, strict=True)]

    @property
    def glue(self) -> int:
        return self.instructions - sum(self.op_instructions)


def op_record_features(op: OpRecord, in_channels: int) -> tuple[float, ...]:
    """:data:`~tinyevo.cost.latency_native.FEATURES` of a generated kernel (shape NHWC or [N, F] -> CHW) whose
    first input has ``in_channels`` channels."""
    s = tuple(op.output_shape)
    chw = (s[3], s[1], s[2]) if len(s) == 4 else (s[-1], 1, 1)
    return kernel_features(op.kind, op.macs, chw, op.bytes_in, in_channels)


def measure(gen: GeneratedModel, inputs: np.ndarray, target: str | Target, workdir: str | Path, *,
            toolchain: Toolchain | None = None, plugin_dir: str | Path | None = None) -> Measurement:
    """Build ``gen`` with and without op hooks for ``target`` in ``workdir`` and emulate both (the hooked build
    on the first input only)."""
    tc = toolchain or Toolchain.find()
    tgt = get_target(target)
    work = Path(workdir)
    x = np.asarray(inputs, dtype=np.int8).reshape(-1, gen.input_bytes)
    hooked = build_firmware(ModelSources(gen.h_source, gen.c_source, op_hooks=True), tgt, work / "hooks",
                            toolchain=tc)
    plain = build_firmware(ModelSources(gen.h_source, gen.c_source, op_hooks=False), tgt, work / "plain",
                           toolchain=tc)
    per_op = emulate(hooked, x[:1], toolchain=tc, plugin_dir=plugin_dir or work).inferences[0].ops
    run = emulate(plain, x, toolchain=tc, plugin_dir=plugin_dir or work)
    if len(per_op) != len(gen.ops):
        raise ValueError(f"{len(per_op)} kernels counted, the model has {len(gen.ops)}")
    return Measurement(target=tgt.name, ops=gen.ops, op_instructions=per_op, instructions=run.instructions,
                       outputs=run.outputs, size=plain.size, model_size=plain.model_size,
                       input_output_bytes=gen.input_bytes + gen.output_bytes,
                       input_channels=int(gen.input_shape[-1]))


def _nnls(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls

    norms = np.linalg.norm(x, axis=0)
    norms[norms == 0] = 1.0
    coef, _ = nnls(x / norms, y)
    return coef / norms


def fit(measurements: Sequence[Measurement], *, min_samples: int = 8) -> dict[str, object]:
    """One core's calibration table (see the module docstring) from measurements of one target."""
    rows = [r for m in measurements for r in m.kernel_rows()]
    by_key: dict[str, list[tuple[tuple[float, ...], int]]] = {}
    by_class: dict[str, list[tuple[tuple[float, ...], int]]] = {}
    for key, cls, feats, n in rows:
        by_key.setdefault(key, []).append((feats, n))
        by_class.setdefault(cls, []).append((feats, n))

    def solve(samples: list[tuple[tuple[float, ...], int]]) -> list[float]:
        x = np.array([f for f, _ in samples], dtype=np.float64)
        y = np.array([n for _, n in samples], dtype=np.float64)
        return [float(v) for v in _nnls(x, y)]

    kernels = {k: solve(v) for k, v in sorted(by_key.items()) if len(v) >= min_samples}
    classes = {c: solve(v) for c, v in sorted(by_class.items())}
    g = np.array([[1.0, len(m.ops), m.input_output_bytes] for m in measurements])
    glue_y = np.array([m.glue for m in measurements], dtype=np.float64)
    glue, *_ = np.linalg.lstsq(g, glue_y, rcond=None)
    return {
        "kernels": kernels, "classes": classes, "glue": [float(v) for v in glue],
        "samples": {k: len(v) for k, v in sorted(by_key.items())}, "networks": len(measurements),
    }


def relative_errors(predicted: Iterable[float], measured: Iterable[float]) -> np.ndarray:
    """``(predicted - measured) / measured`` per network."""
    p = np.asarray(list(predicted), dtype=np.float64)
    m = np.asarray(list(measured), dtype=np.float64)
    return (p - m) / m


def predict_from_records(table: dict[str, object], m: Measurement) -> float:
    """A fitted table's instructions for a measured model from its generated kernels (not the lowered IR)."""
    kernels, classes = table["kernels"], table["classes"]
    total = 0.0
    for key, cls, feats, _n in m.kernel_rows():
        coef = kernels.get(key) or classes[cls]  # type: ignore[attr-defined]
        total += float(np.dot(coef, feats))
    glue = table["glue"]
    return total + float(np.dot(glue, [1.0, len(m.ops), m.input_output_bytes]))  # type: ignore[arg-type]



__all__ = ["CPI", "FEATURES", "Measurement", "fit", "measure", "op_record_features", "predict_from_records",
           "relative_errors"]
