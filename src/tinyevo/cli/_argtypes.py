"""argparse value types shared by the subcommands."""

from __future__ import annotations

import argparse


def floats(text: str) -> tuple[float, ...]:
    """``"0.5,0.75,1"`` -> ``(0.5, 0.75, 1.0)``."""
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def ints(text: str) -> tuple[int, ...]:
    """``"3,5,7"`` -> ``(3, 5, 7)``."""
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
