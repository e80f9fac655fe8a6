"""Fixtures for tabular-benchmark tests: tiny generated tables (no ../shared needed)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tinyevo.spaces.nb201 import EDGES, OPS, NB201Genome


def synthetic_nb201_rows() -> list[tuple[str, float, float]]:
    """Every NB201 cell with a synthetic accuracy (unique optimum: all 3x3 convs, skip on edge 3<-0) and latency."""
    rows = []
    for ops in itertools.product(OPS, repeat=len(EDGES)):
        acc = 80.0 + 1.5 * sum(op == "nor_conv_3x3" for op in ops) + 0.5 * sum(op == "nor_conv_1x1" for op in ops)
        if ops[3] == "skip_connect":
            acc += 2.5  # the residual edge: beats a 3x3 conv there
        acc += 0.01 * OPS.index(ops[0])  # break ties deterministically
        latency = 1.0 + sum(3.0 if op == "nor_conv_3x3" else 1.0 if op == "nor_conv_1x1" else 0.1 for op in ops)
        rows.append((str(NB201Genome(ops)), round(acc, 4), round(latency, 3)))
    return rows


@pytest.fixture(scope="session")
def nb201_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tables") / "synthetic_nb201.csv"
    lines = ["arch,acc,latency_ms_toy,label"]
    lines += [f"{a},{acc},{lat},x" for a, acc, lat in synthetic_nb201_rows()]
    path.write_text("\n".join(lines) + "\n")
    return path
