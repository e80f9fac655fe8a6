"""Run a ``.tflite`` on the real TFLite-Micro interpreter (PyPI ``tflite-micro``) and read what it allocates.

TFLM's ``RecordingMicroAllocator`` prints its arena usage ("Arena allocation total N bytes", head / tail and
per-section lines) to the C-level stderr; :func:`measure_arena` captures that file descriptor and parses it.
The *head* is the non-persistent part: the activation buffers laid out by the memory planner plus kernel scratch
buffers. The *tail* holds persistent data: TfLiteEvalTensor structs, per-op user data (quantisation multipliers
and shifts, per-channel), node/registration structs. Tail sizes depend on the host's pointer width (the Python
interpreter is 64-bit; a Cortex-M is 32-bit), the head does not.

:func:`inspect_flatbuffer` lists the operators and tensors of a model (op names, activation tensor sizes,
constant bytes) so that the cost model can be compared op by op.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from tinyevo.deploy.errors import DeployError, require

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
    (bisected): it can exceed ``total`` because kernels' Prepare() allocates temporary TfLiteTensors (and their
    per-channel quantisation arrays) between head and tail, which are freed before the report is taken.
    """

    total: int
    head: int  # non-persistent: planned activations + scratch buffers
    tail: int  # persistent: eval tensors, per-op data, node structs, quantisation params
    required: int  # smallest working arena_size
    sections: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # name -> (used, requested, count)


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


def measure_arena(model: bytes, *, arena_size: int | None = None) -> ArenaReport:
    """Load ``model`` in TFLM, run one inference on zeros, and return the allocator's report."""
    it = _interpreter(model, arena_size or _default_arena(model))
    d = it.get_input_details(0)
    it.set_input(np.zeros(d["shape"], dtype=d["dtype"]), 0)
    it.invoke()
    with _captured_fds(1, 2) as text:
        it.print_allocations()
    log_text = text[0]
    m = _TOTAL.search(log_text)
    if not m:
        raise DeployError("TFLite-Micro printed no arena report (is this the RecordingMicroAllocator build?)")
    head = _HEAD.search(log_text)
    tail = _TAIL.search(log_text)
    sections = {s: (int(u), int(r), int(c)) for s, u, r, c in _SECTION.findall(log_text)}
    total = int(m.group(1))
    required = min_arena_size(model, upper=max(arena_size or 0, _default_arena(model), 2 * total + 4096),
                              lower=max(1, total // 2))
    return ArenaReport(total, int(head.group(1)) if head else -1, int(tail.group(1)) if tail else -1, required,
                       sections)


def min_arena_size(model: bytes, *, upper: int | None = None, lower: int = 1) -> int:
    """The smallest ``arena_size`` in ``[lower, upper]`` with which TFLM loads and runs ``model`` (bisection)."""
    runtime = _runtime()

    def fits(n: int) -> bool:
        with _captured_fds(2):
            try:
                it = runtime.Interpreter.from_bytes(model, arena_size=n)
                d = it.get_input_details(0)
                it.set_input(np.zeros(d["shape"], dtype=d["dtype"]), 0)
                it.invoke()
                return True
            except RuntimeError:
                return False

    hi = upper or _default_arena(model)
    if not fits(hi):
        raise DeployError(f"TFLite-Micro cannot run the model even with a {hi}-byte arena")
    lo = max(1, min(lower, hi))
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


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
    """
    it = _interpreter(model, arena_size or _default_arena(model))
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
