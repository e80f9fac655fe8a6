"""Steps: what one optimisation step does with a batch, before the loop clips the gradients and steps the
optimiser.

A :class:`Step` runs the forward pass(es), the loss(es) and the backward pass(es) on one batch and returns the loss
to report (a tensor: the loop sums it on the device, so no step waits for the host). It may run several forwards
and backwards (gradients accumulate until the loop's optimiser step), e.g. the sandwich rule of a weight-sharing
supernet: the largest sub-network with the labels, then smaller ones distilled from its outputs.
:class:`StandardStep` is one forward, one loss, one backward.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from tinyevo.training.losses import CrossEntropy, Loss


@runtime_checkable
class Step(Protocol):
    def __call__(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Forward, loss and backward on one batch (the gradients were zeroed); returns the loss (detached or
        not; not read on the host: the loop keeps the tensor until the next evaluation point and sums it there,
        so return a fresh tensor, not a buffer that a later step overwrites)."""
        ...

    def prepare(self, model: nn.Module, device: torch.device, input_shape: Sequence[int]) -> None:
        """Called once before training, after ``model`` was moved to ``device``."""
        ...

    def modules(self) -> Sequence[nn.Module]:
        """Networks the step runs but does not train (a teacher), laid out like the model."""
        ...

    def signature(self) -> dict[str, object]:
        """JSON-able identity: what must agree for a checkpoint to be resumed."""
        ...


class StandardStep:
    """One forward pass, ``loss`` (default :class:`CrossEntropy`), one backward pass."""

    def __init__(self, loss: Loss | None = None) -> None:
        self.loss = loss if loss is not None else CrossEntropy()

    def __call__(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        loss = self.loss(model(inputs), targets, inputs)
        loss.backward()
        return loss

    def prepare(self, model: nn.Module, device: torch.device, input_shape: Sequence[int]) -> None:
        self.loss.prepare(device, input_shape)

    def modules(self) -> Sequence[nn.Module]:
        return self.loss.modules()

    def signature(self) -> dict[str, object]:
        return {"step": "standard", **self.loss.signature()}
