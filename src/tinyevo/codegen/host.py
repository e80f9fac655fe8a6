"""Build the generated C for this machine with the system C compiler and run it; run the same ``.tflite`` on
TFLite-Micro (in a child process) and compare the int8 output bytes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyevo.codegen.errors import CodegenError
from tinyevo.codegen.generate import GeneratedModel

CFLAGS: tuple[str, ...] = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2")
GUARD_BYTES = 64  # bytes after the arena that the host runner fills with a pattern and checks after each run

_MAIN = r"""/* host runner: int8 inputs on stdin, outputs on stdout; the arena is followed by guard bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "@P@.h"

#define GUARD @G@
static uint8_t arena_store[@M@_ARENA_BYTES + GUARD + 4];

int main(void)
{
    int8_t in[@M@_INPUT_BYTES];
    int8_t out[@M@_OUTPUT_BYTES];
    uint8_t *arena = arena_store;
    int i;
    memset(arena_store, 0xA5, sizeof(arena_store));
    while (fread(in, 1, sizeof(in), stdin) == sizeof(in)) {
        if (@P@_invoke(in, out, arena) != 0) {
            return 2;
        }
        for (i = 0; i < GUARD; ++i) {
            if (arena[@M@_ARENA_BYTES + i] != 0xA5) {
                fprintf(stderr, "arena overflow at byte %d past the arena\n", i);
                return 3;
            }
        }
        if (fwrite(out, 1, sizeof(out), stdout) != sizeof(out)) {
            return 4;
        }
    }
    return 0;
}
"""


def find_cc() -> str | None:
    """The C compiler: ``$CC`` or ``cc`` / ``gcc`` / ``clang`` on the ``PATH``."""
    env = os.environ.get("CC")
    if env and shutil.which(env):
        return shutil.which(env)
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass(frozen=True)
class HostBuild:
    """An executable of the generated model for this machine (stdin: int8 inputs; stdout: int8 outputs)."""

    executable: Path
    model: GeneratedModel

    def run(self, x_int8: np.ndarray) -> np.ndarray:
        """Outputs ``[N, OUTPUT_BYTES]`` for inputs ``[N, ...]`` (int8, NHWC rows)."""
        x = np.ascontiguousarray(np.asarray(x_int8, dtype=np.int8).reshape(len(x_int8), -1))
        if x.shape[1] != self.model.input_bytes:
            raise CodegenError(f"inputs have {x.shape[1]} bytes per row; the model takes "
                               f"{self.model.input_bytes}")
        proc = subprocess.run([str(self.executable)], input=x.tobytes(), capture_output=True, check=False)
        if proc.returncode != 0:
            raise CodegenError(f"the native model exited with status {proc.returncode}: "
                               f"{proc.stderr.decode(errors='replace').strip()[-500:]}")
        out = np.frombuffer(proc.stdout, dtype=np.int8)
        if out.size != len(x) * self.model.output_bytes:
            raise CodegenError("the native model wrote a short output")
        return out.reshape(len(x), self.model.output_bytes)


def build_host(model: GeneratedModel, work_dir: str | Path, *, cc: str | None = None,
               extra_flags: tuple[str, ...] = ()) -> HostBuild:
    """Compile ``model`` with ``cc`` (default :func:`find_cc`) and :data:`CFLAGS` (warnings are errors) plus a
    small runner into ``work_dir``. Raises :class:`CodegenError` with the compiler's message on failure."""
    compiler = cc or find_cc()
    if compiler is None:
        raise CodegenError("no C compiler found (set CC or install cc / gcc / clang)")
    work = Path(work_dir)
    h, c = model.write(work)
    main = work / f"{model.prefix}_main.c"
    main.write_text(_MAIN.replace("@P@", model.prefix).replace("@M@", model.prefix.upper())
                    .replace("@G@", str(GUARD_BYTES)))
    exe = work / f"{model.prefix}_host"
    cmd = [compiler, *CFLAGS, *extra_flags, "-o", str(exe), str(c), str(main)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise CodegenError(f"compiling the native model failed: {proc.stderr.strip()[-2000:]}")
    return HostBuild(exe, model)


def quantize_input(x_nchw: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Float channel-first rows -> int8 NHWC rows, quantised exactly as :func:`tinyevo.deploy.tflm.run_tflm`
    does it."""
    x = np.transpose(np.asarray(x_nchw, dtype=np.float32), (0, 2, 3, 1))
    q = np.clip(np.rint(x * np.float32(1.0 / scale)) + zero_point, -128, 127)
    return q.astype(np.int8)


def tflm_outputs(model: bytes, x_int8: np.ndarray, *, arena_size: int | None = None) -> np.ndarray:
    """TFLite-Micro's int8 outputs ``[N, OUTPUT_BYTES]`` for int8 NHWC inputs ``[N, ...]``, computed in a
    child
    process (:mod:`tinyevo.codegen._tflm_child`) so that a crash of TFLM cannot take this process down."""
    from tinyevo.deploy.tflm import _child_env, _default_arena

    size = int(arena_size or _default_arena(model))
    with tempfile.TemporaryDirectory(prefix="tinyevo-codegen-") as tmp:
        mpath, xpath, ypath = Path(tmp) / "m.tflite", Path(tmp) / "x.npy", Path(tmp) / "y.npy"
        mpath.write_bytes(model)
        np.save(xpath, np.asarray(x_int8, dtype=np.int8))
        cmd = [sys.executable, "-m", "tinyevo.codegen._tflm_child", str(mpath), str(xpath), str(ypath),
               "--arena", str(size)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=_child_env(), check=False)
        if proc.returncode != 0 or not ypath.exists():
            tail = (proc.stderr.strip().splitlines() or [""])[-1]
            raise CodegenError(f"TFLite-Micro (child process) failed with status {proc.returncode}: {tail}")
        return np.load(ypath)


@dataclass(frozen=True)
class BitExact:
    """Native vs TFLite-Micro on the same int8 inputs: rows compared, rows whose output bytes all match, the
    largest absolute difference of any output byte."""

    rows: int
    equal_rows: int
    max_abs_diff: int

    @property
    def exact(self) -> bool:
        return self.rows > 0 and self.equal_rows == self.rows

    def as_json(self) -> dict[str, object]:
        return {"rows": self.rows, "equal_rows": self.equal_rows, "max_abs_diff": self.max_abs_diff,
                "bit_exact": self.exact}


def compare(native: np.ndarray, tflm: np.ndarray) -> BitExact:
    a = np.asarray(native, dtype=np.int32).reshape(len(native), -1)
    b = np.asarray(tflm, dtype=np.int32).reshape(len(tflm), -1)
    if a.shape != b.shape:
        raise CodegenError(f"output shapes differ: native {a.shape}, TFLM {b.shape}")
    equal = int(np.sum(np.all(a == b, axis=1)))
    return BitExact(len(a), equal, int(np.max(np.abs(a - b))) if a.size else 0)


def check_bit_exact(model: bytes, generated: GeneratedModel, x_int8: np.ndarray, *,
                    work_dir: str | Path | None = None, cc: str | None = None) -> BitExact:
    """Build ``generated`` for the host, run it and TFLM (child process) on ``x_int8`` and compare."""
    with tempfile.TemporaryDirectory(prefix="tinyevo-native-") as tmp:
        build = build_host(generated, work_dir or tmp, cc=cc)
        native = build.run(x_int8)
    return compare(native, tflm_outputs(model, x_int8))
