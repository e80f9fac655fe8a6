"""`tinyevo bench` end to end on a tiny generated table (every NB201 cell, synthetic metrics)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from tinyevo.cli.main import main
from tinyevo.spaces.nb201 import EDGES, OPS, NB201Genome


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lines = ["arch,score,latency_ms_toy"]
    for ops in itertools.product(OPS, repeat=len(EDGES)):
        score = sum(OPS.index(op) for op in ops) + 0.1 * OPS.index(ops[0])
        latency = 1 + sum(op == "avg_pool_3x3" for op in ops)
        lines.append(f"{NB201Genome(ops)},{score:.2f},{latency}")
    path = tmp_path_factory.mktemp("bench") / "toy.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bench_writes_json_and_png(table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "res" / "toy.json"
    code = main(["bench", "nb201", "--table", str(table), "--metric", "score", "--budget", "25", "--seeds", "2",
                 "--json", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    for key in ("strategy", "budget", "seeds", "mean_best", "std_best", "hit_rate"):
        assert key in data
    assert data["strategy"] == "surrogate-evolution" and data["budget"] == 25 and data["seeds"] == 2
    assert data["optimum"] == pytest.approx(6 * 4 + 0.4)
    assert len(data["per_seed"]) == 2 and len(data["per_seed"][0]["curve"]) == 25
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert "surrogate-evolution" in capsys.readouterr().out


def test_bench_latency_constraint(table: Path, tmp_path: Path) -> None:
    out = tmp_path / "lat.json"
    code = main(["bench", "nb201", "--table", str(table), "--metric", "score", "--strategy", "random",
                 "--budget", "10", "--seeds", "1", "--max-latency-ms", "3", "--latency-device", "toy", "--json",
                 str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    assert data["constraint"] == {"metric": "latency_ms_toy", "upper": 3.0}
    assert data["optimum"] < 6 * 4  # at most two pooling edges are allowed
    assert data["per_seed"][0]["best_metrics"]["latency_ms_toy"] <= 3


@pytest.mark.parametrize(
    "argv",
    [
        ["--strategy", "nope"],
        ["--metric", "valid_acc"],
        ["--budget", "0"],
        ["--max-latency-ms", "5"],  # without --latency-device
        ["--max-latency-ms", "5", "--latency-device", "raspi4"],  # no such column in this table
        ["--max-latency-ms", "5", "--device", "toy"],  # --device names an MCU profile: refused with a pointer
        ["--json", "out.txt"],
    ],
)
def test_bench_bad_options_exit_2(table: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "nb201", "--table", str(table), "--metric", "score", "--seeds", "1", *argv])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tinyevo: error:")


def test_bench_device_points_to_latency_device(table: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "nb201", "--table", str(table), "--max-latency-ms", "3", "--device", "toy"]) == 2
    assert "--latency-device toy" in capsys.readouterr().err


def test_bench_missing_table_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "nb201", "--table", str(tmp_path / "none.csv")]) == 2
    assert "not found" in capsys.readouterr().err


def test_bench_unknown_benchmark_exit_2() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "nb999"])
    assert exc.value.code == 2
