"""The loop's state, the learning-curve record, and the :class:`Callback` protocol that sees them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from tinyevo.training.optim import Optimizer
from tinyevo.training.recipe import Recipe, lr_at


@dataclass(frozen=True)
class EpochRecord:
    """One point of the learning curve (``epoch`` may be fractional when evaluated within an epoch)."""

    epoch: float
    train_loss: float
    val_acc: float
    lr: float
    seconds: float  # time since the start of training, validation included
    eval_seconds: float = 0.0  # of which spent measuring validation accuracy
    planned_epochs: int = 0  # the epochs the schedule spans (fewer than configured when fitted to a TimeBudget)


StopReason = Literal["early", "budget"]


@dataclass
class TrainState:
    """What the loop knows while it trains; callbacks read it and may change the plan or ask to stop.

    ``epoch``: epochs finished (during an epoch, the one running). ``step``: optimiser steps taken. ``planned``: the
    epochs the schedule spans (``recipe.epochs`` unless a callback such as :class:`TimeBudget` re-plans it), and
    ``anchor`` ``(step, lr)``: where a re-planned cosine restarts. ``epoch_seconds``: the duration of the epoch just
    finished (in ``on_epoch_end``). ``identity``: what must agree for a checkpoint of this training to be resumed
    (recipe math, step / loss signature, seed, data size, parameter shapes, stateful callbacks)."""

    model: nn.Module
    optimizer: Optimizer
    recipe: Recipe
    device: torch.device
    rng: np.random.Generator
    gen: torch.Generator
    steps_per_epoch: int
    warmup: int
    identity: dict[str, Any]
    callbacks: tuple[Callback, ...] = ()
    epoch: int = 0
    step: int = 0
    planned: int = 0
    anchor: tuple[int, float] | None = None
    history: list[EpochRecord] = field(default_factory=list)
    eval_seconds: float = 0.0
    epoch_seconds: float = 0.0
    start: float = field(default_factory=lambda: time.perf_counter())
    stop: StopReason | None = None

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.planned

    def lr_at(self, step: int) -> float:
        return lr_at(step, self.total_steps, self.warmup, self.recipe.resolved_lr, self.recipe.schedule, self.anchor)

    def elapsed(self) -> float:
        """Seconds trained, including those before a checkpoint this training resumed from."""
        return time.perf_counter() - self.start

    def request_stop(self, reason: StopReason) -> None:
        """Stop at the end of this evaluation point: ``"early"`` (the curve says it will not pay; reported as
        stopped early) or ``"budget"`` (out of time). The first request wins."""
        if self.stop is None:
            self.stop = reason

    # --- checkpointing ---

    def state_dict(self) -> dict[str, Any]:
        """The loop's resumable state (tensors on the CPU; loadable with ``torch.load(weights_only=True)``)."""
        return {
            "epoch": self.epoch, "step": self.step, "planned": self.planned,
            "anchor": None if self.anchor is None else [self.anchor[0], self.anchor[1]],
            "history": [dict(vars(h)) for h in self.history], "eval_seconds": self.eval_seconds,
            "np_rng": self.rng.bit_generator.state, "gen_device": self.device.type, "gen_state": self.gen.get_state(),
            "elapsed": self.elapsed(),
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.epoch, self.step, self.planned = int(saved["epoch"]), int(saved["step"]), int(saved["planned"])
        anchor = saved.get("anchor")
        self.anchor = None if anchor is None else (int(anchor[0]), float(anchor[1]))
        self.history = [EpochRecord(**h) for h in saved["history"]]
        self.eval_seconds = float(saved["eval_seconds"])
        self.rng.bit_generator.state = saved["np_rng"]
        if saved["gen_device"] == self.device.type:
            self.gen.set_state(saved["gen_state"])
        else:  # generator states do not move between device kinds
            self.gen.manual_seed(int(self.rng.integers(2**62)))
        self.start = time.perf_counter() - float(saved["elapsed"])


@runtime_checkable
class Callback(Protocol):
    """Hooks into :func:`tinyevo.training.train`. Callbacks run in ascending ``order`` (equal orders in the given
    order): a callback that decides (``RestoreBest`` 0, ``CurveMonitor`` 10, ``TimeBudget`` 20) runs before one
    that records (``Checkpoint`` 100, which saves what the others decided).

    ``key``: a non-empty name when the callback has state to checkpoint (:meth:`state_dict` /
    :meth:`load_state_dict`) and that state changes the result (then it is part of the training's identity)."""

    order: int
    key: str

    def on_train_start(self, state: TrainState) -> None: ...

    def on_evaluate(self, state: TrainState, record: EpochRecord) -> None:
        """After each evaluation point's record was appended to ``state.history``."""
        ...

    def on_epoch_end(self, state: TrainState) -> None:
        """After each full epoch (``state.epoch`` already counts it); not after a stop."""
        ...

    def on_train_end(self, state: TrainState) -> None:
        """Once, however training ended (not after an exception)."""
        ...

    def state_dict(self) -> dict[str, Any] | None: ...

    def load_state_dict(self, saved: dict[str, Any]) -> None: ...


class BaseCallback:
    """No-op hooks to inherit from."""

    order = 0
    key = ""

    def on_train_start(self, state: TrainState) -> None:
        return None

    def on_evaluate(self, state: TrainState, record: EpochRecord) -> None:
        return None

    def on_epoch_end(self, state: TrainState) -> None:
        return None

    def on_train_end(self, state: TrainState) -> None:
        return None

    def state_dict(self) -> dict[str, Any] | None:
        return None

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        return None
