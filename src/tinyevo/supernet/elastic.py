"""Elastic layers: one set of weights at the largest size, any smaller size used as a slice of it.

* :class:`ElasticConvBN` -- a conv (full or depthwise) followed by BatchNorm and an activation, as
  :mod:`tinyevo.nn.builder` builds it, whose output channels are the first ``out`` filters, input channels the
  first ``in`` of the weight, and whose kernel is elastic (Once-for-All): a ``k x k`` kernel is the centre crop
  of the next larger kernel multiplied by a learned ``k^2 x k^2`` transform matrix (shared by all channels,
  initialised to the identity, so that before training the smaller kernel is the plain centre crop).
* :class:`ElasticLinear` -- a dense layer whose input features are the first ``in`` of the weight.

Each layer also gives the plain tensors of one sub-size (:meth:`ElasticConvBN.sliced`) so a sub-network can be
copied into an ordinary module with its own weights. Padding is TensorFlow "SAME" computed from the input's
size on every call, exactly as the torch builder pads (symmetric pads in the conv, asymmetric ones first).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from tinyevo.ir import same_pads


def _act(x: torch.Tensor, act: str) -> torch.Tensor:
    if act == "relu6":
        return F.relu6(x)
    if act == "relu":
        return F.relu(x)
    return x


def same_conv(x: torch.Tensor, weight: torch.Tensor, stride: int, groups: int) -> torch.Tensor:
    """``conv2d`` with TensorFlow "SAME" padding, padded as :mod:`tinyevo.nn.builder` pads."""
    k = weight.shape[-1]
    top, bottom = same_pads(x.shape[2], k, stride)
    left, right = same_pads(x.shape[3], k, stride)
    if top == bottom and left == right:
        return F.conv2d(x, weight, None, stride, (top, left), 1, groups)
    return F.conv2d(F.pad(x, (left, right, top, bottom)), weight, None, stride, 0, 1, groups)


class ElasticConvBN(nn.Module):
    """Conv (no bias) + BatchNorm + activation with elastic in/out channels and kernel size.

    ``depthwise``: the conv is depthwise (one filter per channel; ``out == in``). ``kernels``: the kernel sizes
    the layer serves (odd sizes; the weight has the largest).
    """

    def __init__(
        self, in_max: int, out_max: int, *, kernels: tuple[int, ...], stride: int = 1, act: str = "none",
        depthwise: bool = False,
    ) -> None:
        super().__init__()
        ks = tuple(sorted({int(k) for k in kernels}, reverse=True))
        self.kernels = ks
        self.stride, self.act, self.depthwise = stride, act, depthwise
        self.in_max, self.out_max = in_max, out_max
        k = ks[0]
        self.weight = nn.Parameter(torch.empty(out_max, 1 if depthwise else in_max, k, k))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # torch's Conv2d default
        # transform matrices from each kernel to the next smaller one (named by the smaller size)
        self.transforms = nn.ParameterDict(
            {f"k{small}": nn.Parameter(torch.eye(small * small)) for small in ks[1:]}
        )
        self.bn = nn.BatchNorm2d(out_max)

    def kernel_weight(self, kernel: int) -> torch.Tensor:
        """The full-channel weight at ``kernel`` (centre crops chained through the transform matrices)."""
        if kernel not in self.kernels:
            raise ValueError(f"kernel {kernel} is not one of this layer's kernels {self.kernels}")
        w = self.weight
        for small in self.kernels[1:]:
            if small < kernel:
                break
            start = (w.shape[-1] - small) // 2
            crop = w[:, :, start : start + small, start : start + small]
            flat = crop.reshape(-1, small * small) @ self.transforms[f"k{small}"].t()
            w = flat.reshape(crop.shape)
        return w

    def conv_weight(self, out: int, inp: int, kernel: int) -> torch.Tensor:
        w = self.kernel_weight(kernel)
        return w[:out] if self.depthwise else w[:out, :inp]

    def forward(self, x: torch.Tensor, out: int, kernel: int) -> torch.Tensor:
        """The layer with ``out`` filters (a depthwise layer: as many as ``x`` has channels) of size ``kernel``
        over the channels of ``x`` (the first ``x.shape[1]`` input channels of the weight)."""
        inp = x.shape[1]
        if self.depthwise:
            out = inp
        y = same_conv(x, self.conv_weight(out, inp, kernel), self.stride, inp if self.depthwise else 1)
        bn = self.bn
        assert bn.running_mean is not None and bn.running_var is not None
        momentum = bn.momentum
        if momentum is None:  # a cumulative average, as nn.BatchNorm2d computes it (BatchNorm recalibration)
            momentum = 0.0
            if self.training and bn.num_batches_tracked is not None:
                bn.num_batches_tracked.add_(1)
                momentum = 1.0 / float(bn.num_batches_tracked)
        # the running statistics of the first ``out`` channels are updated in place through the slice views
        y = F.batch_norm(y, bn.running_mean[:out], bn.running_var[:out], bn.weight[:out], bn.bias[:out],
                         self.training, momentum, bn.eps)
        return _act(y, self.act)

    @torch.no_grad()
    def sliced(self, out: int, inp: int, kernel: int) -> dict[str, torch.Tensor]:
        """Plain copies of the weights of one sub-size, keyed as the builder's ``_ConvBN`` names them."""
        bn = self.bn
        assert bn.running_mean is not None and bn.running_var is not None
        return {
            "conv.weight": self.conv_weight(out, inp, kernel).detach().clone(),
            "bn.weight": bn.weight[:out].detach().clone(),
            "bn.bias": bn.bias[:out].detach().clone(),
            "bn.running_mean": bn.running_mean[:out].clone(),
            "bn.running_var": bn.running_var[:out].clone(),
        }

    @torch.no_grad()
    def permute_out(self, order: torch.Tensor) -> None:
        """Reorder the output channels (filters and BatchNorm) by ``order`` (a permutation of ``out_max``)."""
        self.weight.copy_(self.weight[order])
        bn = self.bn
        for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
            assert t is not None
            t.copy_(t[order])

    @torch.no_grad()
    def permute_in(self, order: torch.Tensor) -> None:
        """Reorder the input channels of a full conv by ``order``."""
        self.weight.copy_(self.weight[:, order])


class ElasticLinear(nn.Module):
    """A dense layer (with bias) whose input features are the first ``in`` of the weight."""

    def __init__(self, in_max: int, out_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_max, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.linear.weight[:, : x.shape[1]], self.linear.bias)

    @torch.no_grad()
    def sliced(self, inp: int) -> dict[str, torch.Tensor]:
        return {
            "linear.weight": self.linear.weight[:, :inp].detach().clone(),
            "linear.bias": self.linear.bias.detach().clone(),
        }
