"""Training an :class:`~tinyevo.ir.ArchIR` from a :class:`TrainConfig`: :func:`train_model` (build, train, measure
on every split: the final retraining) and :func:`fit` (train a built model; the training estimator's entry)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from tinyevo.data import Dataset, resize
from tinyevo.errors import DataError
from tinyevo.ir import ArchIR
from tinyevo.nn import build_model
from tinyevo.training.callbacks import best_record
from tinyevo.training.config import TrainConfig
from tinyevo.training.evaluate import accuracy
from tinyevo.training.loop import train
from tinyevo.training.recipe import cudnn_autotune, resolve_device, torch_threads
from tinyevo.training.state import EpochRecord
from tinyevo.training.steps import StandardStep

Monitor = Callable[[EpochRecord], bool]
"""Called at each evaluation point; returning True stops training (a :class:`~tinyevo.training.CurveMonitor`)."""


@dataclass(frozen=True)
class TrainResult:
    """A trained model (in eval mode), its learning curve and final metrics (``val_acc``, ``test_acc``,
    ...)."""

    model: nn.Module
    history: tuple[EpochRecord, ...]
    metrics: Mapping[str, float] = field(default_factory=dict)
    stopped_early: bool = False


def fit_data_to_ir(ir: ArchIR, data: Dataset) -> Dataset:
    """``data`` resized to the IR's input resolution (spaces may search over it); channels must agree."""
    c, h, w = ir.input_shape
    if c != data.input_shape[0]:
        raise DataError(
            f"the architecture expects {c} input channel(s) but the data {data.name!r} has "
            f"{data.input_shape[0]}"
        )
    return data if (h, w) == data.input_shape[1:] else resize(data, (h, w))


def with_val_in_train(data: Dataset) -> Dataset:
    """``data`` whose training split also holds the validation rows (appended; the validation split stays as it
    is, for the learning curve): :class:`TrainConfig`'s ``train_on_val``."""
    return data.with_splits(x_train=np.concatenate([data.x_train, data.x_val]),
                            y_train=np.concatenate([data.y_train, data.y_val]))


def fit(
    model: nn.Module,
    data: Dataset,
    *,
    config: TrainConfig,
    seed: int,
    monitor: Monitor | None = None,
    evals_per_epoch: int = 1,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every_s: float = 60.0,
    checkpoint_tag: str = "",
    teacher: nn.Module | None = None,
) -> tuple[tuple[EpochRecord, ...], bool]:
    """Train ``model`` in place on ``data.x_train`` as ``config`` says; returns (learning curve, stopped early by
    the ``monitor``). :func:`tinyevo.training.train` with ``config``'s recipe, its loss (distilled from
    ``teacher`` when given) and its callbacks (``monitor``: a :class:`~tinyevo.training.CurveMonitor`;
    ``checkpoint``: a :class:`~tinyevo.training.Checkpoint` file saved at most every ``checkpoint_every_s``).
    The model is moved to ``config.device`` and left there."""
    callbacks = config.callbacks(monitor=monitor, checkpoint=checkpoint,
                                 checkpoint_every_s=checkpoint_every_s, checkpoint_tag=checkpoint_tag)
    done = train(model, data, config.recipe, seed=seed, step=StandardStep(config.loss(teacher)),
                 callbacks=callbacks, evals_per_epoch=evals_per_epoch)
    return done.history, done.stopped_early


def train_model(
    ir: ArchIR,
    data: Dataset,
    *,
    config: TrainConfig,
    seed: int,
    init_state: Mapping[str, torch.Tensor] | None = None,
    monitor: Monitor | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    teacher: nn.Module | None = None,
) -> TrainResult:
    """Build ``ir`` with weights from ``seed`` (or ``init_state``), train it, and measure it on every split.

    This is the final retraining: ``metrics`` holds ``val_acc`` and ``train_loss`` (of the last evaluation, or
    with ``config.restore_best`` of the one whose weights were restored, whose epoch is then ``epoch_restored``),
    ``test_acc``, ``train_acc`` (on the training split, in eval mode), ``train_time_s`` (including the time
    trained before a checkpoint this training resumed from), ``epochs`` (those trained, fractional when stopped
    within one), ``epochs_configured`` and ``epochs_planned`` (those the schedule spanned after fitting it to
    ``config.time_limit_s``). With ``config.train_on_val`` the validation split is trained on too: its accuracy
    is then reported as ``val_acc_seen`` and ``val_acc`` is NaN. Data of another resolution than the IR's input
    is resized to it. ``checkpoint``: see :func:`fit` (a training that started from ``init_state`` resumes only
    from its own checkpoints). ``teacher``: distil from this trained network; it is given back on the CPU.
    """
    data = fit_data_to_ir(ir, data)
    if config.train_on_val:
        data = with_val_in_train(data)
    with torch_threads(config.threads), cudnn_autotune(resolve_device(config.device)):
        model = build_model(ir, seed=seed)
        if init_state is not None:
            model.load_state_dict(init_state)
        start = time.perf_counter()
        history, stopped = fit(model, data, config=config, seed=seed, monitor=monitor, checkpoint=checkpoint,
                               checkpoint_tag="from-init-state" if init_state is not None else "", teacher=teacher)
        # (a resumed training's records count the time trained before its checkpoint too)
        train_time = max(time.perf_counter() - start, history[-1].seconds if history else 0.0)
        kept = (best_record(history) if config.restore_best else None) or (history[-1] if history else None)
        metrics = {
            "val_acc": kept.val_acc if kept is not None else math.nan,
            "test_acc": accuracy(model, data.inputs("test"), data.y_test, batch_size=config.eval_batch_size),
            "train_acc": accuracy(model, data.inputs("train"), data.y_train, batch_size=config.eval_batch_size),
            "train_loss": kept.train_loss if kept is not None else math.nan,
            "train_time_s": train_time,
            "epochs": history[-1].epoch if history else 0.0,
            "epochs_configured": float(config.epochs),
            "epochs_planned": float(history[-1].planned_epochs) if history else float(config.epochs),
        }
        if config.restore_best and kept is not None:
            metrics["epoch_restored"] = kept.epoch
        if config.train_on_val:  # the validation split was trained on: its accuracy is no held-out estimate
            metrics["val_acc_seen"] = metrics["val_acc"]
            metrics["val_acc"] = math.nan
        model.to("cpu")
        if teacher is not None:
            teacher.to("cpu")
    return TrainResult(model=model, history=history, metrics=metrics, stopped_early=stopped)
