"""Pruning as a deployment step: :func:`prune_and_finetune` prunes with :mod:`tinyevo.nn.prune` (re-exported here),
re-estimates BatchNorm statistics and fine-tunes with :func:`tinyevo.estimators.train_model`."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tinyevo.deploy.errors import DeployError
from tinyevo.ir import ArchIR
from tinyevo.nn.prune import Pruned, compensate_dense_bias, prune_channels

__all__ = ["PruneConfig", "PruneResult", "Pruned", "compensate_dense_bias", "prune_and_finetune", "prune_channels"]


@dataclass(frozen=True)
class PruneConfig:
    """Pruning as a deployment step: remove ``fraction`` of the channels, fold the mean of the features that dense
    layers lost into their biases (``compensate_bias``, :func:`compensate_dense_bias`), re-estimate the BatchNorm
    statistics on training data (``recalibrate_bn``; no weight changes), then fine-tune ``epochs`` epochs.
    ``compensate_bias`` is off by default: without fine-tuning it helped one MNIST net and hurt another by up to
    13 pp (``benchmarks/pruning_tradeoff.py``, README)."""

    fraction: float = 0.25
    epochs: int = 2
    lr: float = 1e-3
    batch_size: int = 64
    recalibrate_bn: bool = True
    compensate_bias: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction < 1.0:
            raise DeployError(f"the pruning fraction must be in [0, 1), got {self.fraction}")
        if self.epochs < 0:
            raise DeployError(f"epochs must be >= 0, got {self.epochs}")


@dataclass(frozen=True)
class PruneResult:
    """The trade-off of one pruning step (accuracies on the test split, sizes from the cost model)."""

    ir: ArchIR
    state_dict: dict[str, torch.Tensor]
    removed_fraction: float  # of the prunable channels
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    flash_before: int
    flash_after: int
    accuracy_before: float
    accuracy_pruned: float  # before fine-tuning (after the BatchNorm re-estimation, when enabled)
    accuracy_finetuned: float
    accuracy_pruned_raw: float = math.nan  # before fine-tuning and the BatchNorm re-estimation (after compensation)

    def as_json(self) -> dict[str, float]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("ir", "state_dict")}


def prune_and_finetune(ir: ArchIR, state_dict: Mapping[str, torch.Tensor], data: Any, *,
                       config: PruneConfig = PruneConfig(), seed: int = 0) -> PruneResult:
    """Prune ``(ir, state_dict)``, fine-tune on ``data.x_train`` and measure test accuracy before and after."""
    from tinyevo.cost import estimate_cost
    from tinyevo.deploy.model import load_weights, predict
    from tinyevo.training import TrainConfig, fraction_correct, recalibrate_batchnorm, train_model

    base = load_weights(ir, state_dict)
    full_state = base.state_dict()
    pruned = prune_channels(ir, full_state, config.fraction)
    state = pruned.state_dict
    if config.compensate_bias:
        state = compensate_dense_bias(base, ir, pruned, np.asarray(data.x_train), seed=seed)
    model = load_weights(pruned.ir, state)
    x, y = np.asarray(data.x_test), np.asarray(data.y_test)
    acc_before = fraction_correct(predict(base, x), y)
    acc_pruned = acc_raw = fraction_correct(predict(model, x), y)
    if config.recalibrate_bn and recalibrate_batchnorm(model, np.asarray(data.x_train), seed=seed):
        model.eval()
        state = {**state, **{k: v.detach().clone() for k, v in model.state_dict().items()}}
        acc_pruned = fraction_correct(predict(model, x), y)
    acc_ft = acc_pruned
    if config.epochs > 0:
        tc = TrainConfig(epochs=config.epochs, batch_size=config.batch_size, optimizer="adam", lr=config.lr,
                         weight_decay=0.0)
        result = train_model(pruned.ir, data, config=tc, seed=seed, init_state=state)
        state = {k: v.detach().clone() for k, v in result.model.state_dict().items()}
        acc_ft = fraction_correct(predict(result.model.eval(), x), y)
    c0, c1 = estimate_cost(ir), estimate_cost(pruned.ir)
    return PruneResult(
        ir=pruned.ir, state_dict=state, removed_fraction=pruned.removed_fraction,
        params_before=c0.params, params_after=c1.params, macs_before=c0.macs, macs_after=c1.macs,
        flash_before=c0.flash_bytes, flash_after=c1.flash_bytes, accuracy_before=acc_before,
        accuracy_pruned=acc_pruned, accuracy_finetuned=acc_ft, accuracy_pruned_raw=acc_raw,
    )
