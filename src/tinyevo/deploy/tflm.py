"""Run a ``.tflite`` on the real TFLite-Micro interpreter (PyPI ``tflite-micro``) and read what it allocates.

TFLM's ``RecordingMicroAllocator`` prints its arena usage ("Arena allocation total N bytes", head / tail and
per-section lines) to the C-level stderr; :func:`measure_arena` captures that file descriptor and parses it.
TFLM may crash the process instead of raising when an arena is slightly too small, so every load at a size that is
not known to work runs in a child process (:func:`probe_arena`, :mod:`tinyevo.deploy._tflm_probe`); in-process
runs (:func:`run_tflm`) only use sizes a child has run the model with.
The *head* is the non-persistent part: the activation buffers laid out by the memory planner plus kernel scratch
buffers. The *tail* holds persistent data: TfLiteEvalTensor structs, per-op user data (quantisation multipliers
and shifts, per-channel), node/registration structs. Tail sizes depend on the host's pointer width (the Python
interpreter is 64-bit; a Cortex-M is 32-bit), the head does not.

:func:`inspect_flatbuffer` lists the operators and tensors of a model (op names, activation tensor sizes,
constant bytes) so that the cost model can be compared op by op.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyevo.deploy.errors import DeployError, require

log = logging.getLogger(__name__)

_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
_HEAD = re.compile(r"Arena allocation head (\d+) bytes")
_TAIL = re.compile(r"Arena allocation tail (\d+) bytes")
_SECTION = re.compile(r"'([^']+)' used (\d+) bytes with alignment overhead \(requested (\d+) bytes for (\d+)")


def _runtime():
    require("tflite_micro", purpose="running models on TFLite-Micro")
    from tflite_micro.python.tflite_micro import runtime

    return runtime


@contextlib.contextmanager
def _captured_fds(*fds: int) -> Iterator[list[str]]:
    """Redirect C-level file descriptors to a temp file; the list receives the text on exit."""
    out: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = [os.dup(fd) for fd in fds]
        try:
            for fd in fds:
                os.dup2(tmp.fileno(), fd)
            yield out
        finally:
            for fd, s in zip(fds, saved):
                os.dup2(s, fd)
                os.close(s)
            tmp.seek(0)
            out.append(tmp.read().decode("utf-8", "replace"))


@dataclass(frozen=True)
class ArenaReport:
    """TFLM's tensor arena, in bytes.

    ``total`` / ``head`` / ``tail`` are what the RecordingMicroAllocator reports after allocation.
    ``required`` is the smallest ``arena_size`` with which the interpreter actually loads and runs the model
    (bisected in child processes; a size that was seen to work): it can exceed ``total`` because kernels' Prepare() allocates temporary TfLiteTensors (and their
    per-channel quantisation arrays) between head and tail, which are freed before the report is taken.
    """

    total: int
    head: int  # non-persistent: planned activations + scratch buffers
    tail: int  # persistent: eval tensors, per-op data, node structs, quantisation params
    required: int  # smallest working arena_size
    sections: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # name -> (used, requested, count)
    measured_with: int = 0  # the (generous) arena_size the report was taken with: known to load and run


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int
    constant: bool
    quant_channels: int = 0  # number of (scale, zero point) pairs in its quantisation table


@dataclass(frozen=True)
class OpInfo:
    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class FlatbufferInfo:
    """Structure of a ``.tflite``: ops in execution order, tensors, constant (weight) bytes."""

    size_bytes: int
    ops: tuple[OpInfo, ...]
    tensors: tuple[TensorInfo, ...]
    constant_bytes: int  # bytes of all constant buffers (weights, biases, shape operands)
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def op_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.ops)


_DTYPE = {0: ("float32", 4), 1: ("float16", 2), 2: ("int32", 4), 3: ("uint8", 1), 4: ("int64", 8),
          7: ("int16", 2), 9: ("int8", 1), 10: ("float64", 8)}


def inspect_flatbuffer(model: bytes) -> FlatbufferInfo:
    """Parse a ``.tflite`` (first subgraph) with the schema shipped in ``tflite-micro``."""
    runtime = _runtime()
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    try:
        obj = runtime.convert_bytearray_to_object(bytearray(model))
    except Exception as exc:
        raise DeployError(f"not a valid .tflite flatbuffer ({exc})") from exc
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    if not obj.subgraphs:
        raise DeployError("the .tflite has no subgraph")
    sg = obj.subgraphs[0]
    tensors = []
    for t in sg.tensors:
        dtype, size = _DTYPE.get(int(t.type), (f"type{t.type}", 1))
        shape = tuple(int(v) for v in (t.shape if t.shape is not None else ()))
        buf = obj.buffers[t.buffer] if obj.buffers is not None and t.buffer < len(obj.buffers) else None
        const = buf is not None and (buf.data is not None and len(buf.data) > 0 or (buf.size or 0) > 0)
        nbytes = int(np.prod(shape, dtype=np.int64)) * size if shape else size
        name = t.name.decode() if isinstance(t.name, bytes) else (t.name or "")
        q = t.quantization
        channels = len(q.scale) if q is not None and q.scale is not None else 0
        tensors.append(TensorInfo(name, shape, dtype, nbytes, bool(const), channels))
    ops = []
    for op in sg.operators or ():
        code = runtime.get_builtin_code_from_operator_code(obj.operatorCodes[op.opcodeIndex])
        ops.append(OpInfo(names.get(code, str(code)),
                          tuple(int(i) for i in (op.inputs if op.inputs is not None else ())),
                          tuple(int(i) for i in (op.outputs if op.outputs is not None else ()))))
    const_bytes = sum(len(b.data) if b.data is not None else int(b.size or 0) for b in obj.buffers or ())
    return FlatbufferInfo(
        size_bytes=len(model), ops=tuple(ops), tensors=tuple(tensors), constant_bytes=int(const_bytes),
        inputs=tuple(int(i) for i in sg.inputs), outputs=tuple(int(i) for i in sg.outputs),
    )


def _interpreter(model: bytes, arena_size: int):
    """An in-process interpreter; only for sizes :func:`_ensure_loads` has confirmed in a child process."""
    runtime = _runtime()
    with _captured_fds(2) as text:
        try:
            return runtime.Interpreter.from_bytes(model, arena_size=int(arena_size))
        except (RuntimeError, ValueError) as exc:
            err = exc
    log_text = text[0].strip().splitlines()
    detail = log_text[-1] if log_text else str(err)
    raise DeployError(f"TFLite-Micro could not load the model with a {arena_size}-byte arena: {detail}")


def _default_arena(model: bytes) -> int:
    info = inspect_flatbuffer(model)
    activations = sum(t.nbytes for t in info.tensors if not t.constant)
    return 4 * activations + 2 * len(model) + (64 << 10)


# --- probing in a child process -------------------------------------------------------------------------------
# TFLM can crash the process (SIGSEGV) instead of raising when the arena is a few bytes too small (for the default
# digits model, sizes 3,072-3,087 B crash while 3,088 B works and smaller sizes raise). So every load at a size not
# known to work runs in a child (:mod:`tinyevo.deploy._tflm_probe`); a size that crashed counts as "does not fit"
# and the bisection goes on in a fresh child. Sizes that loaded and ran in a child are remembered per model, and
# only those are used in-process (:func:`run_tflm`).

_PROBE_COMMAND: tuple[str, ...] = (sys.executable, "-m", "tinyevo.deploy._tflm_probe")
_MAX_CHILDREN = 64  # crashes tolerated per bisection (each costs one child start, ~0.3 s)
_CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGFPE, signal.SIGILL}
_CONFIRMED: set[tuple[str, int]] = set()  # (sha256 of the model, arena size) that loaded and ran in a child


def _digest(model: bytes) -> str:
    return hashlib.sha256(model).hexdigest()


def _confirm(model: bytes, size: int) -> None:
    if len(_CONFIRMED) > 4096:
        _CONFIRMED.clear()
    _CONFIRMED.add((_digest(model), int(size)))


@dataclass(frozen=True)
class ProbeResult:
    """What the probe children found: ``fits`` per size tried (a crash counts as ``False``; those sizes are in
    ``crashed``), the smallest working size (``None`` when ``upper`` itself does not work), TFLM's allocation report
    (with ``report=True``), how many children ran, and the last error TFLM gave for a size that did not fit."""

    required: int | None
    fits: dict[int, bool]
    crashed: tuple[int, ...]
    report: str | None
    children: int
    detail: str


def _child_env() -> dict[str, str]:
    """The environment of a probe child: this process's, with the directory tinyevo is imported from first on
    ``PYTHONPATH`` (so the child imports the same tinyevo)."""
    import tinyevo

    env = dict(os.environ)
    root = str(Path(tinyevo.__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def probe_arena(model: bytes, *, lower: int, upper: int, upper_fits: bool = False, report: bool = False,
                command: Sequence[str] | None = None) -> ProbeResult:
    """Bisect, in child processes, the smallest arena size in ``[lower, upper]`` with which TFLM loads and runs
    ``model`` (one inference on zeros), surviving crashes of TFLM.

    ``report``: first load with ``upper`` bytes and return TFLM's allocation report. ``command`` replaces the
    child's command line (tests run a fake probe); the model path and the options are appended to it.
    """
    lo, hi = max(1, min(lower, upper)), int(upper)
    fits: dict[int, bool] = {}
    crashed: list[int] = []
    report_text: str | None = None
    detail = ""
    want_report = report
    cmd = list(command) if command is not None else list(_PROBE_COMMAND)
    env = _child_env()
    with tempfile.TemporaryDirectory(prefix="tinyevo-tflm-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(model)
        for children in range(1, _MAX_CHILDREN + 1):
            args = [str(path), "--lower", str(lo), "--upper", str(hi)]
            if upper_fits:
                args.append("--upper-fits")
            if want_report:
                args.append("--report")
            proc = subprocess.run(cmd + args, capture_output=True, text=True, env=env, check=False)
            pending: int | None = None
            for line in proc.stdout.splitlines():
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if "try" in event:
                    pending = int(event["try"])
                elif "size" in event:
                    n, ok, pending = int(event["size"]), bool(event["fits"]), None
                    fits[n] = ok
                    if ok:
                        hi, upper_fits = n, True
                        _confirm(model, n)
                    else:
                        detail = str(event.get("detail") or detail)
                        if n >= hi:  # the upper bound itself does not work
                            return ProbeResult(None, fits, tuple(crashed), report_text, children, detail)
                        lo = n + 1
                elif "report" in event:
                    report_text, want_report = str(event["report"]), False
                elif "required" in event:
                    return ProbeResult(int(event["required"]), fits, tuple(crashed), report_text, children, detail)
            stderr_tail = (proc.stderr.strip().splitlines() or [""])[-1]
            sig = -proc.returncode if proc.returncode < 0 else 0
            if pending is None or sig not in {int(s) for s in _CRASH_SIGNALS}:
                why = f"was killed by signal {sig}" if sig else f"exited with status {proc.returncode}"
                raise DeployError(f"the TFLite-Micro probe process {why}" + (f": {stderr_tail}" if stderr_tail
                                                                              else ""))
            log.debug("TFLite-Micro crashed (signal %d) with a %d-byte arena; counted as too small", sig, pending)
            fits[pending] = False
            crashed.append(pending)
            detail = f"TFLite-Micro crashed (signal {sig})"
            if pending >= hi:
                return ProbeResult(None, fits, tuple(crashed), report_text, children, detail)
            lo = pending + 1
    raise DeployError(f"TFLite-Micro crashed {len(crashed)} times while its arena was measured; giving up")


def _ensure_loads(model: bytes, arena_size: int) -> None:
    """Raise :class:`DeployError` unless ``model`` loads and runs with ``arena_size`` bytes, checked in a child
    process unless a child already confirmed it (an in-process load at a bad size may crash tinyevo)."""
    if (_digest(model), int(arena_size)) in _CONFIRMED:
        return
    result = probe_arena(model, lower=arena_size, upper=arena_size)
    if result.required is None:
        raise DeployError(f"TFLite-Micro could not load the model with a {arena_size}-byte arena: {result.detail}")


def measure_arena(model: bytes, *, arena_size: int | None = None) -> ArenaReport:
    """Load ``model`` in TFLM with a generous arena (``arena_size``, default :func:`_default_arena`), run one
    inference on zeros and return the allocator's report with the bisected smallest working arena.

    Every load runs in a child process (:func:`probe_arena`), so a crash of TFLM cannot take the caller down.
    """
    size = int(arena_size or _default_arena(model))
    result = probe_arena(model, lower=1, upper=size, report=True)
    if result.report is None or result.required is None:
        raise DeployError(f"TFLite-Micro could not load the model with a {size}-byte arena: {result.detail}")
    total, head, tail, sections = parse_allocations(result.report)
    return ArenaReport(total, head, tail, result.required, sections, measured_with=size)


def parse_allocations(text: str) -> tuple[int, int, int, dict[str, tuple[int, int, int]]]:
    """``(total, head, tail, sections)`` from the ``RecordingMicroAllocator``'s printed report; ``sections`` maps a
    section's name to ``(used, requested, count)``."""
    total, head, tail = (p.search(text) for p in (_TOTAL, _HEAD, _TAIL))
    if not (total and head and tail):
        raise DeployError("TFLite-Micro printed no arena report (is this the RecordingMicroAllocator build?)")
    sections = {s: (int(u), int(r), int(c)) for s, u, r, c in _SECTION.findall(text)}
    return int(total.group(1)), int(head.group(1)), int(tail.group(1)), sections


