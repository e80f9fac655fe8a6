"""Building a generated model into a bare-metal Cortex-M firmware image (ELF) for QEMU's MPS2 boards.

The image is the model's two C files plus tinyevo's harness (``harness/``): a vector table and reset handler
(``startup.c``), semihosting calls (``semihost.c``), a ``main`` that runs the model on every input of a file and
writes the outputs to another (``main.c``), and a linker script per board. Compiler flags::

    arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -mfloat-abi=soft -O2 -std=c99 -ffunction-sections -fdata-sections
                      -nostartfiles -specs=nano.specs -Wl,--gc-sections -T mps2_an386.ld

(``-mcpu=cortex-m7`` and ``mps2_an500.ld`` for the M7). The model is integer-only, so no FPU is used; the DSP
extension (``__ARM_FEATURE_DSP``) is on for both cores. With per-op hooks (:data:`HOOKS_MACRO`) the model calls
the harness's ``tinyevo_model_op_hook`` around every kernel, so the instruction counter can attribute
instructions to ops.

Sizes come from ``arm-none-eabi-size -A``: ``flash`` = text + rodata + data (the initial values of ``.data`` are
stored in flash), ``ram`` = data + bss (the arena is a static buffer in ``.bss``; the harness's stack is reported
separately). :attr:`Firmware.model_size` is the model's object file alone (its kernels, weights and constants),
:attr:`Firmware.size` the whole linked image including the harness.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tinyevo.codegen.cortexm.toolchain import Target, Toolchain, ToolchainError, get_target, harness_dir

MODEL_HEADER = "tinyevo_model.h"
MODEL_SOURCE = "tinyevo_model.c"
MARKERS: tuple[str, ...] = ("tinyevo_cm_begin", "tinyevo_cm_op_begin", "tinyevo_cm_op_end", "tinyevo_cm_end")
"""The harness's marker functions: before an inference, before and after each op, after the inference."""
HOOKS_MACRO = "TINYEVO_MODEL_OP_HOOKS"
"""Defined when compiling the model with per-op hooks: it then calls ``tinyevo_model_op_hook(op, end)`` before
(``end = 0``) and after (``end = 1``) each kernel; the harness defines that function."""
_HARNESS_SOURCES = ("startup.c", "semihost.c", "main.c")
_MACRO = re.compile(r"^\s*#\s*define\s+(TINYEVO_MODEL_[A-Z_]+_BYTES)\s+\(?\s*(\d+)[uU]?\s*\)?", re.MULTILINE)


@dataclass(frozen=True)
class ModelSources:
    """The generated C pair (``tinyevo_model.h`` / ``tinyevo_model.c``); with ``op_hooks`` it is compiled with
    :data:`HOOKS_MACRO` defined, so instructions are counted per op as well as per inference."""

    header: str
    source: str
    op_hooks: bool = True

    def macro(self, name: str) -> int:
        """The value of ``#define TINYEVO_MODEL_<name>_BYTES`` in the header, e.g. ``macro("ARENA")``."""
        for key, value in _MACRO.findall(self.header):
            if key == f"TINYEVO_MODEL_{name}_BYTES":
                return int(value)
        raise ToolchainError(f"the model header defines no TINYEVO_MODEL_{name}_BYTES")


@dataclass(frozen=True)
class SizeReport:
    """Section sizes in bytes (``arm-none-eabi-size -A``, grouped)."""

    text: int  # code (and the vector table)
    rodata: int  # constants: weights, biases, requantisation tables
    data: int  # initialised variables (their initial values also occupy flash)
    bss: int  # zero-initialised variables: the arena and the harness's buffers
    stack: int = 0  # the harness's stack reservation (not in ``ram``)

    @property
    def flash(self) -> int:
        return self.text + self.rodata + self.data

    @property
    def ram(self) -> int:
        return self.data + self.bss


@dataclass(frozen=True)
class Firmware:
    """A linked image and what the emulator needs to run and count it."""

    elf: Path
    target: Target
    markers: tuple[tuple[str, int], ...]  # (name, address) of the MARKERS in the image (unused ones are dropped)
    input_bytes: int
    output_bytes: int
    arena_bytes: int
    size: SizeReport  # the whole image
    model_size: SizeReport  # tinyevo_model.o alone
    per_op_markers: bool  # the model calls tinyevo_cm_op between ops


def cflags(target: Target) -> list[str]:
    """The compiler flags of every translation unit (see the module docstring)."""
    return [f"-mcpu={target.cpu}", "-mthumb", "-mfloat-abi=soft", "-O2", "-std=c99", "-ffunction-sections",
            "-fdata-sections", "-Wall", "-Wextra"]


