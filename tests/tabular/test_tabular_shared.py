"""The real tabular benchmarks in ../shared/benchmarks (skipped when the shared folder is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tinyevo.spaces import create_space
from tinyevo.tabular import get_benchmark, load_table

SHARED = Path(os.environ.get("TINYEVO_SHARED") or Path(__file__).resolve().parents[2] / ".." / "shared")
needs_shared = pytest.mark.skipif(not (SHARED / "benchmarks").is_dir(), reason="../shared/benchmarks not present")


@needs_shared
def test_nb201_table() -> None:
    t = load_table(SHARED / "benchmarks" / "nb201_cifar10.csv")
    assert len(t) == 15625
    arch, best = t.best("valid_acc")
    assert best == pytest.approx(91.6067) and t.value(arch, "index") == 6111
    space = create_space("nb201")
    assert all(str(space.parse(k)) == k for k in t.keys[:500])  # table keys are canonical genome strings
    assert {"test_acc", "train_time_s", "latency_ms_raspi4"} <= set(t.metrics)


@needs_shared
def test_macro_table() -> None:
    t = get_benchmark("macro").load(SHARED / "benchmarks" / "nas-bench-macro_cifar10.json")
    assert len(t) == 6561 and {"mean_acc", "params", "flops"} <= set(t.metrics)
    space = create_space("macro")
    assert all(str(space.parse(k)) == k for k in t.keys[:500])
