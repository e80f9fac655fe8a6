"""Named estimator compositions registered in :data:`~tinyevo.estimators.base.ESTIMATORS`.

Every factory takes ``config`` (the full-training :class:`TrainConfig`, default ``TrainConfig()``); the cheap
presets derive their settings from it.
"""

from __future__ import annotations

from dataclasses import replace

from tinyevo.estimators.base import ESTIMATORS
from tinyevo.estimators.curves import CurveStopper
from tinyevo.estimators.fidelity import Fidelity
from tinyevo.estimators.inherit import WeightStore
from tinyevo.estimators.training_estimator import TrainingEstimator
from tinyevo.training import TrainConfig


def _short(config: TrainConfig, divisor: int) -> TrainConfig:
    return replace(config, epochs=max(1, round(config.epochs / divisor)))


@ESTIMATORS.register("train")
def full_training(*, config: TrainConfig | None = None) -> TrainingEstimator:
    """Full training (TrainConfig epochs, cosine schedule) and validation accuracy."""
    return TrainingEstimator(config=config or TrainConfig(), name="train")


@ESTIMATORS.register("lowfi")
def low_fidelity(*, config: TrainConfig | None = None) -> TrainingEstimator:
    """Low fidelity: a quarter of the epochs on a quarter of the training data, half-width networks."""
    return TrainingEstimator(
        config=_short(config or TrainConfig(), 4),
        fidelity=Fidelity(data_fraction=0.25, width_multiplier=0.5),
        name="lowfi",
    )


@ESTIMATORS.register("lowres")
def low_resolution(*, config: TrainConfig | None = None) -> TrainingEstimator:
    """Low fidelity: half the epochs on inputs downscaled to half the height and width."""
    return TrainingEstimator(
        config=_short(config or TrainConfig(), 2), fidelity=Fidelity(resolution_scale=0.5), name="lowres"
    )


@ESTIMATORS.register("lc")
def learning_curve(*, config: TrainConfig | None = None) -> TrainingEstimator:
    """Full training with learning-curve extrapolation: stops runs that cannot reach the top-5."""
    return TrainingEstimator(config=config or TrainConfig(), early_stop=CurveStopper(), name="lc")


@ESTIMATORS.register("inherit")
def weight_inheritance(*, config: TrainConfig | None = None) -> TrainingEstimator:
    """Weight inheritance from the parent (in-memory store), then a fifth of the epochs."""
    return TrainingEstimator(config=_short(config or TrainConfig(), 5), inherit=WeightStore(), name="inherit")
