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
from tinyevo.training.evaluate import accuracy, input_batches, to_tensor
from tinyevo.training.memory_format import ChannelsLast
from tinyevo.training.optim import GradClip
from tinyevo.training.recipe import Recipe, augment, make_optimizer, resolve_device
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
    if any(t.device != device for t in (*model.parameters(), *model.buffers())):
        model.to(device)  # (not a no-op call per tensor when the model is there already: a candidate's fixed cost)
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
    # batches are gathered from the data set's bytes where it has them (8-bit images: a quarter of the memory
    # read), converted to the float32 values of its arrays bit for bit (ByteBatches)
    x, y = input_batches(data.inputs("train"), device), to_tensor(data.y_train).to(device)
    yv = to_tensor(data.y_val).to(device)
    score: Callable[[nn.Module], float]
    if evaluate is None:
        xv = input_batches(data.inputs("val"), device)

        def score(m: nn.Module) -> float:
            return accuracy(m, xv, yv, batch_size=recipe.eval_batch_size)
    else:  # a caller's evaluation gets the float32 tensor, as it always did
        xv_float, custom = to_tensor(data.x_val).to(device), evaluate

        def score(m: nn.Module) -> float:
            return custom(m, xv_float, yv)
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
        "shapes": {k: list(v.shape) for k, v in model.state_dict(keep_vars=True).items()},
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
    clip = None
    if recipe.grad_clip is not None and len({(p.device, p.dtype) for p in clipped}) <= 1:
        clip = GradClip(clipped, recipe.grad_clip)  # a grad_scale for the fused optimiser step
    while state.epoch < min(recipe.epochs, state.planned) and state.stop is None:
        epoch = state.epoch
        perm = torch.from_numpy(rng.permutation(n)).to(device)
        # the losses of the steps since the last evaluation point, summed there: no op and no sync per step
        running, seen, pending, sizes = 0.0, 0, [], []
        epoch_start = time.perf_counter()
        for i, idx in zip(range(steps_per_epoch), perm.split(bs), strict=False):  # (a last batch of one: left out)
            xb, yb = x[idx], y[idx]
            if recipe.augment:
                xb = augment(xb, recipe, gen)
            lr = state.lr_at(state.step)
            opt.zero_grad()
            loss = step(model, xb, yb)
            scale = None
            if recipe.grad_clip is not None:
                if clip is not None:
                    scale = clip()
                else:  # pragma: no cover - a model split over devices or dtypes
                    nn.utils.clip_grad_norm_(clipped, recipe.grad_clip)
            opt.step(lr, grad_scale=scale)
            state.step += 1
            pending.append(loss.data)  # (.data: no autograd graph kept, and no op dispatched)
            sizes.append(len(idx))
            if i + 1 in eval_points:
                running += _weighted_sum(pending, sizes)
                seen += sum(sizes)
                pending, sizes = [], []
                train_loss = running / max(seen, 1)
                # a NaN or infinite loss makes the sum non-finite: divergence is caught here, at every
                # evaluation point (at least once an epoch) and before a callback sees the record, without a
                # host sync at every step (which cost 4 % of a small CPU model's step)
                if not math.isfinite(train_loss):
                    raise EstimationError(f"training diverged: the loss became {train_loss} in epoch {epoch + 1}")
                t_eval = time.perf_counter()
                val_acc = score(model)
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


def _weighted_sum(losses: list[torch.Tensor], sizes: list[int]) -> float:
    """``sum(loss * size)`` of per-batch mean losses (one host sync, at an evaluation point)."""
    if not losses:
        return 0.0
    chunk = torch.stack(losses).double().reshape(-1)  # (a loss of shape (1,) as well)
    return float(chunk @ torch.tensor(sizes, dtype=torch.float64, device=chunk.device))
