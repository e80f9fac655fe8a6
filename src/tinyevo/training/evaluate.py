"""Measuring a model: top-1 :func:`accuracy` and :func:`recalibrate_batchnorm` (re-estimated BatchNorm
statistics, e.g. after pruning); the inputs a training or an evaluation gathers its batches from
(:func:`input_batches`, :class:`ByteBatches`)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from tinyevo.data import ByteInputs, as_tensor


def to_tensor(a: np.ndarray) -> torch.Tensor:
    """A CPU tensor over ``a``'s memory, without a copy (:func:`tinyevo.data.as_tensor`): the training loop and
    :func:`accuracy` only read it (batches are gathered copies or slices that the models never write into), so a
    memory-mapped data set is shared by every candidate and process instead of copied for each."""
    return as_tensor(a)


class ByteBatches:
    """Float32 batches gathered from uint8 :class:`~tinyevo.data.ByteInputs` on ``device``: ``batches[rows]``
    (row indices or a slice) gathers the rows' bytes and converts them with the data set's transform, the same
    float32 operations in the same order as the prepared float32 array (float, ``* scale``, ``- mean``, ``/
    std``), so a batch equals the float32 array's rows bit for bit -- from a quarter of the memory.

    Where the device's arithmetic would not reproduce them (a kernel that divides by multiplying with the
    reciprocal, as CUDA does for a scalar divisor), batches are looked up instead in the ``(C, 256)`` table of
    the transformed bytes (computed by the same numpy code as the prepared arrays; ~3x slower on the CPU). The
    two are compared on all 256 values of every channel when the batches are made; ``exact_arithmetic`` says
    which is used."""

    def __init__(self, inputs: ByteInputs, device: torch.device | str = "cpu") -> None:
        device = torch.device(device)
        self.inputs = inputs
        self.codes = as_tensor(inputs.codes).to(device)
        channels = int(inputs.codes.shape[1])
        t = inputs.transform
        self._scale = (torch.tensor(np.float32(t.scale), device=device)  # (rounded to float32 as numpy does)
                       if t.scale != 1.0 else None)
        sd = t.shift_and_div()
        self._shift, self._div = ((torch.from_numpy(sd[0]).to(device), torch.from_numpy(sd[1]).to(device))
                                  if sd is not None else (None, None))
        table = t.table(channels)  # (C, 256), numpy: the values of the prepared float32 arrays
        self._table = torch.from_numpy(table.reshape(-1)).to(device)
        self._offsets = (torch.arange(channels, device=device) * 256).view(1, channels, 1, 1)
        every = torch.arange(256, dtype=torch.uint8, device=device).view(256, 1, 1, 1).expand(256, channels, 1, 1)
        got = self._arithmetic(every.contiguous())[:, :, 0, 0].T.contiguous().cpu()
        self.exact_arithmetic = bool(torch.equal(got.view(torch.int32),
                                                 torch.from_numpy(table).view(torch.int32)))

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def shape(self) -> torch.Size:
        return self.codes.shape

    @property
    def device(self) -> torch.device:
        return self.codes.device

    def __getitem__(self, rows: torch.Tensor | slice) -> torch.Tensor:
        codes = self.codes[rows]
        return self._arithmetic(codes) if self.exact_arithmetic else self._lookup(codes)

    def _arithmetic(self, codes: torch.Tensor) -> torch.Tensor:
        a = codes.float()
        if self._scale is not None:
            a.mul_(self._scale)
        if self._shift is not None:
            a.sub_(self._shift)
            a.div_(self._div)
        return a

    def _lookup(self, codes: torch.Tensor) -> torch.Tensor:
        return self._table[codes.long() + self._offsets]


Inputs = np.ndarray | torch.Tensor | ByteInputs | ByteBatches
"""What :func:`accuracy` and :func:`input_batches` read: a float32 array or tensor, or bytes to convert."""


def input_batches(x: Inputs, device: torch.device) -> torch.Tensor | ByteBatches:
    """Something to gather float32 batches from with ``[rows]`` / ``[i:j]`` on ``device``: the float32 data
    itself (an array is wrapped without a copy, then moved), or :class:`ByteBatches` for bytes
    (:meth:`tinyevo.data.Dataset.inputs`). Nothing is converted until a batch is gathered."""
    if isinstance(x, ByteBatches):
        return x if x.device == device else ByteBatches(x.inputs, device)
    if isinstance(x, ByteInputs):
        return ByteBatches(x, device)
    return (x if isinstance(x, torch.Tensor) else to_tensor(x)).to(device)


def fraction_correct(pred: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> float:
    """The fraction of predicted labels ``pred`` equal to the labels ``y`` (NaN for an empty set): the accuracy of
    predictions made by any runtime (PyTorch, an int8 program, TFLite-Micro)."""
    if len(y) == 0:
        return math.nan
    if isinstance(pred, torch.Tensor) or isinstance(y, torch.Tensor):
        return int((torch.as_tensor(pred) == torch.as_tensor(y)).sum()) / len(y)
    return int(np.count_nonzero(np.asarray(pred) == np.asarray(y))) / len(y)


@torch.no_grad()
def accuracy(model: nn.Module, x: Inputs, y: np.ndarray | torch.Tensor, *, batch_size: int = 1024) -> float:
    """Top-1 accuracy of ``model`` (set to eval mode) on ``(x, y)``; NaN for an empty split
    (:func:`fraction_correct` of its predictions, computed on the model's device). ``x``: float32 inputs, or
    bytes converted batch by batch (``data.inputs("val")``, see :func:`input_batches`)."""
    if len(x) == 0:
        return math.nan
    yt = y if isinstance(y, torch.Tensor) else to_tensor(y)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    if isinstance(x, ByteInputs):
        x = ByteBatches(x, device)
    xt = x if isinstance(x, (torch.Tensor, ByteBatches)) else to_tensor(x)
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
