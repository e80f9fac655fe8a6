"""The documented examples must run as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(path: Path) -> None:
    out = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                         timeout=1800)  # a hang guard only: examples train, and a loaded machine is slow
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip(), "an example should show its result"


def test_there_are_examples() -> None:
    assert EXAMPLES
