"""Several trained networks as one: the mean of their logits (a teacher for knowledge distillation)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tinyevo.ir import ArchIR


def input_size(model: nn.Module) -> tuple[int, ...] | None:
    """``(C, H, W)`` that ``model`` was built for (an :class:`IRModule`), or None when it does not say."""
    ir = getattr(model, "ir", None)
    return tuple(int(v) for v in ir.input_shape) if isinstance(ir, ArchIR) else None


class Ensemble(nn.Module):
    """The mean of the members' logits. Each member sees the input resized (bilinear) to the resolution it was
    built for, so members of several resolutions can be mixed; one member is that member, resized."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [member(_resized_for(member, x)) for member in self.members]
        return sum(outs[1:], outs[0]) / len(outs)


def _resized_for(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    size = input_size(model)
    if size is None or size[1:] == tuple(x.shape[2:]):
        return x
    return F.interpolate(x, size=size[1:], mode="bilinear", align_corners=False)
