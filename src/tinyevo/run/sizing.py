"""Defaults that adapt to the data set's size, and warnings when a split is too small to measure with.

A run's default training settings were chosen for data sets of a thousand samples and more (``digits``: 1,293
training samples, 21 optimiser steps per epoch). On a small set (say 4 classes x 10 series) the same defaults
give a 4-sample validation split and 4 optimiser steps per candidate, and the search ranks untrained networks by
noise. So, only where the user did not set them:

* the validation split holds at least ``min(VAL_MIN_PER_CLASS, class size // 3)`` samples of every class
  (:func:`tinyevo.data.dataset.stratified_split`; the minimum is stored with the run as ``val_min_per_class``);
* ``batch_size`` is ``n_train // 8`` rounded down to a power of two, between :data:`MIN_BATCH` and
  :data:`MAX_BATCH` (:func:`default_batch_size`);
* ``epochs`` is the usual default, raised until a model gets at least :data:`SEARCH_MIN_STEPS` (a search
  candidate) or :data:`FINAL_MIN_STEPS` (the final retraining) optimiser steps, at most :data:`SEARCH_MAX_EPOCHS` /
  :data:`FINAL_MAX_EPOCHS` (:func:`default_epochs`).

On ``digits`` and larger sets these rules give exactly the fixed defaults (batch 64; 4 search / 30 final epochs,
which already give 84 / 630 steps; 14 or more validation samples per class), so nothing changes there.

:func:`size_run` resolves the adaptive defaults of a config once, before the run is stored: the stored config
holds the chosen values (and no adaptive keys), so ``tinyevo resume`` and ``tinyevo retrain`` replay them exactly.
It also returns :class:`SizeWarning` s for validation / test splits too small to rank or report models with
(library code does not print: the CLI prints them; they are logged at INFO level).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tinyevo.run.config import RunConfig

log = logging.getLogger(__name__)

ADAPTIVE_TRAIN_KEYS = ("epochs", "batch_size")
"""Training options whose defaults adapt to the data set's size (an explicitly set one never does)."""
VAL_MIN_PER_CLASS = 5
"""Default minimum of validation samples per class (capped at a third of the class)."""
MAX_BATCH = 64
MIN_BATCH = 8
SEARCH_MIN_STEPS = 80
FINAL_MIN_STEPS = 600
SEARCH_MAX_EPOCHS = 100
FINAL_MAX_EPOCHS = 500
MIN_RANKING_SAMPLES = 50
"""A validation or test split with fewer samples gets a :class:`SizeWarning`: its accuracy moves in steps of
``1 / n`` > 2 %, so candidates closer than that tie or are ordered by chance."""


@dataclass(frozen=True)
class SizeWarning:
    """A split too small to measure accuracy with: ``split`` (``"val"`` or ``"test"``) has ``samples`` samples,
    so its accuracy has a resolution of ``resolution`` (``1 / samples``); ``message`` says what to do."""

    split: str
    samples: int
    resolution: float
    message: str


@dataclass(frozen=True)
class TrainingPlan:
    """What one training phase (``"search"`` candidates or ``"final"`` retraining) will do on ``n_train``
    samples; ``adapted`` names the options that were defaults adapted to the data size."""

    phase: str
    epochs: int
    batch_size: int
    steps: int
    adapted: tuple[str, ...] = ()

    def describe(self) -> str:
        how = f" (adapted: {', '.join(self.adapted)})" if self.adapted else ""
        return f"{self.phase} {self.epochs} epochs x batch {self.batch_size} = {self.steps} steps{how}"


@dataclass(frozen=True)
class SizedRun:
    """A config with its adaptive defaults resolved for a data set of ``n_train`` / ``n_val`` / ``n_test``
    samples, the resulting training plans and the size warnings."""

    config: RunConfig
    n_train: int
    n_val: int
    n_test: int
    val_min_per_class: int
    search: TrainingPlan
    final: TrainingPlan | None
    warnings: tuple[SizeWarning, ...] = ()

    def describe(self) -> str:
        """One line: the training plans (for the CLI; the split sizes are in the CLI's data line); the search's
        only where candidates are trained with it (not when a supernet scores them); empty without a plan."""
        plans = ([self.search] if self.config.estimator.supernet is None else []) + (
            [self.final] if self.final is not None else [])
        return "training: " + "; ".join(p.describe() for p in plans) if plans else ""


