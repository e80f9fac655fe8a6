"""Picklable task functions for executor tests (importable by spawned workers through sys.path)."""

from __future__ import annotations

import os
from pathlib import Path


def square(x: int) -> int:
    if x < 0:
        raise ValueError(f"negative: {x}")
    return x * x


def crash_once(marker: str) -> str:
    """Kills its worker process the first time (no marker file yet), succeeds when retried."""
    path = Path(marker)
    if not path.exists():
        path.write_text("crashed")
        os._exit(17)
    return "second try"


def always_crash(_: object) -> None:
    os._exit(17)


def out_of_memory(n: int) -> bytes:
    raise MemoryError(f"cannot allocate {n} bytes")
