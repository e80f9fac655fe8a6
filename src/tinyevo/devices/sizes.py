"""Byte sizes: ``parse_size("64KB") == 65536``.

Units follow the microcontroller convention: **1 KB = 1024 bytes, 1 MB = 1024 KB** (datasheets quote
"320 Kbytes of SRAM" meaning 320 x 1024 bytes). ``KiB`` / ``MiB`` are accepted as synonyms; ``K`` / ``M`` as
short forms. There are no decimal (1000-based) units.
"""

from __future__ import annotations

import math
import re

from tinyevo.errors import ConfigError

UNITS: dict[str, int] = {
    "": 1, "b": 1,
    "k": 1024, "kb": 1024, "kib": 1024,
    "m": 1024**2, "mb": 1024**2, "mib": 1024**2,
    "g": 1024**3, "gb": 1024**3, "gib": 1024**3,
}
_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: str | int | float, *, unit_required: bool = False, name: str = "size") -> int:
    """Bytes in ``value``: an int (bytes) or a string like ``"512"``, ``"512B"``, ``"64KB"``, ``"1.5 MB"``.

    KB = 1024 bytes and MB = 1024 KB. Fractional results are rounded down to whole bytes. Raises
    :class:`~tinyevo.errors.ConfigError` for anything else (negative, unknown unit, empty). With
    ``unit_required`` (what a user types: ``--sram``, a run config's ``sram``), a bare number is an error that
    names the option ``name``: ``--sram 64`` is far more likely meant as 64 KB than as 64 bytes.
    """
    if isinstance(value, bool):
        raise ConfigError(f"not a size: {value!r}")
    if unit_required and isinstance(value, (int, float)):
        raise ConfigError(_no_unit(name, f"{value:g}" if isinstance(value, float) else str(value)))
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"a size must be a non-negative number of bytes, got {value!r}")
        return int(value)
    if not isinstance(value, str):
        raise ConfigError(f"not a size: {value!r}")
    m = _SIZE_RE.match(value)
    if not m:
        raise ConfigError(f"cannot read size {value!r}; write e.g. 512B, 64KB or 1.5MB (KB = 1024 bytes)")
    number, unit = m.groups()
    if unit_required and not unit:
        raise ConfigError(_no_unit(name, number))
    factor = UNITS.get(unit.lower())
    if factor is None:
        raise ConfigError(f"unknown size unit {unit!r} in {value!r}; use B, KB or MB (KB = 1024 bytes)")
    return int(float(number) * factor)


def _no_unit(name: str, number: str) -> str:
    return f"{name} {number}: give a unit, e.g. {number}KB or {number}B (KB = 1024 bytes)"


def format_size(n: float) -> str:
    """Human-readable bytes with 1024-based units: ``format_size(65536) == "64.0 KB"``."""
    if n < 1024:
        return f"{int(n)} B"
    if n < 1024**2:
        return f"{n / 1024:.1f} KB"
    return f"{n / 1024**2:.2f} MB"
