"""An objective (or constraint) on a metric nothing produces is a ConfigError before a run exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyevo.cost import COST_METRICS, DEVICE_METRICS, estimate_cost
from tinyevo.errors import ConfigError
from tinyevo.run.assembly import check_metrics, known_metrics
from tinyevo.run.config import build_config
from tinyevo.run.engine import start_run
from tinyevo.spaces import create_space
from tinyevo.strategies.base import Constraint, Objective, Problem


def test_cost_metric_names_are_what_the_cost_model_returns() -> None:
    space = create_space("chain", input_shape=(1, 8, 8), num_classes=10)
    ir = space.decode(space.sample(__import__("numpy").random.default_rng(0)))
    assert set(estimate_cost(ir).as_metrics()) == set(COST_METRICS)
    assert set(estimate_cost(ir, device="stm32f412").as_metrics()) == set(COST_METRICS) | set(DEVICE_METRICS)


@pytest.mark.parametrize("flags", [
    {"objectives": ["accuracy"]},
    {"objectives": ["val_acc", "sram:min"]},
    {"objectives": ["latency_ms:min"], "device": "none"},  # no device, no latency
    {"objectives": ["val_acc"], "estimator": "naswot"},  # a proxy trains nothing
])
def test_unknown_objective_metrics_are_rejected(flags: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match="unknown objective metric") as info:
        check_metrics(build_config(None, **flags))
    assert "peak_sram_bytes" in str(info.value)  # the known ones are named


@pytest.mark.parametrize("flags", [
    {},
    {"objectives": ["val_acc", "peak_sram_bytes:min", "latency_ms:min"]},
    {"objectives": ["naswot", "weight_bytes:min"], "estimator": "naswot"},
    {"objectives": ["predicted_val_acc"], "estimator": "lc"},
    {"objectives": ["pruned_flash_bytes:min"], "train": {"prune_ratio": 0.5}},
])
def test_produced_metrics_are_accepted(flags: dict) -> None:  # type: ignore[type-arg]
    check_metrics(build_config(None, **flags))


def test_constraints_are_checked_too() -> None:
    config = build_config(None)
    assert "flash_bytes" in (known_metrics(config) or ())
    problem = Problem(objectives=(Objective("val_acc"),), constraints=(Constraint("ram", upper=1.0),))
    with pytest.raises(ConfigError, match="unknown constraint metric 'ram'"):
        check_metrics(config, problem)


def test_start_run_rejects_it_before_a_run_directory_exists(tmp_path: Path) -> None:
    config = build_config(None, objectives=["accuracy"], budget=1, final={"enabled": False})
    with pytest.raises(ConfigError, match="unknown objective metric 'accuracy'"):
        start_run(config, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
