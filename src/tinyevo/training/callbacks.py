"""Callbacks of the training loop: :class:`RestoreBest`, :class:`CurveMonitor`, :class:`TimeBudget`,
:class:`Checkpoint` (see :class:`~tinyevo.training.state.Callback` for the hooks and their order)."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from tinyevo.fsutil import atomic_write
from tinyevo.training.state import BaseCallback, EpochRecord, TrainState


def improves(val_acc: float, best: float | None) -> bool:
    """Whether an evaluation with ``val_acc`` beats the best so far (a NaN never does; the first of equals stays)."""
    return math.isfinite(val_acc) and (best is None or val_acc > best)


def best_record(history: Sequence[EpochRecord]) -> EpochRecord | None:
    """The evaluation whose weights :class:`RestoreBest` gives back: the first with the highest finite validation
    accuracy (None when there is none)."""
    kept: EpochRecord | None = None
    for rec in history:
        if improves(rec.val_acc, None if kept is None else kept.val_acc):
            kept = rec
    return kept


class RestoreBest(BaseCallback):
    """At the end, give back the weights of the evaluation with the highest validation accuracy (the first of
    equals) instead of the last ones (:func:`best_record` names it). Meant for a final retraining, whose
    validation curve is noisy; a search's fitness would be biased upwards by it."""

    order = 0
    key = "restore_best"

    def __init__(self) -> None:
        self.best: tuple[float, dict[str, torch.Tensor]] | None = None

    def on_train_start(self, state: TrainState) -> None:
        self.best = None

    def on_evaluate(self, state: TrainState, record: EpochRecord) -> None:
        if improves(record.val_acc, None if self.best is None else self.best[0]):
            self.best = (record.val_acc, {k: v.detach().clone() for k, v in state.model.state_dict().items()})

    def on_train_end(self, state: TrainState) -> None:
        if self.best is not None:
            state.model.load_state_dict(self.best[1])

    def state_dict(self) -> dict[str, Any] | None:
        if self.best is None:
            return None
        return {"val_acc": self.best[0], "model": {k: v.detach().cpu() for k, v in self.best[1].items()}}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.best = (float(saved["val_acc"]), saved["model"])


class CurveMonitor(BaseCallback):
    """Calls ``fn(record)`` at each evaluation point; ``True`` stops training early (learning-curve
    extrapolation hooks in here; the result then reports ``stopped_early``)."""

    order = 10

    def __init__(self, fn: Callable[[EpochRecord], bool]) -> None:
        self.fn = fn

    def on_evaluate(self, state: TrainState, record: EpochRecord) -> None:
        if self.fn(record):
            state.request_stop("early")


def epochs_within(epochs: int, epoch_s: float, left_s: float, *, done: int = 0) -> int:
    """How many of ``epochs`` can be trained in all: the ``done`` ones plus those that fit in the ``left_s``
    seconds left when one takes ``epoch_s`` (at least the ones done)."""
    if epoch_s <= 0.0:
        return epochs
    return max(max(1, done), min(epochs, done + math.floor(max(left_s, 0.0) / epoch_s)))