def min_arena_size(model: bytes, *, upper: int | None = None, lower: int = 1) -> int:
    """The smallest ``arena_size`` in ``[lower, upper]`` with which TFLM loads and runs ``model`` (bisection in
    child processes, :func:`probe_arena`); the result is a size that was seen to work."""
    hi = int(upper or _default_arena(model))
    result = probe_arena(model, lower=lower, upper=hi)
    if result.required is None:
        raise DeployError(f"TFLite-Micro cannot run the model even with a {hi}-byte arena: {result.detail}")
    return result.required


@dataclass(frozen=True)
class TflmRun:
    """Predictions of the ``.tflite`` on TFLM, with the int8 logits (dequantised)."""

    predictions: np.ndarray
    logits: np.ndarray


def run_tflm(model: bytes, x_nchw: np.ndarray, *, arena_size: int | None = None) -> TflmRun:
    """Run every row of ``x_nchw`` (float, channel-first) through TFLM, one inference per row.

    Inputs are quantised with the model's input scale and zero point exactly as the PT2E program does
    (``round_half_even(x * (1 / scale)) + zero_point``, clamped), so both runtimes see the same int8 input;
    outputs are dequantised.

    ``arena_size`` (default :func:`_default_arena`) is first checked in a child process unless a child already
    ran the model with it (e.g. :attr:`ArenaReport.measured_with` after :func:`measure_arena`): a size that is too
    small raises :class:`DeployError` instead of crashing.
    """
    size = int(arena_size or _default_arena(model))
    _ensure_loads(model, size)
    it = _interpreter(model, size)
    d_in = it.get_input_details(0)
    d_out = it.get_output_details(0)
    shape = tuple(int(v) for v in d_in["shape"])
    x = np.transpose(np.asarray(x_nchw, dtype=np.float32), (0, 2, 3, 1))
    if x.shape[1:] != shape[1:]:
        raise DeployError(f"input rows have shape {x.shape[1:]} (NHWC) but the model expects {shape[1:]}")
    in_dtype = np.dtype(d_in["dtype"])
    if in_dtype.kind == "i":
        scale = float(d_in["quantization_parameters"]["scales"][0])
        zp = int(d_in["quantization_parameters"]["zero_points"][0])
        info = np.iinfo(in_dtype)
        q = np.clip(np.rint(x * np.float32(1.0 / scale)) + zp, info.min, info.max)
        x = q.astype(in_dtype)
    out_q = d_out["quantization_parameters"]
    out_scale = float(out_q["scales"][0]) if len(out_q["scales"]) else 1.0
    out_zp = int(out_q["zero_points"][0]) if len(out_q["zero_points"]) else 0
    logits = []
    for row in x:
        it.set_input(row[None], 0)
        it.invoke()
        out = np.asarray(it.get_output(0)).reshape(-1)
        logits.append((out.astype(np.float32) - out_zp) * out_scale)
    arr = np.stack(logits) if logits else np.zeros((0, 0), np.float32)
    preds = arr.argmax(1) if len(arr) else np.zeros(0, dtype=np.int64)
    return TflmRun(preds, arr)
