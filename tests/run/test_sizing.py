"""Defaults that adapt to the data set's size (issue 16): the validation split's minimum per class, batch size
and epochs by optimiser steps, explicit settings untouched, digits unchanged, warnings for tiny splits."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tinyevo.data import load_dataset
from tinyevo.data.dataset import from_arrays, stratified_split
from tinyevo.run.config import RunConfig, build_config, with_final_options
from tinyevo.run.sizing import (
    FINAL_MIN_STEPS,
    MIN_RANKING_SAMPLES,
    SEARCH_MIN_STEPS,
    VAL_MIN_PER_CLASS,
    size_run,
)


def _fake_data(n_train: int, n_val: int, n_test: int) -> SimpleNamespace:
    z = np.zeros
    return SimpleNamespace(y_train=z(n_train, np.int64), y_val=z(n_val, np.int64), y_test=z(n_test, np.int64))


def _steps(n: int, batch: int, epochs: int) -> int:
    """Optimiser steps as the trainer takes them, counted batch by batch (a last batch of one is dropped)."""
    sizes = [len(range(i, min(i + batch, n))) for i in range(0, n, batch)]
    return epochs * sum(1 for s in sizes if s >= 2)


# --- the validation split ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_split_minimum_per_class_and_every_class_keeps_training_samples(seed: int) -> None:
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 40, size=int(rng.integers(2, 8)))
    y = np.repeat(np.arange(len(counts)), counts)[rng.permutation(int(counts.sum()))]
    k = int(rng.integers(1, 9))
    keep, held = stratified_split(y, 0.1, np.random.default_rng(seed), min_per_class=k)
    n_held = np.bincount(y[held], minlength=len(counts))
    n_keep = np.bincount(y[keep], minlength=len(counts))
    assert np.array_equal(n_held + n_keep, counts) and len(np.intersect1d(keep, held)) == 0
    for c, n in enumerate(counts):
        assert n_keep[c] >= 1  # no class is left without training samples
        assert n_held[c] >= min(k, n // 3)  # the minimum, where a class has enough samples for it
        assert n_held[c] >= min(round(0.1 * n), n - 1)  # never fewer than the fraction gives


def test_issue_16_shape_four_classes_of_ten() -> None:
    y = np.repeat(np.arange(4), 10)
    x = np.random.default_rng(0).normal(size=(40, 16, 1)).astype(np.float32)
    xs = x[:8]
    data = from_arrays(x, y, xs, y[:8], val_min_per_class=VAL_MIN_PER_CLASS)
    assert np.bincount(data.y_val).tolist() == [3, 3, 3, 3]  # was 1 per class (10 % of 10)
    assert np.bincount(data.y_train).tolist() == [7, 7, 7, 7]


def test_minimum_leaves_large_classes_split_as_before() -> None:
    y = np.repeat(np.arange(3), [60, 80, 200])
    a = stratified_split(y, 0.1, np.random.default_rng(3))
    b = stratified_split(y, 0.1, np.random.default_rng(3), min_per_class=5)
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))


# --- batch size and epochs by optimiser steps ----------------------------------------------------------------


def test_tiny_data_gets_enough_steps_large_data_keeps_todays_values() -> None:
    tiny = size_run(build_config(), _fake_data(28, 12, 120))
    for phase, min_steps in (("search", SEARCH_MIN_STEPS), ("final", FINAL_MIN_STEPS)):
        train = (tiny.config.estimator if phase == "search" else tiny.config.final).train
        assert 8 <= train["batch_size"] <= 28 // 2
        assert _steps(28, train["batch_size"], train["epochs"]) >= min_steps
    large = size_run(build_config(), _fake_data(54_000, 6_000, 10_000))
    assert dict(large.config.estimator.train) == {"epochs": 4, "batch_size": 64}
    assert dict(large.config.final.train) == {"epochs": 30, "batch_size": 64}
    assert large.warnings == ()


def test_explicit_values_are_never_adapted() -> None:
    config = build_config({"train": {"epochs": 2}}, final={"batch_size": 32}, val_fraction=0.1)
    assert config.data.val_min_per_class == 0  # an explicit --val-fraction is used as given
    sized = size_run(config, _fake_data(28, 4, 120)).config
    assert sized.estimator.train["epochs"] == 2 and sized.estimator.train["batch_size"] == 8
    assert sized.final.train["batch_size"] == 32 and sized.final.train["epochs"] > 30


def test_sized_config_is_stored_and_replays_unchanged() -> None:
    sized = size_run(build_config(), _fake_data(28, 12, 120)).config
    assert sized.estimator.auto == () and sized.final.auto == ()
    again = RunConfig.from_json(sized.to_json())
    assert again == sized
    # resizing the stored config (as a resume could) changes nothing, whatever the data
    assert size_run(again, _fake_data(54_000, 6_000, 10_000)).config == sized


def test_config_stored_before_sizing_existed_loads_unchanged() -> None:
    old = build_config(val_fraction=0.1).to_json()
    for key in ("val_min_per_class",):
        old["data"].pop(key)
    old["estimator"].pop("auto")
    old["final"].pop("auto")
    config = RunConfig.from_json(old)
    assert config.data.val_min_per_class == 0 and config.estimator.auto == () and config.final.auto == ()


def test_retrain_options_are_explicit() -> None:
    config = with_final_options(build_config(), train={"epochs": 7})
    assert config.final.auto == ("batch_size",) and config.final.train["epochs"] == 7


# --- warnings ------------------------------------------------------------------------------------------------


def test_tiny_validation_and_test_splits_warn() -> None:
    sized = size_run(build_config(), _fake_data(28, 12, 20))
    by_split = {w.split: w for w in sized.warnings}
    assert by_split["val"].samples == 12 and math.isclose(by_split["val"].resolution, 1 / 12)
    assert by_split["test"].samples == 20 and "5.0 %" in by_split["test"].message
    ok = size_run(build_config(), _fake_data(1000, MIN_RANKING_SAMPLES, MIN_RANKING_SAMPLES))
    assert ok.warnings == ()


# --- digits: today's values exactly ---------------------------------------------------------------------------


def test_digits_resolves_to_todays_defaults_and_split() -> None:
    sized = size_run(build_config())
    assert sized.config.data.val_fraction == 0.1
    assert dict(sized.config.estimator.train) == {"epochs": 4, "batch_size": 64}
    assert dict(sized.config.final.train) == {"epochs": 30, "batch_size": 64}
    assert sized.warnings == ()
    before = load_dataset("digits", val_fraction=0.1)
    now = load_dataset("digits", val_fraction=0.1, val_min_per_class=sized.config.data.val_min_per_class)
    for split in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert np.array_equal(getattr(before, split), getattr(now, split))


# --- the CLI prints the choice and the warning; the run stores the choice ---------------------------------------


def test_cli_prints_warning_and_stores_adapted_values(
    make_tiny_npz: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tinyevo.cli.main import main
    from tinyevo.run.engine import load_run_config

    data = make_tiny_npz(40, seed=0, n_test=9)
    out = tmp_path / "run"
    code = main(["search", "--data", str(data), "--budget", "1", "--epochs", "1", "--no-final", "--strategy",
                 "random", "--out", str(out), "-q"])
    assert code == 0
    err = capsys.readouterr().err
    assert "validation split has only 12 samples" in err and "warning" in err
    assert "batch 8" in err
    stored = load_run_config(out)
    assert stored.estimator.train["epochs"] == 1 and stored.estimator.train["batch_size"] == 8
    assert stored.data.val_min_per_class == VAL_MIN_PER_CLASS and stored.estimator.auto == ()