class TimeBudget(BaseCallback):
    """Bounds the training time to ``seconds``: the schedule is fitted to the epochs that fit, and training stops
    at the first evaluation point past the limit.

    The plan is made after the first epoch, and again after the second, whose time excludes one-off start-up costs
    (a GPU's kernel selection and warm-up make the first epoch several times slower). Until a quarter of the plan
    is done the plan follows the epoch times both ways (a machine shared at the start). Later it shrinks when epochs
    slow down (a shared GPU or CPU), so the schedule still ends in time, and grows again by two or more epochs when
    they speed up: the cosine then goes on from the current learning rate over the longer plan (an anchor), so the
    rate never jumps up. The time of every session of a resumed training counts."""

    order = 20

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self.epoch_times: list[float] = []

    def on_train_start(self, state: TrainState) -> None:
        self.epoch_times = []

    def on_evaluate(self, state: TrainState, record: EpochRecord) -> None:
        if record.seconds > self.seconds:
            state.request_stop("budget")

    def on_epoch_end(self, state: TrainState) -> None:
        epoch = state.epoch - 1  # the epoch just finished, from 0
        self.epoch_times.append(state.epoch_seconds)
        later = self.epoch_times[1:][-3:]  # the mean of the last three epochs, never the start-up one
        recent = self.epoch_times[-1] if epoch <= 1 else sum(later) / len(later)
        fits = epochs_within(state.recipe.epochs, recent, self.seconds - state.elapsed(), done=state.epoch)
        if epoch <= 1 or 4 * state.epoch <= state.planned:
            state.planned = fits
        elif fits >= state.planned + 2 and state.recipe.schedule == "cosine" and state.step >= state.warmup:
            state.anchor = (state.step, state.lr_at(state.step))
            state.planned = fits
        else:
            state.planned = min(state.planned, fits)

    def state_dict(self) -> dict[str, Any] | None:
        return {"epoch_times": list(self.epoch_times)}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.epoch_times = [float(t) for t in saved["epoch_times"]]


class Checkpoint(BaseCallback):
    """Saves the training state (weights, optimiser, schedule, RNG states, curve, time spent, and the state of the
    other callbacks) to ``path`` at the end of an epoch, at most every ``every_s`` seconds, and resumes from it when
    it exists and was written by the same training (recipe math, loss / step, seed, data size, parameter shapes,
    stateful callbacks, and ``tag``): a training killed at any point goes on where it was saved, with the same
    result as an uninterrupted one on the same device. A checkpoint of another training, or a damaged one, is
    ignored and overwritten. The file is a plain dict of tensors and numbers (``torch.load(path,
    weights_only=True)``). Resuming on another kind of device reseeds the augmentation stream."""

    order = 100

    def __init__(self, path: str | os.PathLike[str], *, every_s: float = 60.0, tag: str = "") -> None:
        self.path = path
        self.every_s = float(every_s)
        self.tag = tag
        self._last_save = 0.0
        self.resumed = False

    def fingerprint(self, state: TrainState) -> str:
        return json.dumps({**state.identity, "tag": self.tag}, sort_keys=True, default=str)

    def on_train_start(self, state: TrainState) -> None:
        saved = load_checkpoint(self.path, self.fingerprint(state))
        self.resumed = saved is not None
        if saved is not None:
            state.load_state_dict(saved["loop"])
            theirs = saved.get("callbacks", {})
            for cb in state.callbacks:
                own = theirs.get(_slot(cb))
                if cb is not self and own is not None:
                    cb.load_state_dict(own)
        self._last_save = time.perf_counter()

    def on_epoch_end(self, state: TrainState) -> None:
        if state.epoch >= state.planned or time.perf_counter() - self._last_save < self.every_s:
            return
        states: dict[str, Any] = {}
        for cb in state.callbacks:
            if cb is self:
                continue
            own = cb.state_dict()
            if own is not None:
                states[_slot(cb)] = own
        save_checkpoint(self.path, {"fingerprint": self.fingerprint(state), "loop": state.state_dict(),
                                    "callbacks": states})
        self._last_save = time.perf_counter()


def _slot(cb: Any) -> str:
    """Where a callback's state sits in a checkpoint."""
    return cb.key or type(cb).__name__


def load_checkpoint(path: str | os.PathLike[str], fingerprint: str) -> dict | None:
    """The checkpoint in ``path`` if it exists, is readable and matches ``fingerprint``; else None."""
    if not os.path.isfile(path):
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a damaged checkpoint only costs the time it saved
        return None
    return saved if isinstance(saved, dict) and saved.get("fingerprint") == fingerprint else None


def save_checkpoint(path: str | os.PathLike[str], state: dict) -> None:
    atomic_write(path, lambda fh: torch.save(state, fh))  # unique temp file + rename: no planted link followed