# --- the rules ----------------------------------------------------------------------------------------------


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimiser steps in one epoch of :func:`tinyevo.training.fit` (a last batch of one sample is
    dropped)."""
    if n_train < 1:
        return 0
    bs = min(batch_size, n_train)
    return n_train // bs + (1 if n_train % bs >= 2 else 0)


def default_batch_size(n_train: int) -> int:
    """``n_train // 8`` rounded down to a power of two, clipped to ``[MIN_BATCH, MAX_BATCH]``: at least about
    eight steps per epoch where the data allows."""
    per_step = max(1, n_train // 8)
    return max(MIN_BATCH, min(MAX_BATCH, 1 << (per_step.bit_length() - 1)))


def default_epochs(n_train: int, batch_size: int, *, base: int, min_steps: int, max_epochs: int) -> int:
    """``base`` epochs, raised (up to ``max_epochs``, never below ``base``) until training takes at least
    ``min_steps`` optimiser steps."""
    spe = steps_per_epoch(n_train, batch_size)
    if spe < 1:
        return base
    return max(base, min(max_epochs, math.ceil(min_steps / spe)))


def size_warnings(n_val: int, n_test: int) -> tuple[SizeWarning, ...]:
    """Warnings for a validation split (it ranks the candidates) or a test split (it reports the final model)
    with fewer than :data:`MIN_RANKING_SAMPLES` samples."""
    out: list[SizeWarning] = []
    if 0 < n_val < MIN_RANKING_SAMPLES:
        out.append(SizeWarning(
            "val", n_val, 1.0 / n_val,
            f"the validation split has only {n_val} samples: its accuracy moves in steps of {100 / n_val:.1f} %, "
            "so candidates closer than that tie or are ranked by chance; more data (or a larger --val-fraction) "
            "ranks them better",
        ))
    if 0 < n_test < MIN_RANKING_SAMPLES:
        out.append(SizeWarning(
            "test", n_test, 1.0 / n_test,
            f"the test split has only {n_test} samples: the final test accuracy moves in steps of "
            f"{100 / n_test:.1f} % and varies much between runs",
        ))
    return tuple(out)


def _plan(phase: str, train: dict[str, Any], auto: tuple[str, ...], n_train: int, *, base_epochs: int,
          min_steps: int, max_epochs: int) -> tuple[dict[str, Any], TrainingPlan]:
    adapted: list[str] = []
    train = dict(train)
    if "batch_size" in auto:
        batch = default_batch_size(n_train)
        adapted += ["batch_size"] if batch != train.get("batch_size") else []
        train["batch_size"] = batch
    if "epochs" in auto:
        epochs = default_epochs(n_train, int(train["batch_size"]), base=base_epochs, min_steps=min_steps,
                                max_epochs=max_epochs)
        adapted += ["epochs"] if epochs != train.get("epochs") else []
        train["epochs"] = epochs
    epochs, batch = int(train["epochs"]), int(train["batch_size"])
    return train, TrainingPlan(phase, epochs, batch, epochs * steps_per_epoch(n_train, batch), tuple(adapted))


def size_run(config: RunConfig, data: Any = None) -> SizedRun:
    """Resolve ``config``'s adaptive training defaults (``estimator.auto`` / ``final.auto``) for its data set
    (``data``, or loaded from ``config.data`` -- cached per process) and list the size warnings. The returned
    config has no adaptive keys left, so sizing it again changes nothing."""
    from tinyevo.run.assembly import cached_dataset
    from tinyevo.run.config import EstimatorConfig, FinalConfig

    if data is None:
        data = cached_dataset(config.data.spec, config.seed, config.data.val_fraction,
                              config.data.val_min_per_class)
    n_train, n_val, n_test = len(data.y_train), len(data.y_val), len(data.y_test)
    est, fin = config.estimator, config.final
    train, search = _plan("search", dict(est.train), est.auto, n_train,
                          base_epochs=int(EstimatorConfig().train["epochs"]), min_steps=SEARCH_MIN_STEPS,
                          max_epochs=SEARCH_MAX_EPOCHS)
    n_final = n_train + (n_val if fin.train.get("train_on_val") else 0)
    final_train, final = _plan("final", dict(fin.train), fin.auto, n_final,
                               base_epochs=int(FinalConfig().train["epochs"]), min_steps=FINAL_MIN_STEPS,
                               max_epochs=FINAL_MAX_EPOCHS)
    sized = replace(config, estimator=replace(est, train=train, auto=()),
                    final=replace(fin, train=final_train, auto=()))
    warnings = size_warnings(n_val, n_test)
    for w in warnings:
        log.info("small split: %s", w.message)
    if search.adapted or final.adapted:
        log.info("training defaults adapted to %d training samples: %s; %s", n_train, search.describe(),
                 final.describe())
    return SizedRun(sized, n_train, n_val, n_test, config.data.val_min_per_class, search,
                    final if fin.enabled else None, warnings)
