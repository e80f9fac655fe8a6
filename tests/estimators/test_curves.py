from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyevo.errors import ConfigError
from tinyevo.estimators import CurveStopper, predict_final


def test_predicts_a_saturating_curve() -> None:
    t = np.arange(1, 9) / 4  # two epochs, four points per epoch
    acc = 0.9 - 0.5 * t ** -0.8
    pred = predict_final(t, acc, horizon=20.0)
    assert pred == pytest.approx(0.9 - 0.5 * 20 ** -0.8, abs=0.02)


def test_flat_curve_predicts_flat() -> None:
    t = np.arange(1, 9) / 4
    pred = predict_final(t, np.full(8, 0.1) + np.linspace(0, 0.001, 8), horizon=10.0)
    assert pred is not None and pred < 0.15


def test_too_few_points() -> None:
    assert predict_final([1.0, 2.0], [0.3, 0.4], horizon=10.0) is None


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=3, max_size=12), st.floats(5.0, 50.0))
def test_prediction_is_a_probability_at_least_the_best_seen(accs: list[float], horizon: float) -> None:
    t = np.arange(1, len(accs) + 1) / 4
    pred = predict_final(t, accs, horizon)
    assert pred is not None and max(accs) - 1e-12 <= pred <= 1.0


def test_stopper_threshold_and_decision() -> None:
    s = CurveStopper(min_epochs=1.0, top_k=2)
    assert s.threshold([0.5]) is None
    assert s.threshold([0.5, 0.9, 0.7]) == 0.7
    t = list(np.arange(1, 9) / 4)
    flat = [0.1] * 8
    assert s.should_stop(t, flat, horizon=10.0, threshold=0.7)[0]
    assert not s.should_stop(t, flat, horizon=10.0, threshold=None)[0]  # nothing to compare with yet
    assert not s.should_stop(t[:3], flat[:3], horizon=10.0, threshold=0.7)[0]  # before min_epochs
    rising = list(0.95 - 0.5 * np.asarray(t) ** -1.0)
    assert not s.should_stop(t, rising, horizon=10.0, threshold=0.9)[0]
    with pytest.raises(ConfigError):
        CurveStopper(top_k=0)
