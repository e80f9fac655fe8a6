"""Measuring a model: top-1 :func:`accuracy` and :func:`recalibrate_batchnorm` (re-estimated BatchNorm
statistics, e.g. after pruning)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from tinyevo.data import as_tensor


def to_tensor(a: np.ndarray) -> torch.Tensor:
    """A CPU tensor over ``a``'s memory, without a copy (:func:`tinyevo.data.as_tensor`): the training loop and
    :func:`accuracy` only read it (batches are gathered copies or slices that the models never write into), so a
    memory-mapped data set is shared by every candidate and process instead of copied for each."""
    return as_tensor(a)


def fraction_correct(pred: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> float:
    """The fraction of predicted labels ``pred`` equal to the labels ``y`` (NaN for an empty set): the accuracy of
    predictions made by any runtime (PyTorch, an int8 program, TFLite-Micro)."""
    if len(y) == 0:
        return math.nan
    if isinstance(pred, torch.Tensor) or isinstance(y, torch.Tensor):
        return int((torch.as_tensor(pred) == torch.as_tensor(y)).sum()) / len(y)
    return int(np.count_nonzero(np.asarray(pred) == np.asarray(y))) / len(y)


@torch.no_grad()
def accuracy(
    model: nn.Module, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, *, batch_size: int = 1024
) -> float:
    """Top-1 accuracy of ``model`` (set to eval mode) on ``(x, y)``; NaN for an empty split
    (:func:`fraction_correct` of its predictions, computed on the model's device)."""
    if len(x) == 0:
        return math.nan
    xt = x if isinstance(x, torch.Tensor) else to_tensor(x)
    yt = y if isinstance(y, torch.Tensor) else to_tensor(y)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    pred = torch.cat([model(xt[i : i + batch_size].to(device)).argmax(1) for i in range(0, len(xt), batch_size)])
    model.train(was_training)
    return fraction_correct(pred, yt.to(device))


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module, x: np.ndarray | torch.Tensor, *, batches: int = 32, batch_size: int = 256, seed: int = 0
) -> int:
    """Re-estimate every BatchNorm's running mean and variance from up to ``batches * batch_size`` rows of ``x``
    (a seeded random subset), leaving the weights alone: after channels are pruned, the statistics of the layers
    that read them are stale, and re-estimating them recovers most of the accuracy without any training ("adaptive
    BN"). Returns the number of rows used (0 for a model without BatchNorm)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns or len(x) < 2:
        return 0
    device = next(model.parameters()).device
    momenta = [m.momentum for m in bns]
    was_training = model.training
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches
        m.train()
    batch_size = max(2, batch_size)
    n = min(len(x), batches * batch_size)
    idx = np.sort(np.random.default_rng(seed).choice(len(x), size=n, replace=False))
    used = 0
    try:
        for i in range(0, n, batch_size):
            rows = idx[i : i + batch_size]
            if len(rows) < 2:  # one row cannot give a variance
                break
            xb = x[torch.from_numpy(rows)] if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x)[rows])
            model(xb.to(device, dtype=torch.float32))
            used += len(rows)
    finally:
        for m, momentum in zip(bns, momenta, strict=True):
            m.momentum = momentum
        model.train(was_training)
    return used
