"""Channels-last memory order for CPU training, except for the convolutions that crash oneDNN.

PyTorch's depthwise and small convolutions train about 1.6x faster on the CPU with channels-last tensors
(``benchmarks/train_speed.py``), so :func:`fit` converts the model. One layer shape must stay in the usual
order: a **1x1, strided, ungrouped convolution with fewer than 16 input channels**. With a channels-last input
*or* weight, oneDNN (v3.12.0 as bundled with torch 2.13.0, AVX-512 CPUs) runs its backward-weights pass in the
``jit_1x1:avx512_core`` kernel, which corrupts the heap: the process dies with a segfault or a glibc
"heap corruption" abort (``free(): invalid next size``, ``corrupted size vs. prev_size``), not with a Python
error. Grouped, 3x3, unit-stride and >= 16-input-channel 1x1 convolutions take other kernels or the safe path
of that one and train correctly. The grid and its results: ``benchmarks/onednn_cl_crash.py``,
``docs/notes/onednn-channels-last.md``.

Such a convolution keeps its weight in the usual order and gets its input in the usual order (a forward
pre-hook), since either tensor being channels-last makes PyTorch pick the channels-last kernel. The layers
around it stay channels-last. The rule does not depend on the input's spatial size or the batch size: small
ones did not crash in the grid, but the overflow is a heap write, which may be silent.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

ONEDNN_1X1_MIN_SAFE_IN_CHANNELS = 16
"""1x1 strided convolutions with fewer input channels than this (one AVX-512 block of floats) crash."""


def conv_memory_format(conv: nn.Conv2d) -> torch.memory_format:
    """The memory order to train ``conv`` in: channels-last unless the layer has the crashing shape."""
    crashing = (
        conv.kernel_size == (1, 1)
        and conv.groups == 1
        and any(s > 1 for s in conv.stride)
        and conv.in_channels < ONEDNN_1X1_MIN_SAFE_IN_CHANNELS
    )
    return torch.contiguous_format if crashing else torch.channels_last


def _contiguous_input(module: nn.Module, args: tuple[object, ...]) -> tuple[object, ...]:
    return tuple(a.contiguous() if isinstance(a, torch.Tensor) else a for a in args)


class ChannelsLast:
    """Puts models in channels-last order (but the crashing convolutions, see above) until :meth:`undo`."""

    def __init__(self, models: Iterable[nn.Module]) -> None:
        self.models = list(models)
        self._hooks: list[RemovableHandle] = []
        for model in self.models:
            model.to(memory_format=torch.channels_last)
            for m in model.modules():
                if isinstance(m, nn.Conv2d) and conv_memory_format(m) == torch.contiguous_format:
                    m.to(memory_format=torch.contiguous_format)
                    self._hooks.append(m.register_forward_pre_hook(_contiguous_input))

    def undo(self) -> None:
        """Back to the usual memory order, without the hooks."""
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        for model in self.models:
            model.to(memory_format=torch.contiguous_format)
