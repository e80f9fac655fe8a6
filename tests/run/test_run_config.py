from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyevo.errors import ConfigError, UnknownNameError
from tinyevo.run.config import (
    DIGITS_DEMO_LIMITS,
    BudgetConfig,
    ExecutorConfig,
    RunConfig,
    build_config,
    parse_duration,
    parse_objective,
)
from tinyevo.strategies.base import DEFAULT_STRATEGY


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("90", 90),
        ("90s", 90),
        ("30m", 1800),
        ("1.5h", 5400),
        ("1h30m", 5400),
        ("2 min", 120),
        (45, 45),
        (0.5, 0.5),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5m", "0", "5 parsecs", "m30", True])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ConfigError):
        parse_duration(text)  # type: ignore[arg-type]


def test_defaults_are_the_digits_demo() -> None:
    cfg = build_config(None)
    assert cfg.data.spec == "digits" and cfg.space.name == "chain" and cfg.strategy == DEFAULT_STRATEGY
    assert cfg.limits.device == "stm32f412" and cfg.limits.sram == 4096 and cfg.limits.flash == 65536
    assert DIGITS_DEMO_LIMITS == {"sram": "4KB", "flash": "64KB"}
    # naming a device (or a size, or other data) drops the demo limits
    assert build_config(None, device="stm32f412").limits.sram is None
    assert build_config(None, sram="8KB").limits.flash is None
    assert build_config(None, data="x.npz").limits.sram is None


def test_json_round_trip_of_varied_configs() -> None:
    cfgs = [
        build_config(None),
        build_config(
            None,
            data="d.npz",
            space="blocks",
            space_options={"width_multipliers": [0.5, 1.0]},
            strategy="nsga2",
            objectives=["val_acc", "latency_ms:min"],
            device="nrf52840",
            latency_ms=50,
            sram="64KB",
            budget=9,
            time="10m",
            workers=3,
            executor="process",
            seed=8,
            train={"epochs": 2, "augment": ["shift"]},
            final={"pareto": True, "epochs": 3},
        ),
        build_config(None, device="none", macs=1e6, executor="dask", scheduler="tcp://10.0.0.1:8786"),
    ]
    for cfg in cfgs:
        assert RunConfig.from_json(cfg.to_json()) == cfg
    assert cfgs[1].space.options["width_multipliers"] == (0.5, 1.0)
    assert cfgs[1].estimator.train["augment"] == ("shift",)
    assert cfgs[2].limits.device is None


@pytest.mark.parametrize(
    "flags, match",
    [
        ({"budget": 0}, "--budget"),
        ({"seed": -1}, "--seed"),
        ({"seed": "x"}, "--seed"),
        ({"sram": "-4KB"}, "size"),
        ({"weights": "4.5 parsecs"}, "unit"),
        ({"weights": 0}, "--weights"),
        ({"sram_convention": "tflm"}, "--sram-convention must be mcunet or munas"),
        ({"val_fraction": 1.5}, "val_fraction"),
        ({"workers": 0}, "--workers"),
        ({"executor": "slurm"}, "unknown executor"),
        ({"scheduler": "tcp://h:1", "executor": "local"}, "--scheduler needs --executor dask"),
        ({"device": "none", "latency_ms": 5.0}, "need a --device"),
        ({"train": {"epochz": 3}}, "unknown training option"),
        ({"final": {"epochs": 0}}, "final.epochs must be >= 1, got 0"),
        ({"objectives": ["val_acc:up"]}, "direction"),
        ({"space_options": {"num_classes": 3}}, "set from the data set"),
    ],
)
def test_bad_values_raise_config_error(flags: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_config(None, **flags)


def test_sram_convention_and_weights_limit_are_stored_with_the_run() -> None:
    default = build_config(None)
    assert default.limits.sram_convention == "mcunet" and default.limits.weights is None
    cfg = build_config(None, device="stm32f412", sram="2.5KB", weights="4.5KB", sram_convention="munas")
    assert cfg.limits.sram_convention == "munas" and cfg.limits.weights == 4608 and cfg.limits.sram == 2560
    stored = cfg.to_json()
    assert stored["limits"]["sram_convention"] == "munas" and stored["limits"]["weights"] == 4608
    assert RunConfig.from_json(stored) == cfg
    # a run stored before these options existed reads back as mcunet without a weights limit
    old = {**stored, "limits": {k: v for k, v in stored["limits"].items() if k not in ("weights", "sram_convention")}}
    assert RunConfig.from_json(old).limits == replace(cfg.limits, weights=None, sram_convention="mcunet")


def test_unknown_device_name() -> None:
    with pytest.raises(UnknownNameError, match="unknown device"):
        build_config(None, device="stm99")


def test_scheduler_implies_dask_and_batch_defaults_to_workers() -> None:
    cfg = build_config(None, scheduler="tcp://127.0.0.1:8786", workers=4)
    assert cfg.executor.name == "dask" and cfg.executor.batch == 4
    assert ExecutorConfig(workers=2, batch_size=5).batch == 5
    assert BudgetConfig(trials=7).trial_limit == 140


@settings(max_examples=40, deadline=None)
@given(metric=st.from_regex(r"[a-z_]{1,12}", fullmatch=True), direction=st.sampled_from(["max", "min", ""]))
def test_parse_objective(metric: str, direction: str) -> None:
    obj = parse_objective(f"{metric}:{direction}" if direction else metric)
    assert obj.metric == metric and obj.direction == (direction or "max")
