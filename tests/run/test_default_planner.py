"""New runs price SRAM as the whole 32-bit TFLM arena (``tflm-mcu``); stored runs keep their planner."""

from __future__ import annotations

import pytest

from tinyevo.cost.memory import PLANNERS
from tinyevo.run.config import PLANNER_CHOICES, LimitsConfig, RunConfig, build_config


def test_new_runs_default_to_the_whole_tflm_arena() -> None:
    assert LimitsConfig().planner == "tflm-mcu"
    assert build_config().limits.planner == "tflm-mcu"
    assert build_config(planner="optimal").limits.planner == "optimal"  # still selectable
    assert set(PLANNER_CHOICES) <= set(PLANNERS.names())


def test_stored_runs_keep_their_planner() -> None:
    stored = build_config(planner="optimal").to_json()
    assert RunConfig.from_json(stored).limits.planner == "optimal"
    # a run stored before planners existed has no planner: it was priced with optimal, its default then
    old = build_config().to_json()
    del old["limits"]["planner"]
    assert RunConfig.from_json(old).limits.planner == "optimal"
    assert RunConfig.from_json(build_config().to_json()).limits.planner == "tflm-mcu"


def test_munas_convention_defaults_to_the_optimal_planner_and_refuses_the_tflm_arena() -> None:
    # munas leaves the network input and output out: an activations-only measure no TFLM arena realises
    from tinyevo.errors import ConfigError
    from tinyevo.run.config import LimitsConfig, build_config

    assert build_config(None, sram_convention="munas").limits.planner == "optimal"
    assert build_config(None).limits.planner == "tflm-mcu"
    assert LimitsConfig(sram_convention="munas").planner == "optimal"
    with pytest.raises(ConfigError, match="munas"):
        build_config(None, sram_convention="munas", planner="tflm-mcu")
