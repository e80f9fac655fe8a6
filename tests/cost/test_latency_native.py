"""The native runtime's calibrated latency model: how the cost model uses it (planner ``native`` on a calibrated
core) and the calibration file's checks. The fit itself is tested in tests/codegen/cortexm."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tinyevo.cost.model as cost_model
from tinyevo.cost import estimate_cost
from tinyevo.cost.latency_native import FEATURES, NativeLatencyModel, native_latency_model, parse_models
from tinyevo.devices import get_device
from tinyevo.errors import ConfigError
from tinyevo.spaces import create_space


def _ir(seed: int = 0):  # type: ignore[no-untyped-def]
    space = create_space("chain", input_shape=(1, 16, 16), num_classes=10)
    return space.decode(space.sample(np.random.default_rng(seed)))


def _macs_only(core: str, per_mac: float, cpi: float, glue: float = 0.0) -> NativeLatencyModel:
    coef = (per_mac, 0.0, 0.0, 0.0, 0.0, 0.0)
    classes = {c: coef for c in ("conv", "pointwise", "depthwise", "dense", "pool", "elementwise")}
    return NativeLatencyModel(core=core, cpi=cpi, kernels={}, classes=classes, glue=(glue, 0.0, 0.0))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_native_planner_on_a_calibrated_core_uses_the_calibration(monkeypatch, seed):
    fake = _macs_only("cortex-m4", per_mac=3.0, cpi=1.5, glue=1000.0)
    monkeypatch.setattr(cost_model, "native_latency_model", lambda core: fake if core == "cortex-m4" else None)
    ir = _ir(seed)
    report = estimate_cost(ir, device="stm32f412", planner="native")
    clock_hz = get_device("stm32f412").clock_mhz * 1e6
    expected_ms = (3.0 * report.macs + 1000.0) * 1.5 / clock_hz * 1e3
    assert report.latency_ms == pytest.approx(expected_ms, rel=1e-9)
    assert "calibrated" in (report.latency_model or "")
    # per-op latencies add up to the total less the glue
    glue_ms = 1000.0 * 1.5 / clock_hz * 1e3
    assert sum(o.latency_ms for o in report.ops) + glue_ms == pytest.approx(report.latency_ms, rel=1e-9)


def test_other_planners_and_uncalibrated_cores_keep_the_core_coefficients(monkeypatch):
    fake = _macs_only("cortex-m4", per_mac=3.0, cpi=1.5)
    monkeypatch.setattr(cost_model, "native_latency_model", lambda core: fake if core == "cortex-m4" else None)
    ir = _ir()
    tflm = estimate_cost(ir, device="stm32f412", planner="tflm-mcu")
    native = estimate_cost(ir, device="stm32f412", planner="native")
    assert tflm.latency_ms != native.latency_ms
    assert "TFLite Micro" in (tflm.latency_model or "")
    m0 = estimate_cost(ir, device="rp2040", planner="native")  # cortex-m0plus: no calibration
    assert m0.latency_model is not None and m0.latency_model.startswith("cortex-m0plus coefficients")
    assert estimate_cost(ir, planner="native").latency_model is None  # no device


def test_builtin_calibration_parses_and_covers_the_emulated_cores():
    for core in ("cortex-m4", "cortex-m7"):
        model = native_latency_model(core)
        if model is None:
            pytest.skip("no built-in calibration yet (benchmarks/native_vs_tflm.py --write-calibration)")
        assert model.cpi > 0 and {"conv", "depthwise", "dense"} <= set(model.classes)
        report = estimate_cost(_ir(), device="stm32f746" if core == "cortex-m7" else "stm32f412", planner="native")
        assert report.latency_ms is not None and report.latency_ms > 0
        assert report.latency_model == model.describe()


def test_calibration_with_other_features_is_refused():
    doc = {"features": ["macs"], "cores": {}}
    with pytest.raises(ConfigError, match="recalibrate"):
        parse_models(doc)
    good = {"features": list(FEATURES), "cores": {"x": {"cpi": 1.0, "kernels": {}, "classes": {},
                                                         "glue": [0, 0, 0]}}}
    assert parse_models(json.loads(json.dumps(good)))["x"].cpi == 1.0

