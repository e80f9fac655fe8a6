"""The training-based estimator, composed from operator objects (pymoo style)::

    TrainingEstimator(
        config=TrainConfig(epochs=3),                        # fewer epochs = low fidelity
        fidelity=Fidelity(data_fraction=0.25, width_multiplier=0.5),
        early_stop=CurveStopper(min_epochs=1, top_k=5),      # learning-curve extrapolation
        inherit=WeightStore("run/weights"),                  # weight inheritance from the parent
    )

Metrics: ``val_acc`` (final validation accuracy, fraction), ``train_time_s``, ``epochs`` (trained), and, when
the components are present, ``stopped_early`` (1.0 / 0.0), ``predicted_val_acc`` and ``inherited_fraction``.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict

from tinyevo.data import Dataset
from tinyevo.errors import ConfigError
from tinyevo.estimators.base import EvalContext
from tinyevo.estimators.curves import CurveStopper
from tinyevo.estimators.fidelity import Fidelity
from tinyevo.estimators.inherit import WeightStore, inherit_weights
from tinyevo.estimators.training import EpochRecord, TrainConfig, fit, fit_data_to_ir, torch_threads
from tinyevo.ir import ArchIR
from tinyevo.nn import build_model


class TrainingEstimator:
    """Trains each candidate (at the given fidelity) and reports its validation accuracy."""

    def __init__(
        self,
        *,
        config: TrainConfig | None = None,
        fidelity: Fidelity | None = None,
        early_stop: CurveStopper | None = None,
        inherit: WeightStore | None = None,
        name: str = "train",
        cache_size: int = 4,
    ) -> None:
        self.config = config or TrainConfig()
        self.fidelity = fidelity or Fidelity()
        self.early_stop = early_stop
        self.inherit = inherit
        self.name = name
        self.finished: list[float] = []  # val_acc of candidates this estimator trained to the end
        self._cache: OrderedDict[tuple[int, tuple[int, int]], tuple[Dataset, Dataset]] = OrderedDict()
        self._cache_size = cache_size

    def __getstate__(self) -> dict[str, object]:  # derived data sets are not shipped to worker processes
        state = dict(self.__dict__)
        state["_cache"] = OrderedDict()
        return state

    def prepare(self, ir: ArchIR, data: Dataset) -> tuple[ArchIR, Dataset]:
        """The (IR, data) pair actually trained: data at the IR's resolution, then the fidelity transforms."""
        key = (id(data), ir.input_shape[1:])
        hit = self._cache.get(key)
        if hit is not None and hit[0] is data:
            self._cache.move_to_end(key)
            small = hit[1]
        else:
            small = self.fidelity.transform_data(fit_data_to_ir(ir, data))
            self._cache[key] = (data, small)  # keeps ``data`` alive, so its id stays unique
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return self.fidelity.transform_ir(ir, small), small

    def evaluate(
        self, ir: ArchIR, data: Dataset, *, seed: int, context: EvalContext | None = None
    ) -> dict[str, float]:
        ctx = context or EvalContext()
        ir2, data2 = self.prepare(ir, data)
        if len(data2.x_val) == 0:
            raise ConfigError("the data has no validation split (val_fraction=0); estimators score on it")
        metrics: dict[str, float] = {}
        monitor = None
        predicted: list[float] = []
        if self.early_stop is not None:
            stopper = self.early_stop
            threshold = stopper.threshold([*self.finished, *ctx.finished_scores])
            curve: list[EpochRecord] = []

            def monitor(rec: EpochRecord) -> bool:
                curve.append(rec)
                stop, pred = stopper.should_stop(
                    [r.epoch for r in curve], [r.val_acc for r in curve],
                    horizon=float(self.config.epochs), threshold=threshold,
                )
                if pred is not None:
                    predicted.append(pred)
                return stop

        with torch_threads(self.config.threads):
            start = time.perf_counter()
            model = build_model(ir2, seed=seed)
            if self.inherit is not None:
                parent = ctx.parent_state
                if parent is None:
                    parent = next((s for s in map(self.inherit.get, ctx.parents) if s is not None), None)
                metrics["inherited_fraction"] = (
                    inherit_weights(model, parent).fraction if parent is not None else 0.0  # type: ignore[arg-type]
                )
            history, stopped = fit(
                model, data2, config=self.config, seed=seed, monitor=monitor,
                evals_per_epoch=self.early_stop.evals_per_epoch if self.early_stop is not None else 1,
            )
            elapsed = time.perf_counter() - start
        val_acc = history[-1].val_acc if history else math.nan
        metrics.update(val_acc=val_acc, train_time_s=elapsed, epochs=history[-1].epoch if history else 0.0)
        if self.early_stop is not None:
            metrics["stopped_early"] = 1.0 if stopped else 0.0
            metrics["predicted_val_acc"] = predicted[-1] if stopped and predicted else val_acc
            if not stopped and math.isfinite(val_acc):
                self.finished.append(val_acc)
        if self.inherit is not None and ctx.genome is not None:
            self.inherit.put(ctx.genome, model.state_dict())
        return metrics
