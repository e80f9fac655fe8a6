"""Typed seams of a run (issue 18 item 3): training options parsed once into TrainOptions (also for a stored
config), the estimator built with its fidelity and teacher rather than mutated afterwards."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from torch import nn

from tinyevo.errors import ConfigError
from tinyevo.estimators import TrainingEstimator
from tinyevo.run.assembly import search_estimator, train_config
from tinyevo.run.config import FidelityConfig, RunConfig, build_config
from tinyevo.run.options import TrainOptions
from tinyevo.training import TrainConfig


def test_the_train_tables_are_typed_records() -> None:
    cfg = build_config({"train": {"epochs": 3, "optimizer": "sgd"}, "final": {"epochs": 7, "train_on_val": True}})
    assert isinstance(cfg.estimator.options, TrainOptions) and isinstance(cfg.final.options, TrainOptions)
    assert (cfg.estimator.options.epochs, cfg.estimator.options.optimizer) == (3, "sgd")
    assert (cfg.final.options.epochs, cfg.final.options.train_on_val) == (7, True)
    assert cfg.estimator.options.momentum == TrainOptions().momentum  # not given: the default


def test_a_stored_config_is_parsed_at_the_edge_too() -> None:
    stored = json.loads(json.dumps(build_config({}).to_json()))
    assert RunConfig.from_json(stored).estimator.options == build_config({}).estimator.options
    stored["estimator"]["train"]["epochs"] = "four"  # a hand-edited run: refused when read, not in a worker
    with pytest.raises(ConfigError, match="train.epochs must be an integer"):
        RunConfig.from_json(stored)


def test_a_changed_table_is_parsed_again() -> None:
    cfg = build_config({})
    assert replace(cfg.estimator, train={"epochs": 9}).options.epochs == 9


def test_train_config_from_the_record_equals_the_direct_one() -> None:
    """Oracle: TrainConfig built directly from the same values (the defaults of both records agree)."""
    values = {"epochs": 2, "batch_size": 16, "optimizer": "adam", "augment": ("flip",), "label_smoothing": 0.1}
    cfg = build_config({"train": values})
    assert train_config(cfg.estimator.options) == TrainConfig(**values)
    assert train_config(cfg.estimator.options, threads=3) == TrainConfig(**values, threads=3)


def test_fidelity_builds_a_new_estimator() -> None:
    opts = build_config({"train": {"epochs": 4}}).estimator.options
    plain = search_estimator("train", opts)
    low = search_estimator("train", opts, fidelity=FidelityConfig(width=0.5, epochs_fraction=0.5))
    assert plain.fidelity.width_multiplier == 1.0 and plain.config.epochs == 4
    assert low.fidelity.width_multiplier == 0.5 and low.config.epochs == 2
    combined = search_estimator("naswot+train", opts, fidelity=FidelityConfig(data_fraction=0.5))
    trainer = [p for p in combined.parts if isinstance(p, TrainingEstimator)]
    assert len(trainer) == 1 and trainer[0].fidelity.data_fraction == 0.5


def test_configured_leaves_the_original_alone() -> None:
    est = TrainingEstimator(config=TrainConfig(epochs=1))
    teacher = nn.Linear(2, 2)
    taught = est.configured(teacher=teacher)
    assert taught is not est and taught.teacher is teacher and est.teacher is None
    assert taught.config == est.config and taught.fidelity == est.fidelity