def build_firmware(sources: ModelSources, target: str | Target, workdir: str | Path, *,
                   toolchain: Toolchain | None = None, extra_cflags: Sequence[str] = ()) -> Firmware:
    """Compile ``sources`` with the harness for ``target`` in ``workdir`` (created; files there are replaced).

    Raises :class:`ToolchainError` with the compiler's message when a step fails.
    """
    tc = toolchain or Toolchain.find()
    tgt = get_target(target)
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    (work / MODEL_HEADER).write_text(sources.header, encoding="utf-8")
    (work / MODEL_SOURCE).write_text(sources.source, encoding="utf-8")
    harness = harness_dir()
    flags = [*cflags(tgt), f"-I{harness}", f"-I{work}", *extra_cflags]
    model_flags = list(flags)
    if sources.op_hooks:
        model_flags.append(f"-D{HOOKS_MACRO}")
    objects = []
    for src, fl in [(work / MODEL_SOURCE, model_flags), *((harness / s, flags) for s in _HARNESS_SOURCES)]:
        obj = work / (src.stem + ".o")
        _run([str(tc.gcc), *fl, "-c", str(src), "-o", str(obj)], f"compiling {src.name} for {tgt.name}")
        objects.append(obj)
    elf = work / f"tinyevo_{tgt.name.replace('-', '_')}.elf"
    _run([str(tc.gcc), *cflags(tgt), "-nostartfiles", "-specs=nano.specs", "-Wl,--gc-sections",
          f"-T{harness / tgt.linker_script}", *map(str, objects), "-o", str(elf)], f"linking for {tgt.name}")
    symbols = symbol_addresses(elf, tc)
    markers = tuple((m, symbols[m]) for m in MARKERS if m in symbols)
    model_obj = objects[0]
    per_op = sources.op_hooks and "tinyevo_model_op_hook" in _undefined(model_obj, tc)
    return Firmware(
        elf=elf, target=tgt, markers=markers, input_bytes=sources.macro("INPUT"),
        output_bytes=sources.macro("OUTPUT"), arena_bytes=sources.macro("ARENA"),
        size=section_sizes(elf, tc), model_size=section_sizes(model_obj, tc), per_op_markers=per_op,
    )


def section_sizes(path: str | Path, toolchain: Toolchain | None = None) -> SizeReport:
    """:class:`SizeReport` of an ELF image or object file from ``arm-none-eabi-size -A``."""
    tc = toolchain or Toolchain.find()
    out = _run([str(tc.size), "-A", str(path)], f"reading the sections of {Path(path).name}")
    groups = {"text": 0, "rodata": 0, "data": 0, "bss": 0, "stack": 0}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2 or not parts[1].isdigit() or not parts[0].startswith("."):
            continue
        name, size = parts[0], int(parts[1])
        group = _section_group(name)
        if group:
            groups[group] += size
    return SizeReport(**groups)


def _section_group(name: str) -> str | None:
    if name.startswith((".text", ".isr_vector", ".ARM.exidx", ".ARM.extab")):
        return "text"
    if name.startswith(".rodata"):
        return "rodata"
    if name.startswith(".data"):
        return "data"
    if name.startswith((".bss", "COMMON")):
        return "bss"
    if name == ".stack":
        return "stack"
    return None  # debug info, comments, attributes: not loaded


def symbol_addresses(elf: str | Path, toolchain: Toolchain | None = None) -> dict[str, int]:
    """Defined symbols of ``elf`` -> address (``arm-none-eabi-nm``; the Thumb bit of functions cleared)."""
    tc = toolchain or Toolchain.find()
    out = _run([str(tc.nm), str(elf)], f"reading the symbols of {Path(elf).name}")
    found: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3:
            found[parts[2]] = int(parts[0], 16) & ~1
    return found


def _undefined(obj: Path, tc: Toolchain) -> set[str]:
    out = _run([str(tc.nm), "-u", str(obj)], f"reading the symbols of {obj.name}")
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


def _run(cmd: list[str], what: str) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ToolchainError(f"{what}: cannot run {cmd[0]}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip()
        raise ToolchainError(f"{what} failed:\n{message[-4000:]}")
    return done.stdout


__all__ = ["HOOKS_MACRO", "MARKERS", "MODEL_HEADER", "MODEL_SOURCE", "Firmware", "ModelSources", "SizeReport", "build_firmware",
           "cflags", "section_sizes", "symbol_addresses"]
