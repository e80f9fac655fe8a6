"""The one training loop: :func:`train`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from tinyevo.data import Dataset
from tinyevo.errors import DataError, EstimationError
from tinyevo.training.evaluate import accuracy, to_tensor
from tinyevo.training.memory_format import ChannelsLast
from tinyevo.training.recipe import Recipe, augment, clip_grad_norm, make_optimizer, resolve_device
from tinyevo.training.state import Callback, EpochRecord, TrainState
from tinyevo.training.steps import StandardStep, Step

Evaluate = Callable[[nn.Module, torch.Tensor, torch.Tensor], float]
"""``evaluate(model, x_val, y_val) -> score`` at each evaluation point (default: top-1 accuracy)."""


@dataclass(frozen=True)
class Fitted:
    """What :func:`train` gives back besides the trained model: the learning curve, and whether a callback
    stopped training early (``"early"``; a :class:`TimeBudget` stop is not early)."""

    history: tuple[EpochRecord, ...]
    stopped_early: bool


def train(
    model: nn.Module,
    data: Dataset,
    recipe: Recipe,
    *,
    seed: int,
    step: Step | None = None,
    callbacks: Sequence[Callback] = (),
    evals_per_epoch: int = 1,
    evaluate: Evaluate | None = None,
) -> Fitted:
    """Train ``model`` (any module mapping NCHW float batches to logits) in place on ``data.x_train`` with
    ``recipe``; each batch goes through ``step`` (default :class:`StandardStep` with cross-entropy), then the
    gradients are clipped (``recipe.grad_clip``) and the optimiser steps at the scheduled learning rate.

    Deterministic given ``seed``: the batch order and the augmentation come from generators derived from it (the
    global RNGs are not touched); the model's initial weights are the caller's. The validation accuracy
    (``evaluate``) is measured ``evals_per_epoch`` times per epoch; each point is an :class:`EpochRecord` passed
    to the callbacks, which may stop training or re-plan the schedule. The model is moved to ``recipe.device``
    and left there, in eval mode. Raises :class:`EstimationError` when the loss becomes NaN or infinite (checked
    at every evaluation point, without a host sync per step).
    """
    device = resolve_device(recipe.device)
    step = step if step is not None else StandardStep()
    model.to(device)
    input_shape = tuple(data.x_train.shape[1:])
    step.prepare(model, device, input_shape)
    channels_last = recipe.channels_last if recipe.channels_last is not None else device.type == "cpu"
    nets = [m for m in (model, *step.modules())
            if channels_last and any(p.ndim == 4 for p in m.parameters())]
    layout = ChannelsLast(nets)  # but the conv shapes that crash oneDNN's backward pass (memory_format.py)
    try:
        return _run(model, data, recipe, seed=seed, device=device, step=step, callbacks=callbacks,
                    evals_per_epoch=evals_per_epoch, evaluate=evaluate)
    finally:
        layout.undo()  # the models are given back in the usual memory order


def _run(model: nn.Module, data: Dataset, recipe: Recipe, *, seed: int, device: torch.device, step: Step,
         callbacks: Sequence[Callback], evals_per_epoch: int, evaluate: Evaluate | None) -> Fitted:
    n = len(data.x_train)
    if n < 2:
        raise DataError("need at least two training samples")
    x, y = to_tensor(data.x_train).to(device), to_tensor(data.y_train).to(device)
    xv, yv = to_tensor(data.x_val).to(device), to_tensor(data.y_val).to(device)
    if evaluate is None:
        def evaluate(m: nn.Module, xs: torch.Tensor, ys: torch.Tensor) -> float:
            return accuracy(m, xs, ys, batch_size=recipe.eval_batch_size)
    rng = np.random.default_rng(seed)
    gen = torch.Generator(device=device).manual_seed(int(rng.integers(2**62)))
    bs = min(recipe.batch_size, n)
    steps_per_epoch = n // bs + (1 if n % bs >= 2 else 0)  # a last batch of one sample would break BatchNorm
    eval_points = {
        min(steps_per_epoch, max(1, round(steps_per_epoch * (i + 1) / evals_per_epoch)))
        for i in range(max(1, evals_per_epoch))
    }
    cbs = tuple(sorted(callbacks, key=lambda c: c.order))
    identity = {
        "recipe": recipe.math(), "step": step.signature(), "seed": seed, "n": n,
        "shapes": {k: list(v.shape) for k, v in model.state_dict().items()},
        "callbacks": sorted(c.key for c in cbs if c.key),
    }
    state = TrainState(model=model, optimizer=make_optimizer(model, recipe), recipe=recipe, device=device, rng=rng,
                       gen=gen, steps_per_epoch=steps_per_epoch,
                       warmup=int(round(recipe.warmup_epochs * steps_per_epoch)), identity=identity, callbacks=cbs,
                       planned=recipe.epochs)
    for cb in cbs:
        cb.on_train_start(state)
    opt = state.optimizer
    model.train()
    clipped = [p for p in model.parameters() if p.requires_grad]  # listed once, not at every step
    one_kind = len({(p.device, p.dtype) for p in clipped}) <= 1
    while state.epoch < min(recipe.epochs, state.planned) and state.stop is None:
        epoch = state.epoch
        perm = torch.from_numpy(rng.permutation(n)).to(device)
        running, seen = torch.zeros((), device=device), 0  # summed on the device: no sync per step on a GPU
        epoch_start = time.perf_counter()
        for i in range(steps_per_epoch):
            idx = perm[i * bs : (i + 1) * bs]
            xb, yb = x[idx], y[idx]
            if recipe.augment:
                xb = augment(xb, recipe, gen)
            lr = state.lr_at(state.step)
            for g in opt.param_groups:
                g["lr"] = lr
            opt.zero_grad(set_to_none=True)
            loss = step(model, xb, yb)
            if recipe.grad_clip is not None:
                if one_kind:
                    clip_grad_norm(clipped, recipe.grad_clip)
                else:  # pragma: no cover - a model split over devices or dtypes
                    nn.utils.clip_grad_norm_(clipped, recipe.grad_clip)
            opt.step()
            state.step += 1
            running += loss.detach() * len(idx)
            seen += len(idx)
            if i + 1 in eval_points:
                train_loss = float(running) / max(seen, 1)
                # a NaN or infinite loss makes the running sum non-finite: divergence is caught here, at every
                # evaluation point (at least once an epoch) and before a callback sees the record, without a
                # host sync at every step (which cost 4 % of a small CPU model's step)
                if not math.isfinite(train_loss):
                    raise EstimationError(f"training diverged: the loss became {train_loss} in epoch {epoch + 1}")
                t_eval = time.perf_counter()
                val_acc = evaluate(model, xv, yv)
                model.train()
                elapsed = state.elapsed()
                state.eval_seconds += time.perf_counter() - t_eval
                rec = EpochRecord(epoch=epoch + (i + 1) / steps_per_epoch, train_loss=train_loss, val_acc=val_acc,
                                  lr=lr, seconds=elapsed, eval_seconds=state.eval_seconds,
                                  planned_epochs=state.planned)
                state.history.append(rec)
                for cb in cbs:
                    cb.on_evaluate(state, rec)
                if state.stop is not None:
                    break
        if state.stop is not None:
            break
        state.epoch = epoch + 1
        state.epoch_seconds = time.perf_counter() - epoch_start
        for cb in cbs:
            cb.on_epoch_end(state)
    history = state.history
    if state.stop is None and history and history[-1].planned_epochs != state.planned:
        history[-1] = replace(history[-1], planned_epochs=state.planned)  # the last re-plan came after the record
    for cb in cbs:
        cb.on_train_end(state)
    model.eval()
    return Fitted(history=tuple(history), stopped_early=state.stop == "early")
