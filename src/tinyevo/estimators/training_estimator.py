"""The training-based estimator, composed from operator objects (pymoo style)::

    TrainingEstimator(
        config=TrainConfig(epochs=3),                        # fewer epochs = low fidelity
        fidelity=Fidelity(data_fraction=0.25, width_multiplier=0.5),
        early_stop=CurveStopper(min_epochs=1, top_k=5),      # learning-curve extrapolation
        inherit=WeightStore("run/weights"),                  # weight inheritance from the parent
    )

``teacher`` (a trained network, e.g. :func:`tinyevo.run.retraining.load_teacher`; ``teacher = "RUN:N"`` in a run config,
``tinyevo search --teacher RUN:N``): every candidate trains by knowledge distillation from it (:class:`~tinyevo.training.Distillation`).

Metrics: ``val_acc`` (final validation accuracy, fraction), ``train_time_s``, ``epochs`` (trained), and, when
the components are present, ``stopped_early`` (1.0 / 0.0), ``predicted_val_acc`` and ``inherited_fraction``.

Pruning as an estimator option (``TrainConfig(prune_ratio=0.5)``, ``[train] prune_ratio = 0.5`` in a run config):
after training, the candidate is pruned to that ratio (structured L1 channel pruning,
:func:`tinyevo.nn.prune.prune_channels`) and fine-tuned for ``prune_finetune_epochs``; ``val_acc`` is then the
pruned model's, and the metrics add ``unpruned_val_acc``, ``pruned_fraction`` (of the prunable channels),
``prune_time_s`` (included in ``train_time_s``) and the pruned architecture's int8 cost from
:func:`tinyevo.cost.estimate_cost`: ``pruned_params``, ``pruned_macs``, ``pruned_flash_bytes``,
``pruned_peak_sram_bytes``. The cost is that of the candidate at full size: when the fidelity trains a
width-scaled network, each conv keeps the fraction of its channels that pruning kept in the trained network.
Learning-curve early stopping compares the unpruned curve (its own record holds unpruned accuracies); weight
inheritance stores the unpruned weights (children inherit from the parent's architecture, not its pruned one).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import replace
from typing import TYPE_CHECKING

from torch import nn

from tinyevo.data import Dataset
from tinyevo.errors import ConfigError
from tinyevo.estimators.base import EvalContext
from tinyevo.estimators.curves import CurveStopper
from tinyevo.estimators.fidelity import Fidelity
from tinyevo.estimators.inherit import WeightStore, inherit_weights
from tinyevo.estimators.transforms import rebuild
from tinyevo.ir import ArchIR, Conv2d, Node, Op, Shape
from tinyevo.nn import build_model
from tinyevo.training import (
    EpochRecord,
    StandardStep,
    TrainConfig,
    accuracy,
    fit_data_to_ir,
    recalibrate_batchnorm,
    torch_threads,
    train,
)

if TYPE_CHECKING:
    from tinyevo.cost import MCUCostModel


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
        teacher: nn.Module | None = None,
    ) -> None:
        self.config = config or TrainConfig()
        if self.config.train_on_val:
            raise ConfigError("train_on_val is for the final training: a search scores candidates on the "
                              "validation split, so it must stay unseen")
        self.teacher = teacher  # when set, candidates train by distillation from it
        self.fidelity = fidelity or Fidelity()
        self.early_stop = early_stop
        self.inherit = inherit
        self.name = name
        self.finished: list[float] = []  # val_acc of candidates this estimator trained to the end
        self._cache: OrderedDict[tuple[int, tuple[int, int]], tuple[Dataset, Dataset]] = OrderedDict()
        self._cache_size = cache_size

    def configured(self, *, fidelity: Fidelity | None = None, teacher: nn.Module | None = None) -> TrainingEstimator:
        """A new estimator like this one with another ``fidelity`` and / or ``teacher`` (None: this one's)."""
        return TrainingEstimator(config=self.config, fidelity=fidelity or self.fidelity, early_stop=self.early_stop,
                                 inherit=self.inherit, name=self.name, cache_size=self._cache_size,
                                 teacher=teacher if teacher is not None else self.teacher)

    @property
    def metric_names(self) -> frozenset[str]:
        """The metrics :meth:`evaluate` returns with these components (what a run may optimise)."""
        names = {"val_acc", "train_time_s", "epochs"}
        if self.inherit is not None:
            names.add("inherited_fraction")
        if self.config.prune_ratio > 0:
            names |= {"unpruned_val_acc", "prune_time_s", "pruned_fraction", "pruned_params", "pruned_macs",
                      "pruned_flash_bytes", "pruned_peak_sram_bytes"}
        if self.early_stop is not None:
            names |= {"stopped_early", "predicted_val_acc"}
        return frozenset(names)

    def __getstate__(self) -> dict[str, object]:  # derived data sets are not shipped to worker processes
        state = dict(self.__dict__)
        state["_cache"] = OrderedDict()
        state.pop("_run_stores", None)
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

        store = self._store(ctx)
        with torch_threads(self.config.threads):
            start = time.perf_counter()
            model = build_model(ir2, seed=seed)
            if store is not None:
                parent = ctx.parent_state
                if parent is None:
                    parent = next((s for s in map(store.get, ctx.parents) if s is not None), None)
                metrics["inherited_fraction"] = (
                    inherit_weights(model, parent).fraction if parent is not None else 0.0  # type: ignore[arg-type]
                )
            done = train(
                model, data2, self.config.recipe, seed=seed, step=StandardStep(self.config.loss(self.teacher)),
                callbacks=self.config.callbacks(monitor=monitor),
                evals_per_epoch=self.early_stop.evals_per_epoch if self.early_stop is not None else 1,
            )
            history, stopped = done.history, done.stopped_early
            model.to("cpu")  # train leaves it on the training device
            val_acc = history[-1].val_acc if history else math.nan
            if self.config.prune_ratio > 0:
                t_prune = time.perf_counter()
                metrics.update(self._prune(ir, ir2, data2, model, seed=seed, cost_model=ctx.cost_model))
                metrics["unpruned_val_acc"] = val_acc
                metrics["prune_time_s"] = time.perf_counter() - t_prune
            elapsed = time.perf_counter() - start
        metrics.update(val_acc=metrics.pop("pruned_val_acc", val_acc), train_time_s=elapsed,
                       epochs=history[-1].epoch if history else 0.0)
        if self.early_stop is not None:
            metrics["stopped_early"] = 1.0 if stopped else 0.0
            metrics["predicted_val_acc"] = predicted[-1] if stopped and predicted else val_acc
            if not stopped and math.isfinite(val_acc):
                self.finished.append(val_acc)  # unpruned: the curves it is compared with are
        if store is not None and ctx.genome is not None:
            store.put(ctx.genome, model.state_dict())
        return metrics

    def _store(self, ctx: EvalContext) -> WeightStore | None:
        """The weight store of this evaluation: the run's (``ctx.store_dir``) when the estimator's own store keeps
        its weights in memory only -- a per-process memory would make inheritance depend on which worker trained
        the parent, and would be empty after a resume."""
        if self.inherit is None or ctx.store_dir is None or self.inherit.directory is not None:
            return self.inherit
        stores = self.__dict__.setdefault("_run_stores", {})
        if ctx.store_dir not in stores:
            stores.clear()
            stores[ctx.store_dir] = WeightStore(ctx.store_dir, max_items=self.inherit.max_items)
        return stores[ctx.store_dir]

    def _prune(self, ir: ArchIR, trained: ArchIR, data: Dataset, model: nn.Module, *, seed: int,
               cost_model: MCUCostModel | None = None) -> dict[str, float]:
        """Prune the trained ``model`` (of IR ``trained``), fine-tune it, and measure it (``pruned_*``, priced
        with the run's ``cost_model``: precision, planner and SRAM convention)."""
        from tinyevo.cost import MCUCostModel
        from tinyevo.nn.prune import prune_channels

        cfg = self.config
        pruned = prune_channels(trained, model.state_dict(), cfg.prune_ratio)
        small = build_model(pruned.ir, seed=seed)
        small.load_state_dict(pruned.state_dict)
        recalibrate_batchnorm(small, data.x_train, seed=seed)  # stale statistics after pruning; no weight change
        if cfg.prune_finetune_epochs > 0:
            tune = cfg.finetune_config
            history = train(small, data, tune.recipe, seed=seed, step=StandardStep(tune.loss()),
                            callbacks=tune.callbacks()).history
            val_acc = history[-1].val_acc if history else math.nan
        else:
            val_acc = accuracy(small, data.x_val, data.y_val, batch_size=cfg.eval_batch_size)
        cost = (cost_model or MCUCostModel()).estimate(pruned_at_full_size(ir, trained, pruned.ir))
        return {
            "pruned_val_acc": val_acc, "pruned_fraction": pruned.removed_fraction,
            "pruned_params": float(cost.params), "pruned_macs": float(cost.macs),
            "pruned_flash_bytes": float(cost.flash_bytes), "pruned_peak_sram_bytes": float(cost.peak_sram_bytes),
        }


def pruned_at_full_size(ir: ArchIR, trained: ArchIR, pruned: ArchIR) -> ArchIR:
    """``ir`` pruned as ``trained`` (a fidelity-transformed ``ir``: other resolution / widths) was pruned into
    ``pruned``: each dense conv keeps the same fraction of its channels (rounded, at least one). Exact when
    ``trained`` has ``ir``'s widths (only the input resolution differs, or nothing)."""
    if trained == ir:
        return pruned

    def op_for(node: Node, shapes: tuple[Shape, ...]) -> Op:
        op = node.op
        if isinstance(op, Conv2d) and op.groups == 1:
            before = trained.node(node.name).op.out_channels  # type: ignore[attr-defined]
            after = pruned.node(node.name).op.out_channels  # type: ignore[attr-defined]
            if after != before:
                return replace(op, out_channels=max(1, round(op.out_channels * after / before)))
        return op

    return rebuild(ir, op_for=op_for)
