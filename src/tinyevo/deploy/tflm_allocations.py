"""TFLite-Micro's allocation report for a ``.tflite``, taken in a child process at one generous arena size.

TFLM can crash the whole process (SIGSEGV) at some too-small arena sizes, so this never loads a model in the
calling process: :func:`measure_allocations` writes the model to a temporary file and runs
``python -m tinyevo.deploy.tflm_allocations MODEL ARENA_SIZE`` which loads it with ``ARENA_SIZE`` bytes, runs one
inference on zeros and prints the ``RecordingMicroAllocator``'s report (total, head, tail and the per-section
"requested ... bytes for N" lines) as one JSON line. No bisection: the size is generous (many times what the
model needs) and a multiple of 16, so the arena's end is 16-byte aligned as on a device (with an unaligned end
TFLM's tail also counts the few bytes it skips to align its first allocation).

This is what the tail model (:mod:`tinyevo.cost.tflm_tail`) is validated against; the smallest working arena
size (bisected) is :func:`tinyevo.deploy.tflm.measure_arena`'s ``required``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tinyevo.deploy.errors import DeployError

_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
_HEAD = re.compile(r"Arena allocation head (\d+) bytes")
_TAIL = re.compile(r"Arena allocation tail (\d+) bytes")
_SECTION = re.compile(r"'([^']+)' used (\d+) bytes with alignment overhead \(requested (\d+) bytes for (\d+)")


@dataclass(frozen=True)
class AllocationReport:
    """TFLM's arena after ``AllocateTensors`` and one ``Invoke``, at ``arena_size`` bytes (64-bit host)."""

    arena_size: int
    total: int
    head: int  # non-persistent: planned activations + scratch buffers
    tail: int  # persistent: interpreter objects, eval tensors, nodes, op data, quantisation
    sections: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # name -> (used, requested, count)


def parse_report(text: str, arena_size: int) -> AllocationReport:
    """Parse the ``RecordingMicroAllocator``'s printed report."""
    total, head, tail = (p.search(text) for p in (_TOTAL, _HEAD, _TAIL))
    if not (total and head and tail):
        raise DeployError("TFLite-Micro printed no arena report (is this the RecordingMicroAllocator build?)")
    sections = {s: (int(u), int(r), int(c)) for s, u, r, c in _SECTION.findall(text)}
    return AllocationReport(arena_size, int(total.group(1)), int(head.group(1)), int(tail.group(1)), sections)


def generous_arena(model: bytes) -> int:
    """An arena size far above what ``model`` needs: 4x its activation bytes + 2x the flatbuffer + 64 KiB,
    rounded up to 16 bytes."""
    from tinyevo.deploy.tflm import inspect_flatbuffer

    info = inspect_flatbuffer(model)
    activations = sum(t.nbytes for t in info.tensors if not t.constant)
    size = 4 * activations + 2 * len(model) + (64 << 10)
    return -(-size // 16) * 16


def measure_allocations(model: bytes, *, arena_size: int | None = None, timeout_s: float = 300.0
                        ) -> AllocationReport:
    """TFLM's allocation report for ``model``, measured in a child process (see the module docstring).

    Raises :class:`DeployError` when the child fails or crashes (with the signal), or prints no report.
    """
    size = int(arena_size) if arena_size is not None else generous_arena(model)
    import tinyevo

    env = dict(os.environ)
    root = str(Path(tinyevo.__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with tempfile.TemporaryDirectory(prefix="tinyevo-tflm-alloc-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(model)
        try:
            proc = subprocess.run([sys.executable, "-m", "tinyevo.deploy.tflm_allocations", str(path), str(size)],
                                  capture_output=True, text=True, env=env, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise DeployError(f"TFLite-Micro did not finish loading the model within {timeout_s:g} s") from exc
    if proc.returncode != 0:
        how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
        last = (proc.stderr.strip().splitlines() or [""])[-1]
        raise DeployError(f"TFLite-Micro's child process failed with a {size}-byte arena ({how}) {last}".rstrip())
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return parse_report(json.loads(line)["report"], size)
    raise DeployError("TFLite-Micro's child process printed no allocation report")


def _child(path: str, arena_size: int) -> None:  # pragma: no cover - runs in the child process
    import numpy as np

    from tinyevo.deploy.errors import require

    require("tflite_micro", purpose="running models on TFLite-Micro")
    from tflite_micro.python.tflite_micro import runtime

    model = Path(path).read_bytes()
    it = runtime.Interpreter.from_bytes(model, arena_size=arena_size)
    d = it.get_input_details(0)
    it.set_input(np.zeros(d["shape"], dtype=d["dtype"]), 0)
    it.invoke()
    sys.stdout.flush()
    sys.stderr.flush()
    # the report goes to the C-level stdout / stderr: send both to a file while it prints
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(tmp.fileno(), 1)
            os.dup2(tmp.fileno(), 2)
            it.print_allocations()
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
        tmp.seek(0)
        text = tmp.read().decode("utf-8", "replace")
    sys.stdout.write(json.dumps({"report": text}) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":  # pragma: no cover - the child process
    _child(sys.argv[1], int(sys.argv[2]))
