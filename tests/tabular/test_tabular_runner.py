"""The bench runner on a synthetic full NB201 table (every cell, synthetic accuracy and latency)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tinyevo.errors import ConfigError, UnknownNameError
from tinyevo.tabular import get_benchmark, load_table
from tinyevo.tabular.runner import latency_constraint, plot_curves, run_benchmark, strategy_names

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def test_optimum_and_statistics(nb201_csv: Path) -> None:
    r = run_benchmark(get_benchmark("nb201"), strategy="random", budget=30, seeds=3, table=nb201_csv, metric="acc")
    assert r.optimum_arch == BEST and r.optimum == pytest.approx(80 + 5 * 1.5 + 2.5 + 0.03)
    assert [s.seed for s in r.per_seed] == [0, 1, 2]
    bests = [s.best for s in r.per_seed]
    assert r.mean_best == pytest.approx(sum(bests) / 3)
    assert r.hit_rate == sum(s.hit for s in r.per_seed) / 3
    for s in r.per_seed:
        assert len(s.curve) == 30 and s.evaluations == 30
        assert list(s.curve) == sorted(s.curve)  # best-so-far never decreases
        assert s.curve[-1] == s.best and s.best_metrics["acc"] == s.best
        assert s.hit == (s.best == r.optimum)
    js = r.to_json()
    for key in ("strategy", "budget", "seeds", "mean_best", "std_best", "hit_rate"):
        assert key in js
    assert js["seed_list"] == [0, 1, 2] and "latency_ms_toy" in js["mean_of_best"]


def test_constraint_moves_the_optimum(nb201_csv: Path) -> None:
    table = load_table(nb201_csv)
    c = latency_constraint(table, device="toy", max_ms=8.0)
    r = run_benchmark(get_benchmark("nb201"), strategy="random", budget=40, seeds=2, table=nb201_csv,
                      metric="acc", constraint=c)
    assert r.optimum_arch != BEST
    assert table.value(r.optimum_arch, "latency_ms_toy") <= 8.0
    for s in r.per_seed:
        assert s.infeasible > 0 and s.evaluations == 40  # infeasible trials are free
        assert s.best_metrics["latency_ms_toy"] <= 8.0 and s.best <= r.optimum


def test_surrogate_finds_the_synthetic_optimum(nb201_csv: Path) -> None:
    r = run_benchmark(get_benchmark("nb201"), budget=60, seeds=2, table=nb201_csv, metric="acc")
    assert r.strategy == "surrogate-evolution"
    assert r.hit_rate == 1.0  # a near-additive objective is easy for the quadratic surrogate


def test_bad_options(nb201_csv: Path) -> None:
    bench = get_benchmark("nb201")
    with pytest.raises(UnknownNameError, match="optuna-tpe"):
        run_benchmark(bench, strategy="nope", table=nb201_csv, metric="acc")
    with pytest.raises(ConfigError, match="budget"):
        run_benchmark(bench, budget=0, table=nb201_csv, metric="acc")
    with pytest.raises(ConfigError, match="no numeric column"):
        run_benchmark(bench, table=nb201_csv, metric="valid_acc")
    with pytest.raises(ConfigError, match="devices: toy"):
        latency_constraint(load_table(nb201_csv), device="raspi4", max_ms=5)
    assert {"optuna-tpe", "optuna-nsga2", "surrogate-evolution"} <= set(strategy_names())


def test_plot_written(nb201_csv: Path, tmp_path: Path) -> None:
    r = run_benchmark(get_benchmark("nb201"), strategy="random", budget=5, seeds=2, table=nb201_csv, metric="acc")
    out = plot_curves([r], tmp_path / "curves.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("peer", ["optuna-tpe", "optuna-nsga2"])
def test_optuna_peers(peer: str, nb201_csv: Path) -> None:
    pytest.importorskip("optuna")
    table = load_table(nb201_csv)
    c = latency_constraint(table, device="toy", max_ms=12.0)
    r = run_benchmark(get_benchmark("nb201"), strategy=peer, budget=25, seeds=1, table=nb201_csv, metric="acc",
                      constraint=c)
    s = r.per_seed[0]
    assert s.evaluations == 25 and math.isfinite(s.best)
    assert s.best_metrics["latency_ms_toy"] <= 12.0
