"""Performance estimators: IR + data -> metrics (full / low-fidelity training, learning-curve early stopping,
weight inheritance, zero-cost proxies), selectable by name from :data:`ESTIMATORS`."""

from __future__ import annotations

from tinyevo.estimators import presets as _presets  # noqa: F401 - registers the named estimators
from tinyevo.estimators.base import (
    DEFAULT_ESTIMATOR,
    ESTIMATORS,
    Combined,
    Estimator,
    EvalContext,
    create_estimator,
    metric_names,
)
from tinyevo.estimators.curves import CurveStopper, predict_final
from tinyevo.estimators.fidelity import Fidelity
from tinyevo.estimators.inherit import InheritReport, WeightStore, inherit_weights
from tinyevo.estimators.proxies import (
    PROXIES,
    ProxyEstimator,
    grad_norm,
    naswot,
    proxy_score,
    rank_genomes,
    seed_population,
    synflow,
)
from tinyevo.estimators.training_estimator import TrainingEstimator
from tinyevo.training import (
    EpochRecord,
    TrainConfig,
    TrainResult,
    accuracy,
    fit,
    fit_data_to_ir,
    recalibrate_batchnorm,
    resolve_device,
    train_model,
)
from tinyevo.estimators.transforms import scale_width, with_input_shape

__all__ = [
    "DEFAULT_ESTIMATOR", "ESTIMATORS", "PROXIES", "Combined", "ProxyEstimator", "grad_norm", "naswot",
    "proxy_score", "metric_names",
    "rank_genomes", "seed_population", "synflow", "CurveStopper", "EpochRecord", "EvalContext", "Estimator",
    "Fidelity", "InheritReport", "TrainConfig", "TrainResult", "TrainingEstimator", "WeightStore", "accuracy",
    "create_estimator", "fit", "fit_data_to_ir", "inherit_weights", "predict_final", "scale_width",
    "train_model",
    "recalibrate_batchnorm",
    "resolve_device",
    "with_input_shape",
]
