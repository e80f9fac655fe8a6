"""Losses: what a training step minimises, as objects (:class:`CrossEntropy`, :class:`Distillation`).

A :class:`Loss` maps ``(logits, targets, inputs)`` to a scalar tensor. ``inputs`` is the (augmented) batch the
model saw, for losses that need it (a teacher's predictions). Before training, the loop calls :meth:`Loss.prepare`
with the device and the input shape, and lays out the networks of :meth:`Loss.modules` as it lays out the model.
:meth:`Loss.signature` is the loss's identity in a checkpoint (a different loss never resumes one).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import nn
from torch.nn import functional as F

from tinyevo.errors import ConfigError
from tinyevo.nn import Ensemble
from tinyevo.nn.ensemble import input_size


@runtime_checkable
class Loss(Protocol):
    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor: ...

    def prepare(self, device: torch.device, input_shape: Sequence[int]) -> None:
        """Move what the loss holds (a teacher) to ``device`` and check it fits inputs of ``input_shape`` (CHW)."""
        ...

    def modules(self) -> Sequence[nn.Module]:
        """Networks the loss runs but does not train (laid out like the model: channels-last on the CPU)."""
        ...

    def signature(self) -> dict[str, object]:
        """JSON-able identity: what must agree for a checkpoint to be resumed."""
        ...


class CrossEntropy:
    """Cross-entropy with the labels, optionally with label smoothing."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)

    def prepare(self, device: torch.device, input_shape: Sequence[int]) -> None:
        return None

    def modules(self) -> Sequence[nn.Module]:
        return ()

    def signature(self) -> dict[str, object]:
        return {"loss": "cross_entropy", "label_smoothing": self.label_smoothing}


def weights_digest(module: nn.Module) -> str:
    """A short digest of ``module``'s weights (a teacher's identity in a checkpoint)."""
    digest = hashlib.sha1()
    for key, value in module.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


class Distillation:
    """Knowledge distillation (Hinton et al., 2015): ``(1 - alpha) * hard + alpha * T^2 * KL(teacher_T ||
    student_T)``, where ``hard`` is the loss with the labels (default :class:`CrossEntropy`) and ``_T`` are the
    softmax outputs at temperature ``T``. ``teacher``: a trained network, or several as an
    :class:`~tinyevo.nn.Ensemble` (the mean of their logits); it sees the same augmented batch, resized to its own
    input resolution when that differs, is put in eval mode and never changed. It must predict as many classes."""

    def __init__(self, teacher: nn.Module, *, alpha: float = 0.9, temperature: float = 4.0,
                 hard: Loss | None = None) -> None:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"distill_alpha must be in [0, 1], got {alpha!r}")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ConfigError(f"distill_temperature must be positive, got {temperature!r}")
        self.teacher = teacher
        self.alpha, self.t = float(alpha), float(temperature)
        self.hard = hard if hard is not None else CrossEntropy()
        self._ensemble = teacher if isinstance(teacher, Ensemble) else Ensemble([teacher])
        self.digest = weights_digest(teacher)

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        hard = self.hard(logits, targets, inputs)
        with torch.no_grad():
            target = self._ensemble(inputs)
        if target.shape != logits.shape:
            raise ConfigError(f"the teacher predicts {target.shape[-1]} classes but the model {logits.shape[-1]}")
        soft = F.kl_div(F.log_softmax(logits / self.t, dim=1), F.log_softmax(target / self.t, dim=1),
                        reduction="batchmean", log_target=True) * (self.t * self.t)
        return (1.0 - self.alpha) * hard + self.alpha * soft

    def prepare(self, device: torch.device, input_shape: Sequence[int]) -> None:
        self.teacher.to(device).eval()
        for member in self._ensemble.members:
            want = input_size(member) or tuple(input_shape)
            if want[0] != input_shape[0]:
                raise ConfigError(f"the teacher expects {want[0]} input channel(s) but the data has {input_shape[0]}")
        self.hard.prepare(device, input_shape)

    def modules(self) -> Sequence[nn.Module]:
        return (self.teacher, *self.hard.modules())

    def signature(self) -> dict[str, object]:
        return {"loss": "distillation", "alpha": self.alpha, "temperature": self.t, "teacher": self.digest,
                "hard": self.hard.signature()}
