"""Pruning as an estimator option: train, prune to ``prune_ratio``, fine-tune, report the pruned model."""

from __future__ import annotations

import math

import pytest
from estimator_helpers import conv_net

from tinyevo.cost import MCUCostModel, estimate_cost
from tinyevo.data import Dataset
from tinyevo.errors import ConfigError
from tinyevo.estimators import CurveStopper, Fidelity, TrainConfig, TrainingEstimator
from tinyevo.estimators.training_estimator import pruned_at_full_size
from tinyevo.estimators.transforms import scale_width
from tinyevo.training import Recipe

FAST = TrainConfig(epochs=2, batch_size=32)


def test_pruned_metrics_of_a_tiny_net(data: Dataset) -> None:
    ir = conv_net()
    plain = TrainingEstimator(config=FAST).evaluate(ir, data, seed=0)
    est = TrainingEstimator(config=TrainConfig(epochs=2, batch_size=32, prune_ratio=0.5))
    m = est.evaluate(ir, data, seed=0)
    full = estimate_cost(ir)
    assert m["unpruned_val_acc"] == plain["val_acc"]  # same training before pruning
    assert math.isfinite(m["val_acc"]) and 0.0 <= m["val_acc"] <= 1.0
    assert m["pruned_params"] < full.params and m["pruned_macs"] < full.macs
    assert m["pruned_flash_bytes"] < full.flash_bytes and m["pruned_peak_sram_bytes"] <= full.peak_sram_bytes
    assert m["pruned_fraction"] == pytest.approx(0.5)  # conv1 8 -> 4, conv2 16 -> 8
    assert 0 < m["prune_time_s"] <= m["train_time_s"]
    timing = ("train_time_s", "prune_time_s")
    again = est.evaluate(ir, data, seed=0)
    assert {k: v for k, v in again.items() if k not in timing} == {k: v for k, v in m.items() if k not in timing}


def test_no_pruning_by_default_and_without_finetuning(data: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    import tinyevo.estimators.training_estimator as trained

    m = TrainingEstimator(config=FAST).evaluate(conv_net(), data, seed=0)
    assert not any(k.startswith("pruned_") for k in m) and "unpruned_val_acc" not in m
    epochs: list[int] = []
    real_train = trained.train

    def spy(model: object, data: object, recipe: Recipe, **kw: object) -> object:
        epochs.append(recipe.epochs)
        return real_train(model, data, recipe, **kw)

    monkeypatch.setattr(trained, "train", spy)
    raw = TrainingEstimator(config=TrainConfig(epochs=2, batch_size=32, prune_ratio=0.5, prune_finetune_epochs=0))
    tuned = TrainingEstimator(config=TrainConfig(epochs=2, batch_size=32, prune_ratio=0.5, prune_finetune_epochs=3))
    a = raw.evaluate(conv_net(), data, seed=0)
    assert epochs == [2]  # trained, pruned, BatchNorm re-estimated, not fine-tuned
    b = tuned.evaluate(conv_net(), data, seed=0)
    assert epochs == [2, 2, 3]  # trained, pruned, fine-tuned 3 epochs
    assert a["pruned_params"] == b["pruned_params"]
    assert a["unpruned_val_acc"] == b["unpruned_val_acc"]


@pytest.mark.parametrize("options", [
    {"prune_ratio": 1.0}, {"prune_ratio": -0.1}, {"prune_ratio": "half"}, {"prune_ratio": True},
    {"prune_finetune_epochs": -1}, {"prune_finetune_epochs": 1.5}, {"prune_finetune_lr": 0.0},
])
def test_bad_prune_options_are_config_errors(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="prune"):
        TrainConfig(**options)  # type: ignore[arg-type]


def test_finetune_config_derives_from_the_training_config() -> None:
    cfg = TrainConfig(epochs=9, optimizer="adam", warmup_epochs=1.0, time_limit_s=5.0, prune_ratio=0.25,
                      prune_finetune_epochs=3)
    ft = cfg.finetune_config
    assert ft.epochs == 3 and ft.lr == pytest.approx(0.001) and ft.warmup_epochs == 0.0
    assert ft.time_limit_s is None and ft.prune_ratio == 0.0 and ft.optimizer == "adam"
    assert TrainConfig(prune_finetune_lr=0.02).finetune_config.lr == 0.02


def test_low_fidelity_reports_the_cost_of_the_full_width_candidate(data: Dataset) -> None:
    ir = conv_net(width=8)
    est = TrainingEstimator(config=TrainConfig(epochs=1, batch_size=32, prune_ratio=0.5),
                            fidelity=Fidelity(width_multiplier=0.5))
    m = est.evaluate(ir, data, seed=0)
    # trained at half width (conv1 4, conv2 8), pruned by half (2, 4): the full-width candidate keeps 4 and 8
    expected = estimate_cost(conv_net(width=4))
    assert m["pruned_params"] == expected.params and m["pruned_flash_bytes"] == expected.flash_bytes
    half = scale_width(ir, 0.5)
    assert pruned_at_full_size(ir, ir, half) is half  # nothing transformed: the pruned IR itself


def test_learning_curve_records_unpruned_accuracy(data: Dataset) -> None:
    est = TrainingEstimator(config=TrainConfig(epochs=2, batch_size=32, prune_ratio=0.5),
                            early_stop=CurveStopper(min_epochs=1.0, top_k=1))
    m = est.evaluate(conv_net(), data, seed=0)
    assert m["stopped_early"] == 0.0 and est.finished == [m["unpruned_val_acc"]]


def test_pruned_costs_use_the_runs_cost_options(data: Dataset) -> None:
    """The pruned_* costs are priced like the run prices candidates (precision, planner, SRAM convention)."""
    from tinyevo.estimators.base import EvalContext

    est = TrainingEstimator(config=TrainConfig(epochs=1, batch_size=32, prune_ratio=0.5))
    options = {"precision": "float32", "planner": "tflm", "count_input": False, "count_output": False}
    m = est.evaluate(conv_net(), data, seed=0, context=EvalContext(cost_model=MCUCostModel(**options)))
    default = est.evaluate(conv_net(), data, seed=0)
    pruned = estimate_cost(conv_net(width=4), **options)  # conv1 8 -> 4, conv2 16 -> 8, as in the test above
    assert m["pruned_flash_bytes"] == pruned.flash_bytes and m["pruned_peak_sram_bytes"] == pruned.peak_sram_bytes
    assert m["pruned_flash_bytes"] > default["pruned_flash_bytes"]  # float32 weights, not int8
