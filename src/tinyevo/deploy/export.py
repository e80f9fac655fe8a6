"""One call from a trained architecture to deployable files, with the numbers proven on the real runtime.

:func:`export_model` takes an IR, its trained ``state_dict`` and the data set, and writes

* ``tflite``: ``model.tflite`` (int8 by default: int8 NHWC input and output, per-channel weights) and
  ``report.json``: flatbuffer size, TFLite-Micro's measured arena, the cost model's estimates, float / int8
  accuracy in PyTorch and int8 accuracy on TFLite-Micro on the test split;
* ``c``: the same, plus the model as ``model.h`` (an aligned ``uint8_t`` array) and ``model_arena.json``;
* ``onnx``: ``model.onnx`` (float, NCHW, one file) or with ``int8`` a QDQ int8 model quantised by ONNX Runtime
  on the same calibration rows, with ONNX Runtime's test accuracy in ``report.json``.

Optionally the network is first pruned (:mod:`tinyevo.deploy.prune`) and fine-tuned.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from tinyevo.deploy.errors import DeployError
from tinyevo.deploy.graph import strip_passthrough
from tinyevo.deploy.model import load_weights, predict
from tinyevo.deploy.quantize import QuantConfig, quantize_int8
from tinyevo.errors import ConfigError
from tinyevo.ir import ArchIR
from tinyevo.training import fraction_correct

log = logging.getLogger(__name__)

Format = Literal["tflite", "onnx", "c"]
FORMATS: tuple[str, ...] = ("tflite", "onnx", "c")


@dataclass(frozen=True)
class ExportOptions:
    """How to export. ``int8=None`` picks the format's default (int8 for tflite and c, float for onnx).

    ``test_samples`` caps the test rows run through the runtimes (a seeded random subset; ``None``: the whole
    test split).
    ``prune``: fraction of channels to remove before quantisation (0 = no pruning), fine-tuned with
    ``prune_epochs`` epochs. ``name`` is the base name of the files: a plain file name (for the ``c`` format also
    a C identifier, the array's name).
    """

    int8: bool | None = None
    quant: QuantConfig = field(default_factory=QuantConfig)
    test_samples: int | None = None
    name: str = "model"
    seed: int = 0
    prune: float = 0.0
    prune_epochs: int = 2
    device: str | None = None  # for the cost model's latency estimate

    def __post_init__(self) -> None:
        if self.test_samples is not None and self.test_samples < 1:
            raise DeployError(f"test_samples must be positive, got {self.test_samples}")
        if not 0.0 <= self.prune < 1.0:
            raise DeployError(f"prune must be a fraction in [0, 1), got {self.prune}")
        check_name(self.name)


_SEPARATORS = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
_C_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_name(name: str) -> None:
    """Raise :class:`ConfigError` unless ``name`` is a plain file name (the files must stay in the output folder)."""
    if not name or name in (".", "..") or any(c in name for c in _SEPARATORS) or "\0" in name:
        raise ConfigError(f"export name {name!r} must be a plain file name, without path separators or '..'")


DEFAULT_OPTIONS = ExportOptions()


@dataclass(frozen=True)
class DeployReport:
    """What was exported and what it measured. Sizes in bytes, accuracies as fractions; ``None`` = not measured.

    ``arena_bytes`` is the smallest ``arena_size`` with which TFLite-Micro loads and runs the model (bisected);
    ``arena_reported_bytes`` is the allocator's "Arena allocation total" after allocation, split into
    ``arena_head_bytes`` (activations and scratch buffers planned by TFLM) and ``arena_tail_bytes`` (persistent
    interpreter data). Measured on the 64-bit host; pointer-sized structs in the tail are smaller on a 32-bit MCU. ``estimated_*`` come from :func:`tinyevo.cost.estimate_cost` on the exported architecture
    (``estimated_peak_sram_tflm_bytes`` with its TFLM-style planner).

    ``arena_bytes_mcu32`` is the 32-bit MCU's arena after allocation: the measured head (pointer-size independent) +
    ``arena_tail_mcu32_bytes``, TFLM's persistent tail modelled for 4-byte pointers and the plain
    ``MicroAllocator`` from the flatbuffer (:mod:`tinyevo.cost.tflm_tail`, exact with 8-byte pointers against the
    host). ``arena_required_mcu32_bytes`` is the ``arena_size`` that MCU needs: more than
    ``arena_bytes_mcu32`` when a kernel's Prepare temporaries or the planning step need more room than the
    planned head (small models; :func:`~tinyevo.cost.tflm_tail.tflm_arena_required`, equal to the host's
    bisected minimum with 8-byte pointers). ``estimated_peak_sram_bytes`` (the default ``tflm-mcu`` planner)
    estimates it before export.
    """

    format: str
    int8: bool
    files: tuple[str, ...]
    model_bytes: int
    tflite_bytes: int | None = None
    arena_bytes: int | None = None
    arena_reported_bytes: int | None = None
    arena_head_bytes: int | None = None
    arena_tail_bytes: int | None = None
    arena_bytes_mcu32: int | None = None  # measured head + modelled 32-bit tail
    arena_tail_mcu32_bytes: int | None = None
    arena_required_mcu32_bytes: int | None = None  # + Prepare / planning needs: the arena_size an MCU needs
    estimated_flash_bytes: float | None = None
    estimated_peak_sram_bytes: float | None = None
    estimated_peak_sram_tflm_bytes: float | None = None
    float_accuracy_torch: float | None = None
    int8_accuracy_torch: float | None = None
    int8_accuracy_tflm: float | None = None
    float_accuracy_tflm: float | None = None
    tflm_torch_agreement: float | None = None
    accuracy_onnx: float | None = None
    qat_used: bool = False
    pruned_fraction: float = 0.0
    pruning: dict[str, float] | None = None  # PruneResult.as_json(): sizes and accuracies before / after
    params: int | None = None
    test_samples: int = 0
    ops: tuple[str, ...] = ()
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in asdict(self).items():
            if isinstance(v, float) and not math.isfinite(v):
                v = None
            if isinstance(v, dict):
                v = {a: (None if isinstance(b, float) and not math.isfinite(b) else b) for a, b in v.items()}
            out[k] = list(v) if isinstance(v, tuple) else v
        return out


def _estimates(ir: ArchIR, device: str | None) -> dict[str, float | None]:
    try:
        from tinyevo.cost import estimate_cost
    except ImportError:  # pragma: no cover - the cost model is part of tinyevo
        return {}
    default = estimate_cost(ir, device=device).as_metrics()
    tflm = estimate_cost(ir, device=device, planner="tflm").as_metrics()
    return {
        "estimated_flash_bytes": default["flash_bytes"],
        "estimated_peak_sram_bytes": default["peak_sram_bytes"],
        "estimated_peak_sram_tflm_bytes": tflm["peak_sram_bytes"],
    }


def _mcu32_arena(info: Any, head: int) -> dict[str, int]:
    """The measured head plus TFLM's persistent tail modelled for a 32-bit MCU (4-byte pointers), and the
    arena size that MCU needs (more than head + tail when a kernel's Prepare or the planning needs more)."""
    from tinyevo.cost.tflm_tail import tail_spec_from_flatbuffer, tflm_arena_required, tflm_tail_bytes

    spec = tail_spec_from_flatbuffer(info)
    tail = tflm_tail_bytes(spec, pointer_size=4)
    return {"arena_bytes_mcu32": head + tail, "arena_tail_mcu32_bytes": tail,
            "arena_required_mcu32_bytes": tflm_arena_required(spec, head, pointer_size=4)}


def _test_rows(data: Any, limit: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The test split, or ``limit`` rows of it drawn at random (seeded; in their original order): not the first
    rows, because a test split may be sorted by class (the usual ``mnist.npz`` is)."""
    x, y = np.asarray(data.x_test), np.asarray(data.y_test)
    if limit is not None and limit < len(x):
        rows = np.sort(np.random.default_rng(seed).choice(len(x), size=limit, replace=False))
        x, y = x[rows], y[rows]
    if len(x) == 0:
        raise DeployError("the data set has an empty test split; accuracy cannot be measured")
    return x, y


def _fit_data(ir: ArchIR, data: Any) -> Any:
    c, h, w = ir.input_shape
    shape = tuple(np.asarray(data.x_train).shape[1:])
    if shape == (c, h, w):
        return data
    if shape[0] != c:
        raise DeployError(f"the architecture expects {c} input channel(s) but the data has {shape[0]}")
    from tinyevo.training import fit_data_to_ir

    return fit_data_to_ir(ir, data)


def export_model(
    ir: ArchIR,
    state_dict: dict[str, torch.Tensor] | None,
    data: Any,
    *,
    fmt: Format = "tflite",
    out_dir: str | Path,
    options: ExportOptions = DEFAULT_OPTIONS,
) -> DeployReport:
    """Export the trained network ``(ir, state_dict)`` and measure it (see the module docstring).

    ``data`` is a :class:`tinyevo.data.Dataset` (resized to the IR's resolution when needed): training rows
    calibrate the int8 quantisation, test rows measure accuracy. Raises :class:`DeployError` on anything that
    prevents a faithful export.
    """
    if fmt not in FORMATS:
        raise DeployError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "c" and not _C_IDENT.match(options.name):
        raise ConfigError(f"export name {options.name!r} must be a C identifier for the c format (it names the "
                          "array)")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DeployError(f"the output path {out} exists and is not a folder")
    with _staging(out) as stage:
        report = _export_into(ir, state_dict, data, fmt=fmt, stage=stage, out=out, options=options)
    return report


@contextlib.contextmanager
def _staging(out: Path) -> Iterator[Path]:
    """A hidden folder beside ``out`` to write the files into. On success they move into ``out`` (a new ``out`` is
    the staging folder renamed, in one step; an existing one gets the files replaced one by one, other files in it
    are kept). On any failure the staging folder and the parent folders created for it are removed, so that no
    half-written export is left behind."""
    missing = [p for p in (out.parent, *out.parent.parents) if not p.exists()]
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f".{out.name}.{os.getpid()}-{secrets.token_hex(4)}.partial"
    stage.mkdir()
    try:
        yield stage
        if not out.exists():
            os.rename(stage, out)
        else:
            for f in sorted(stage.iterdir()):
                os.replace(f, out / f.name)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        for p in missing:  # deepest first
            try:
                p.rmdir()
            except OSError:
                break
        raise
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def _export_into(ir: ArchIR, state_dict: dict[str, torch.Tensor] | None, data: Any, *, fmt: Format, stage: Path,
                 out: Path, options: ExportOptions) -> DeployReport:
    """:func:`export_model`'s work: files are written into ``stage`` and reported under ``out``."""
    start = time.perf_counter()
    int8 = options.int8 if options.int8 is not None else fmt in ("tflite", "c")
    data = _fit_data(ir, data)
    rng = np.random.default_rng(options.seed)
    lean = strip_passthrough(ir)
    model = load_weights(lean, state_dict, seed=options.seed)
    pruned = 0.0
    if options.prune > 0:
        from tinyevo.deploy.prune import PruneConfig, prune_and_finetune

        result = prune_and_finetune(lean, model.state_dict(), data, config=PruneConfig(
            fraction=options.prune, epochs=options.prune_epochs), seed=options.seed)
        lean, model, pruned = result.ir, load_weights(result.ir, result.state_dict), result.removed_fraction
    x_test, y_test = _test_rows(data, options.test_samples, options.seed)
    fields: dict[str, Any] = {
        "pruning": result.as_json() if options.prune > 0 else None,
        "float_accuracy_torch": fraction_correct(predict(model, x_test), y_test),
        "params": int(sum(p.numel() for p in model.parameters())),
        "test_samples": len(x_test), "pruned_fraction": pruned,
    }
    fields.update(_estimates(lean, options.device))
    files: list[Path] = []
    if fmt == "onnx":
        from tinyevo.deploy.onnx import export_onnx

        path = stage / f"{options.name}.onnx"
        onnx_result = export_onnx(model, lean.input_shape, path, int8=int8,
                                  calibration=np.asarray(data.x_train), config=options.quant, rng=rng)
        files.append(path)
        fields["accuracy_onnx"] = fraction_correct(onnx_result.predict(x_test), y_test)
        model_bytes = path.stat().st_size
    else:
        from tinyevo.deploy.tflite import to_tflite, to_tflite_float
        from tinyevo.deploy.tflm import inspect_flatbuffer, measure_arena, run_tflm

        if int8:
            q = quantize_int8(model, np.asarray(data.x_train), np.asarray(data.y_train), config=options.quant,
                              rng=rng)
            torch_pred = q.predict(x_test)
            fields["int8_accuracy_torch"] = fraction_correct(torch_pred, y_test)
            fields["qat_used"] = q.qat_used
            flatbuffer = to_tflite(q, lean.input_shape)
        else:
            torch_pred = predict(model, x_test)
            flatbuffer = to_tflite_float(model, lean.input_shape)
        arena = measure_arena(flatbuffer)
        info = inspect_flatbuffer(flatbuffer)
        # in-process runs use the generous size the arena was measured with (a child process ran the model with
        # it), never a size near the minimum: TFLM may crash instead of raising there
        run = run_tflm(flatbuffer, x_test, arena_size=arena.measured_with)
        fields[("int8" if int8 else "float") + "_accuracy_tflm"] = fraction_correct(run.predictions, y_test)
        fields["tflm_torch_agreement"] = fraction_correct(run.predictions, torch_pred)
        fields.update(tflite_bytes=len(flatbuffer), arena_bytes=arena.required, arena_reported_bytes=arena.total,
                      arena_head_bytes=arena.head,
                      arena_tail_bytes=arena.tail, ops=info.op_names())
        fields.update(_mcu32_arena(info, arena.head))
        model_bytes = len(flatbuffer)
        path = stage / f"{options.name}.tflite"
        path.write_bytes(flatbuffer)
        files.append(path)
        if fmt == "c":
            from tinyevo.deploy.carray import write_c_files

            arena_doc = {"arena_bytes": arena.required, "arena_reported_bytes": arena.total,
                         "arena_head_bytes": arena.head,
                         "arena_tail_bytes": arena.tail, "arena_bytes_mcu32": fields["arena_bytes_mcu32"],
                         "model_bytes": len(flatbuffer),
                         "measured_on": "tflite-micro Python interpreter (64-bit host, reference kernels)",
                         "sections": {k: {"used": u, "requested": r, "count": c}
                                      for k, (u, r, c) in arena.sections.items()}}
            files.extend(write_c_files(stage, flatbuffer, name=options.name, arena=arena_doc,
                                       source=f"{'int8' if int8 else 'float32'} TFLite flatbuffer"))
    report = DeployReport(format=fmt, int8=int8, files=tuple(str(out / f.name) for f in files),
                          model_bytes=model_bytes, seconds=time.perf_counter() - start, **fields)
    (stage / "report.json").write_text(json.dumps(report.as_json(), indent=2) + "\n")
    return report
