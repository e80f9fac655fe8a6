"""MnasNet soft targets in a run config: flags and config keys, stored spec, metric checks."""

from __future__ import annotations

import pytest

from tinyevo.errors import ConfigError
from tinyevo.problem import SoftTarget
from tinyevo.run.assembly import check_metrics
from tinyevo.run.config import RunConfig, build_config


def test_latency_target_and_soft_targets_scale_the_first_objective() -> None:
    cfg = build_config({"objectives": ["val_acc:max", "peak_sram:min"], "strategy": "nsga2"},
                       latency_target_ms=20.0, soft_targets=["flash=200000:0:-1"], device="stm32f412")
    first, second = cfg.objectives
    assert first.soft_targets == (SoftTarget("flash", 200000.0, 0.0, -1.0), SoftTarget("latency_ms", 20.0))
    assert second.soft_targets == ()
    assert RunConfig.from_json(cfg.to_json()).objectives == cfg.objectives  # stored as val_acc:max@...
    assert cfg.to_json()["objectives"][0] == "val_acc:max@flash=200000.0:0.0:-1.0@latency_ms=20.0"


def test_config_file_keys_and_objective_text() -> None:
    a = build_config({"soft_targets": "latency_ms=15", "device": "stm32f412"})
    b = build_config({"objectives": "val_acc:max@latency_ms=15", "device": "stm32f412"})
    assert a.objectives == b.objectives
    assert a.objectives[0].soft_targets == (SoftTarget("latency_ms", 15.0),)


@pytest.mark.parametrize("flags", [{"latency_target_ms": -1.0}, {"latency_target_ms": 0.0},
                                   {"soft_targets": ["latency_ms"]}, {"soft_targets": ["latency_ms=x"]}])
def test_bad_values_are_refused(flags: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError):
        build_config({"device": "stm32f412"}, **flags)


def test_a_soft_target_on_a_metric_nothing_produces_is_refused() -> None:
    cfg = build_config({"device": "none"}, latency_target_ms=20.0)
    with pytest.raises(ConfigError, match="soft target metric 'latency_ms'"):
        check_metrics(cfg)
    check_metrics(build_config({"device": "stm32f412"}, latency_target_ms=20.0))  # a device gives latency
