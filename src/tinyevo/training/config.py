""":class:`TrainConfig`: the flat record of a run config's ``[train]`` / ``[final.train]`` tables, split into the
loop's parts (:attr:`TrainConfig.recipe`, :meth:`TrainConfig.loss`, :meth:`TrainConfig.callbacks`) where it is
used. New code composes those parts directly (:func:`tinyevo.training.train`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Literal

from torch import nn

from tinyevo.errors import ConfigError
from tinyevo.training.callbacks import Checkpoint, CurveMonitor, RestoreBest, TimeBudget
from tinyevo.training.losses import CrossEntropy, Distillation, Loss
from tinyevo.training.recipe import Recipe
from tinyevo.training.state import Callback, EpochRecord

_RECIPE_FIELDS = tuple(f.name for f in fields(Recipe))


@dataclass(frozen=True)
class TrainConfig:
    """How to train, as one flat record (keyword-only): the :class:`~tinyevo.training.Recipe` fields (optimiser,
    schedule, epochs, batch size, clipping, augmentation, threads, device, channels_last; see there), and:

    * ``label_smoothing``; ``distill_alpha`` / ``distill_temperature`` (used when a teacher is given:
      :class:`~tinyevo.training.Distillation`) -- the loss, :meth:`loss`;
    * ``time_limit_s`` (:class:`~tinyevo.training.TimeBudget`) and ``restore_best``
      (:class:`~tinyevo.training.RestoreBest`) -- callbacks, :meth:`callbacks`;
    * ``prune_ratio`` / ``prune_finetune_epochs`` / ``prune_finetune_lr``: the training estimator evaluates each
      candidate after structured channel pruning and that fine-tuning (:attr:`finetune_config`); the final
      retraining ignores them;
    * ``train_on_val``: the final retraining trains on the training *and* validation splits
      (:class:`~tinyevo.training.RetrainPlan` ``data="train+val"``); not for a search, nor with ``restore_best``.
    """

    epochs: int = 10
    batch_size: int = 128
    optimizer: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: float | None = None
    weight_decay: float | None = None
    momentum: float = 0.9
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    grad_clip: float | None = 5.0
    augment: tuple[str, ...] = ()
    shift_pixels: int = 2
    threads: int | None = None
    eval_batch_size: int = 1024
    time_limit_s: float | None = None
    prune_ratio: float = 0.0
    prune_finetune_epochs: int = 1
    prune_finetune_lr: float | None = None
    device: str = "cpu"
    channels_last: bool | None = None
    distill_alpha: float = 0.9
    distill_temperature: float = 4.0
    restore_best: bool = False
    train_on_val: bool = False

    def __post_init__(self) -> None:
        self.recipe  # noqa: B018 - validates the recipe's fields
        if not isinstance(self.restore_best, bool):
            raise ConfigError(f"restore_best must be true or false, got {self.restore_best!r}")
        if not isinstance(self.train_on_val, bool):
            raise ConfigError(f"train_on_val must be true or false, got {self.train_on_val!r}")
        if self.train_on_val and self.restore_best:
            raise ConfigError("restore_best picks weights by validation accuracy, which train_on_val trains on; "
                              "use one of them")
        CrossEntropy(self.label_smoothing)  # validates
        ratio = self.prune_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= ratio < 1.0:
            raise ConfigError(f"prune_ratio must be a fraction in [0, 1), got {ratio!r}")
        epochs = self.prune_finetune_epochs
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ConfigError(f"prune_finetune_epochs must be an integer >= 0, got {epochs!r}")
        if self.prune_finetune_lr is not None and not self.prune_finetune_lr > 0:
            raise ConfigError(f"prune_finetune_lr must be positive, got {self.prune_finetune_lr}")
        alpha, temp = self.distill_alpha, self.distill_temperature
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"distill_alpha must be in [0, 1], got {alpha!r}")
        if isinstance(temp, bool) or not isinstance(temp, (int, float)) or not temp > 0:
            raise ConfigError(f"distill_temperature must be positive, got {temp!r}")

    @property
    def recipe(self) -> Recipe:
        """How to optimise: the :class:`Recipe` part of this record."""
        return Recipe(**{name: getattr(self, name) for name in _RECIPE_FIELDS})

    def loss(self, teacher: nn.Module | None = None) -> Loss:
        """Cross-entropy (with ``label_smoothing``), distilled from ``teacher`` when one is given."""
        hard = CrossEntropy(self.label_smoothing)
        if teacher is None:
            return hard
        return Distillation(teacher, alpha=self.distill_alpha, temperature=self.distill_temperature, hard=hard)

    def callbacks(
        self,
        *,
        monitor: Callable[[EpochRecord], bool] | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
        checkpoint_every_s: float = 60.0,
        checkpoint_tag: str = "",
    ) -> list[Callback]:
        """The callbacks this record asks for (``restore_best``, ``time_limit_s``), plus a :class:`CurveMonitor`
        of ``monitor`` and a :class:`Checkpoint` to ``checkpoint`` when given."""
        out: list[Callback] = []
        if self.restore_best:
            out.append(RestoreBest())
        if monitor is not None:
            out.append(CurveMonitor(monitor))
        if self.time_limit_s is not None:
            out.append(TimeBudget(self.time_limit_s))
        if checkpoint is not None:
            out.append(Checkpoint(checkpoint, every_s=checkpoint_every_s, tag=checkpoint_tag))
        return out

    @property
    def resolved_lr(self) -> float:
        return self.recipe.resolved_lr

    @property
    def resolved_weight_decay(self) -> float:
        return self.recipe.resolved_weight_decay

    @property
    def finetune_config(self) -> TrainConfig:
        """How a pruned candidate is fine-tuned: ``prune_finetune_epochs`` (at least 1) epochs at
        ``prune_finetune_lr`` (default a tenth of the training lr), no warm-up, no time limit, otherwise as
        configured."""
        lr = self.prune_finetune_lr if self.prune_finetune_lr is not None else 0.1 * self.resolved_lr
        return replace(self, epochs=max(1, self.prune_finetune_epochs), lr=lr, warmup_epochs=0.0,
                       time_limit_s=None, prune_ratio=0.0)
