"""How to optimise: the :class:`Recipe` record and the pieces of the loop that follow from it alone (the device,
the optimiser, the learning-rate schedule, gradient clipping and the data augmentation)."""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from tinyevo.errors import ConfigError
from tinyevo.training.optim import FusedAdam, FusedSGD, Optimizer, ParamGroup

AUGMENTATIONS = ("shift", "flip")  # tinyevo.run.options.AUGMENTATIONS (torch-free) is the same list
_DEVICE_RE = re.compile(r"cpu|auto|cuda(:\d+)?")  # matched with fullmatch: "$" would accept "cpu\n"
_DEFAULT_LR = {"sgd": 0.05, "adam": 0.01, "adamw": 0.01}
_DEFAULT_WD = {"sgd": 5e-4, "adam": 0.0, "adamw": 1e-2}


def check_device_name(name: object) -> None:
    if not isinstance(name, str) or not _DEVICE_RE.fullmatch(name):
        raise ConfigError(f"unknown training device {name!r}; expected cpu, cuda, cuda:N or auto")


def resolve_device(name: str) -> torch.device:
    """The torch device of a :attr:`Recipe.device` name: ``cpu``, ``cuda`` / ``cuda:N``, or ``auto`` (the
    first GPU when PyTorch sees one, else the CPU). Asking for a GPU that PyTorch cannot see is a
    :class:`ConfigError`."""
    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"training device {name!r} asked for, but PyTorch sees no CUDA GPU "
                              "(use device = \"cpu\" or \"auto\")")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"training device {name!r} asked for, but PyTorch sees "
                              f"{torch.cuda.device_count()} GPU(s)")
    return torch.device(name)


@dataclass(frozen=True)
class Recipe:
    """How to optimise (keyword-only; defaults suit small tinyML networks on small images): what the loop
    (:func:`tinyevo.training.train`) needs besides the model, the data, the loss or step, and the callbacks.

    ``lr`` / ``weight_decay`` default by optimiser: SGD (Nesterov momentum) 0.05 / 5e-4, Adam 0.01 / 0,
    AdamW 0.01 / 1e-2 (no weight decay on biases and BatchNorm parameters). The learning rate follows a per-step
    ``schedule`` (``"cosine"`` to 0 or ``"constant"``) after ``warmup_epochs`` of linear warm-up. ``grad_clip``:
    the largest global gradient norm (None: no clipping). ``augment``: ``"shift"`` (random translation by up to
    ``shift_pixels``) and/or ``"flip"`` (random horizontal flip). ``threads``: torch intra-op threads while
    training (default 1: a search trains many small networks, and its parallelism comes from the executor's
    workers). ``device``: ``"cpu"`` (default), ``"cuda"`` / ``"cuda:N"`` or ``"auto"`` (:func:`resolve_device`).
    ``channels_last``: keep a convolutional model's weights in channels-last order while training (None: on the
    CPU only, where PyTorch's depthwise and small convolutions run about 1.6x faster that way,
    ``benchmarks/train_speed.py``; the crashing oneDNN shapes stay in the usual order, :mod:`.memory_format`).
    """

    epochs: int = 10
    batch_size: int = 128
    optimizer: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: float | None = None
    weight_decay: float | None = None
    momentum: float = 0.9
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: float = 0.0
    grad_clip: float | None = 5.0
    augment: tuple[str, ...] = ()
    shift_pixels: int = 2
    threads: int | None = None
    eval_batch_size: int = 1024
    device: str = "cpu"
    channels_last: bool | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.eval_batch_size < 1:
            raise ConfigError("epochs, batch_size and eval_batch_size must be positive")
        if self.optimizer not in _DEFAULT_LR:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; expected sgd, adam or adamw")
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError(f"unknown schedule {self.schedule!r}; expected cosine or constant")
        bad = [a for a in self.augment if a not in AUGMENTATIONS]
        if bad:
            raise ConfigError(f"unknown augmentation {bad[0]!r}; expected one of {AUGMENTATIONS}")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")
        check_device_name(self.device)

    @property
    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else _DEFAULT_LR[self.optimizer]

    @property
    def resolved_weight_decay(self) -> float:
        return self.weight_decay if self.weight_decay is not None else _DEFAULT_WD[self.optimizer]

    def math(self) -> dict[str, object]:
        """The fields that change the trained weights (not where or how fast): a checkpoint's identity."""
        ignored = {"device", "threads", "eval_batch_size", "channels_last"}
        return {k: v for k, v in asdict(self).items() if k not in ignored}


# --- what follows from a recipe -------------------------------------------------------------------------------


def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch intra-op threads (default 1; capped at the usable CPUs), then restore."""
    before = torch.get_num_threads()
    want = min(n if n is not None else 1, available_cpus())
    if want != before:
        torch.set_num_threads(want)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextlib.contextmanager
def cudnn_autotune(device: torch.device) -> Iterator[None]:
    """cuDNN picks the fastest convolution algorithms while training on a GPU (fixed shapes), then restores."""
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def make_optimizer(model: nn.Module, recipe: Recipe) -> Optimizer:
    """The recipe's optimiser over ``model``'s parameters, in two groups: those with weight decay, then the biases
    and BatchNorm parameters (no weight decay). Fused kernels without ``torch.optim`` (:mod:`.optim`): AdamW /
    Adam as ``torch.optim.AdamW`` / ``Adam`` with ``fused=True``, SGD with Nesterov momentum (plain SGD when
    ``momentum`` is 0) as ``torch.optim.SGD``."""
    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    groups = (ParamGroup(tuple(decay), recipe.resolved_weight_decay), ParamGroup(tuple(no_decay), 0.0))
    if recipe.optimizer == "sgd":
        return FusedSGD(groups, momentum=recipe.momentum, nesterov=recipe.momentum > 0)
    return FusedAdam(groups, decoupled_weight_decay=recipe.optimizer == "adamw")


def lr_at(step: int, total: int, warmup: int, base: float, schedule: str,
          anchor: tuple[int, float] | None = None) -> float:
    """The learning rate of ``step``: linear warm-up, then constant or a cosine down to 0 at ``total``. ``anchor``
    ``(step0, lr0)``: the cosine restarts from ``lr0`` at ``step0`` (a plan grown late, see :class:`TimeBudget`)."""
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    if schedule == "constant":
        return base
    start, top = (warmup, base) if anchor is None or step < anchor[0] else anchor
    t = (step - start) / max(total - start, 1)
    return 0.5 * top * (1.0 + math.cos(math.pi * min(t, 1.0)))


def augment(x: torch.Tensor, recipe: Recipe, gen: torch.Generator) -> torch.Tensor:
    """``x`` (NCHW) randomly flipped and / or shifted as ``recipe.augment`` says, drawing from ``gen``."""
    if "flip" in recipe.augment:
        flip = torch.rand(len(x), generator=gen, device=x.device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    if "shift" in recipe.augment and recipe.shift_pixels > 0:
        p = recipe.shift_pixels
        n, _, h, w = x.shape
        padded = F.pad(x, (p, p, p, p))
        dy = torch.randint(0, 2 * p + 1, (n,), generator=gen, device=x.device)
        dx = torch.randint(0, 2 * p + 1, (n,), generator=gen, device=x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])[:, None, :, None].expand(
            n, x.shape[1], h, w + 2 * p)
        x = padded.gather(2, rows)
        cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])[:, None, None, :].expand(n, x.shape[1], h, w)
        x = x.gather(3, cols)
    return x
