from __future__ import annotations

import math
import pickle

import pytest
from estimator_helpers import conv_net

from tinyevo.data import Dataset
from tinyevo.errors import ConfigError, UnknownNameError
from tinyevo.estimators import (
    DEFAULT_ESTIMATOR,
    ESTIMATORS,
    Estimator,
    EvalContext,
    TrainConfig,
    create_estimator,
)

TINY = TrainConfig(epochs=2, batch_size=32)


@pytest.mark.parametrize("name", ESTIMATORS.names())
def test_every_registered_estimator(name: str, data: Dataset) -> None:
    est = ESTIMATORS.create(name, config=TINY)
    assert isinstance(est, Estimator) and ESTIMATORS.describe(name)
    m = est.evaluate(conv_net(), data, seed=0, context=EvalContext(genome="g"))
    assert m and all(isinstance(v, float) and math.isfinite(v) for v in m.values())
    assert "val_acc" in m or name.replace("-", "_") in m
    pickle.loads(pickle.dumps(est))  # shippable to worker processes


def test_create_combined_and_errors(data: Dataset) -> None:
    assert DEFAULT_ESTIMATOR in ESTIMATORS
    both = create_estimator("naswot+train", config=TINY)
    m = both.evaluate(conv_net(), data, seed=0)
    assert {"naswot", "val_acc"} <= set(m) and both.name == "naswot+train"
    with pytest.raises(UnknownNameError):
        create_estimator("magic")
    with pytest.raises(ConfigError):
        create_estimator("train+")
