from __future__ import annotations

import math
from dataclasses import replace

import pytest
from estimator_helpers import conv_net, dead_net

from tinyevo.data import Dataset
from tinyevo.errors import ConfigError
from tinyevo.estimators import (
    CurveStopper,
    EvalContext,
    Fidelity,
    TrainConfig,
    TrainingEstimator,
    WeightStore,
)

FAST = TrainConfig(epochs=2, batch_size=32)


def test_training_estimator_metrics_and_determinism(data: Dataset) -> None:
    est = TrainingEstimator(config=FAST)
    m = est.evaluate(conv_net(), data, seed=0)
    assert m["val_acc"] > 0.85 and m["epochs"] == 2.0 and m["train_time_s"] > 0
    assert "test_acc" not in m  # the test split is for the final report only
    assert est.evaluate(conv_net(), data, seed=0)["val_acc"] == m["val_acc"]


def test_low_fidelity_transforms(data: Dataset) -> None:
    est = TrainingEstimator(config=FAST, fidelity=Fidelity(data_fraction=0.5, resolution_scale=0.5,
                                                           width_multiplier=0.5))
    ir, small = est.prepare(conv_net(), data)
    assert small.input_shape == (1, 3, 3) and ir.input_shape == (1, 3, 3)
    assert ir.shapes["conv1"][0] == 4 and ir.output_shape == (2, 1, 1)
    assert len(small.x_train) == pytest.approx(len(data.x_train) / 2, abs=2)
    assert len(small.x_val) == len(data.x_val)
    assert est.prepare(conv_net(), data)[1] is small  # cached
    assert math.isfinite(est.evaluate(conv_net(), data, seed=0)["val_acc"])
    with pytest.raises(ConfigError):
        Fidelity(data_fraction=0.0)


def test_learning_curve_stops_a_hopeless_candidate(data: Dataset) -> None:
    cfg = TrainConfig(epochs=8, batch_size=32)
    est = TrainingEstimator(config=cfg, early_stop=CurveStopper(min_epochs=1.0, top_k=3, evals_per_epoch=4))
    ctx = EvalContext(finished_scores=(0.97, 0.98, 0.99))
    m = est.evaluate(dead_net(), data, seed=0, context=ctx)
    assert m["stopped_early"] == 1.0 and m["epochs"] < 8
    assert m["predicted_val_acc"] < 0.9 and m["val_acc"] < 0.7
    good = est.evaluate(conv_net(), data, seed=0, context=EvalContext(finished_scores=(0.5, 0.5, 0.5)))
    assert good["stopped_early"] == 0.0 and good["epochs"] == 8.0
    assert est.finished == [good["val_acc"]]  # only candidates trained to the end are recorded


def test_learning_curve_uses_its_own_record(data: Dataset) -> None:
    est = TrainingEstimator(config=TrainConfig(epochs=6, batch_size=32), early_stop=CurveStopper(top_k=1))
    est.finished.append(0.99)
    assert est.evaluate(dead_net(), data, seed=1)["stopped_early"] == 1.0


def test_weight_inheritance_from_parent(data: Dataset) -> None:
    store = WeightStore()
    est = TrainingEstimator(config=TrainConfig(epochs=1, batch_size=32), inherit=store)
    first = est.evaluate(conv_net(), data, seed=0, context=EvalContext(genome="parent"))
    assert first["inherited_fraction"] == 0.0 and "parent" in store
    child = est.evaluate(conv_net(), data, seed=1, context=EvalContext(genome="child", parents=("parent",)))
    assert child["inherited_fraction"] == 1.0 and "child" in store
    # a child of a trained parent starts where the parent ended: one more epoch cannot be far below it
    assert child["val_acc"] >= first["val_acc"] - 0.1
    explicit = est.evaluate(conv_net(16), data, seed=1, context=EvalContext(parent_state=store.get("parent")))
    assert 0.0 < explicit["inherited_fraction"] < 1.0  # only the classifier bias shape matches


def test_empty_validation_split_is_an_error(data: Dataset) -> None:
    empty = data.with_splits(x_val=data.x_val[:0], y_val=data.y_val[:0])
    with pytest.raises(ConfigError, match="validation"):
        TrainingEstimator(config=FAST).evaluate(conv_net(), empty, seed=0)


def test_a_search_estimator_refuses_train_on_val() -> None:
    with pytest.raises(ConfigError, match="train_on_val is for the final training"):
        TrainingEstimator(config=replace(FAST, train_on_val=True))
