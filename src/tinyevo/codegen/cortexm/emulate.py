"""Running a firmware image on QEMU (``qemu-system-arm``) and counting the instructions it executes.

The command (one process per call; the firmware reads ``input.bin`` and writes ``output.bin`` in a temporary
directory through semihosting)::

    qemu-system-arm -M mps2-an386 -nographic -monitor none -serial none
                    -semihosting-config enable=on,target=native -kernel tinyevo_cortex_m4.elf
                    -plugin libinsncount.so,marker=0x...,marker=0x...,marker=0x...,out=counts.txt

Instruction counts come from a small TCG plugin (``harness/insn_count.c``) that tinyevo compiles with the host C
compiler the first time it is needed (into the work directory given, or a temporary one). It counts every guest
instruction executed and, at each execution of a marker function of the harness (begin / per-op / end of an
inference), records the count so far. QEMU's M-profile emulation has no cycle counter (DWT ``CYCCNT``) to read,
and ``-icount`` only paces virtual time; the plugin's counts are exact and deterministic (the same image and
inputs give the same counts on every run).

Per-op counts: a model built with op hooks calls ``tinyevo_model_op_hook(i, 0)`` right before kernel ``i`` and
``tinyevo_model_op_hook(i, 1)`` right after it; the harness turns these into two marker functions, and the
instructions between the two marks are the kernel's (plus the ~5 instructions of one hook call and return).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyevo.codegen.cortexm.firmware import MARKERS, Firmware
from tinyevo.codegen.cortexm.toolchain import Toolchain, ToolchainError, harness_dir

_EXIT_MEANINGS = {2: "cannot open input.bin / output.bin", 3: "short read of an input", 4: "the model returned an error",
                  5: "short write of an output"}
_BEGIN, _OP_BEGIN, _OP_END, _END = range(4)


@dataclass(frozen=True)
class Inference:
    """Instruction counts of one inference (one ``tinyevo_model_invoke`` call)."""

    instructions: int  # from the begin marker to the end marker (the call and its return included)
    ops: tuple[int, ...]  # per kernel, in execution order (empty when the model was built without op hooks)

    @property
    def glue(self) -> int:
        """Instructions outside the kernels: the call, input / output copies, the hook calls between kernels."""
        return self.instructions - sum(self.ops)


@dataclass(frozen=True)
class Emulation:
    """Result of running a firmware on a batch of inputs."""

    outputs: np.ndarray  # int8, shape (inputs, output bytes)
    inferences: tuple[Inference, ...]
    total_instructions: int  # the whole run: start-up, semihosting file I/O, every inference

    @property
    def instructions(self) -> int:
        """Instructions of the first inference (the figure a profile reports)."""
        return self.inferences[0].instructions


def plugin_path(workdir: str | Path, toolchain: Toolchain | None = None) -> Path:
    """The instruction-counting plugin, compiled into ``workdir`` unless a build of the same source is there."""
    tc = toolchain or Toolchain.find()
    source = harness_dir() / "insn_count.c"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    lib = Path(workdir) / f"libinsncount-{digest}.so"
    if not lib.exists():
        Path(workdir).mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="libinsncount-", suffix=".so.tmp", dir=workdir)
        os.close(fd)
        tmp = Path(name)  # a unique name: concurrent builds never write the same file
        done = subprocess.run([str(tc.host_cc), "-shared", "-fPIC", "-O2", "-std=c99", "-Wall", "-Wextra",
                               str(source), "-o", str(tmp)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise ToolchainError(f"building the QEMU plugin failed:\n{done.stderr.strip()[-4000:]}")
        tmp.replace(lib)
    return lib


def emulate(firmware: Firmware, inputs: np.ndarray, *, count: bool = True, timeout_s: float = 600.0,
            toolchain: Toolchain | None = None, plugin_dir: str | Path | None = None) -> Emulation:
    """Run ``firmware`` on QEMU on each row of ``inputs`` (int8, ``(n, input_bytes)`` or one input of
    ``input_bytes``). With ``count`` the instructions are counted (see the module docstring).
    """
    tc = toolchain or Toolchain.find()
    x = np.ascontiguousarray(np.asarray(inputs, dtype=np.int8).reshape(-1, firmware.input_bytes))
    if len(x) == 0:
        raise ToolchainError("emulate needs at least one input")
    with tempfile.TemporaryDirectory(prefix="tinyevo-qemu-") as tmp:
        work = Path(tmp)
        (work / "input.bin").write_bytes(x.tobytes())
        cmd = [str(tc.qemu), "-M", firmware.target.machine, "-nographic", "-monitor", "none", "-serial", "none",
               "-semihosting-config", "enable=on,target=native", "-kernel", str(firmware.elf.resolve())]
        counts = work / "counts.txt"
        if count:
            lib = plugin_path(plugin_dir or work, tc)
            args = ",".join([str(lib), *(f"marker={a:#x}" for _, a in firmware.markers), f"out={counts}"])
            cmd += ["-plugin", args]
        try:
            done = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise ToolchainError(f"the emulated {firmware.target.name} did not finish in {timeout_s:.0f} s") from None
        if done.returncode != 0:
            code = done.returncode
            meaning = _EXIT_MEANINGS.get(code) or (f"fault (exception {code - 100})" if code >= 100 else "error")
            raise ToolchainError(f"the emulated {firmware.target.name} exited with {code}: {meaning}\n"
                                 f"{(done.stderr + done.stdout).strip()[-2000:]}")
        raw = (work / "output.bin").read_bytes()
        if len(raw) != len(x) * firmware.output_bytes:
            raise ToolchainError(f"the firmware wrote {len(raw)} output bytes, expected "
                                 f"{len(x)} x {firmware.output_bytes}")
        outputs = np.frombuffer(raw, dtype=np.int8).reshape(len(x), firmware.output_bytes).copy()
        if not count:
            return Emulation(outputs=outputs, inferences=(), total_instructions=0)
        total, marks = _read_counts(counts)
        kinds = [MARKERS.index(name) for name, _ in firmware.markers]
        marks = [(kinds[k], c) for k, c in marks]
    return Emulation(outputs=outputs, inferences=_split(marks, len(x), firmware), total_instructions=total)


def _read_counts(path: Path) -> tuple[int, list[tuple[int, int]]]:
    if not path.exists():
        raise ToolchainError("the instruction-counting plugin wrote no counts (was it loaded?)")
    total = -1
    marks: list[tuple[int, int]] = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts[0] == "total":
            total = int(parts[1])
        elif parts[0] == "mark":
            marks.append((int(parts[1]), int(parts[2])))
        elif parts[0] == "overflow":
            raise ToolchainError("the instruction-counting plugin ran out of memory for markers")
    return total, marks


def _split(marks: list[tuple[int, int]], n: int, firmware: Firmware) -> tuple[Inference, ...]:
    """Per-inference counts from the marker sequence ``begin (op_begin op_end)* end``, ``n`` times.

    A mark is the count of instructions executed before the marker function's first instruction.
    """
    pos = 0

    def take(kind: int) -> int:
        nonlocal pos
        got = marks[pos] if pos < len(marks) else None
        if got is None or got[0] != kind:
            raise ToolchainError(f"instruction marks out of order: expected {MARKERS[kind]}, got "
                                 f"{MARKERS[got[0]] if got else 'the end of the list'}")
        pos += 1
        return got[1]

    out = []
    for _ in range(n):
        start = take(_BEGIN)
        ops = []
        while pos < len(marks) and marks[pos][0] == _OP_BEGIN:
            begin = take(_OP_BEGIN)
            ops.append(take(_OP_END) - begin)
        out.append(Inference(instructions=take(_END) - start, ops=tuple(ops)))
    if firmware.per_op_markers and any(not inf.ops for inf in out):
        raise ToolchainError("the model was built with op hooks but no op marker was executed")
    return tuple(out)


__all__ = ["MARKERS", "Emulation", "Inference", "emulate", "plugin_path"]
