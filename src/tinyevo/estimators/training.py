"""Training an IR on a :class:`~tinyevo.data.Dataset` with PyTorch, on the CPU (default) or a GPU.

One training loop serves every training-based estimator and the final retraining (:func:`train_model`):
mini-batch SGD / Adam(W) with a per-step cosine schedule (optional linear warm-up), label smoothing, gradient
clipping and optional shift / flip augmentation. It is deterministic given ``seed`` (weights from
``build_model(ir, seed=seed)``, batch order and augmentation from generators derived from ``seed``; the global
RNGs are not touched), and it runs with a bounded number of torch threads. ``TrainConfig(device="cuda")`` (or
``"auto"``: a GPU when PyTorch sees one) trains on a GPU: the data are copied to it once and augmented there;
results are then reproducible only up to GPU non-determinism.

A ``monitor`` callback sees the validation accuracy at chosen points of training and may stop it
(learning-curve extrapolation hooks in here).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tinyevo.data import Dataset, resize
from tinyevo.errors import ConfigError, DataError, EstimationError
from tinyevo.estimators.memory_format import ChannelsLast
from tinyevo.ir import ArchIR
from tinyevo.nn import Ensemble, build_model
from tinyevo.nn.ensemble import input_size

AUGMENTATIONS = ("shift", "flip")  # tinyevo.run.options.AUGMENTATIONS (torch-free) is the same list
_DEVICE_RE = re.compile(r"cpu|auto|cuda(:\d+)?")  # matched with fullmatch: "$" would accept "cpu\n"


def _check_device_name(name: object) -> None:
    if not isinstance(name, str) or not _DEVICE_RE.fullmatch(name):
        raise ConfigError(f"unknown training device {name!r}; expected cpu, cuda, cuda:N or auto")


def resolve_device(name: str) -> torch.device:
    """The torch device of a :attr:`TrainConfig.device` name: ``cpu``, ``cuda`` / ``cuda:N``, or ``auto`` (the
    first GPU when PyTorch sees one, else the CPU). Asking for a GPU that PyTorch cannot see is a
    :class:`ConfigError`."""
    _check_device_name(name)
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
class TrainConfig:
    """How to train (keyword-only; defaults suit small tinyML networks on small images).

    ``lr`` / ``weight_decay`` default by optimiser: SGD (Nesterov momentum) 0.05 / 5e-4, Adam 0.01 / 0,
    AdamW 0.01 / 1e-2. ``threads``: torch intra-op threads while training; default 1, because search trains
    many small networks whose speed-up from intra-op threads is small (and negative on a loaded machine):
    parallelism comes from the executor's workers. Give more for one big final training. ``time_limit_s``
    bounds the training time: the first epoch is timed, and when ``epochs`` cannot finish in time the schedule
    is fitted to as many epochs as can (at least one); training also stops once the limit is exceeded.
    ``augment``: ``"shift"`` (random translation by up to ``shift_pixels``) and/or ``"flip"`` (random
    horizontal flip). ``device``: where to train, ``"cpu"`` (default), ``"cuda"`` / ``"cuda:N"`` or ``"auto"``
    (:func:`resolve_device`). ``channels_last``: keep the weights of a convolutional model in channels-last memory
    order while training (the model is given back in the usual order); ``None`` (default) does so on the CPU,
    where PyTorch's depthwise and small convolutions run about 1.6x faster that way
    (``benchmarks/train_speed.py``), and not on a GPU, where it was not measured. Strided 1x1 convolutions with
    fewer than 16 input channels stay in the usual order (they crash oneDNN; :mod:`.memory_format`).

    ``distill_alpha`` / ``distill_temperature``: when :func:`fit` is given a ``teacher`` network (knowledge
    distillation), the loss is ``(1 - alpha) * cross_entropy(student, labels) + alpha * T^2 * KL(teacher_T ||
    student_T)``, where ``_T`` are the softmax outputs at temperature ``T`` (Hinton et al., 2015). Without a
    teacher they do nothing.

    ``prune_ratio`` > 0 makes the training estimator evaluate each candidate *after* structured L1 channel
    pruning of that fraction of its prunable channels (:func:`tinyevo.nn.prune.prune_channels`) and
    ``prune_finetune_epochs`` epochs of fine-tuning at ``prune_finetune_lr`` (default: a tenth of ``lr``); see
    :class:`~tinyevo.estimators.TrainingEstimator`. :func:`train_model` (the final retraining) ignores them.

    ``restore_best``: at the end of training, give back the weights of the evaluation with the highest validation
    accuracy (the first of equals) instead of the last ones; :func:`train_model` then reports that evaluation's
    ``val_acc`` and its epoch (``epoch_restored``). Meant for a final retraining, whose validation curve is noisy;
    a search's fitness would be biased upwards by it.

    ``train_on_val``: :func:`train_model` trains on the training *and* validation splits (the usual last step once
    the architecture and the recipe were chosen on validation: more data, and the test split stays unseen). Its
    validation accuracy is then measured on seen data, so it is reported as ``val_acc_seen`` and ``val_acc`` is
    NaN. Not for a search (its fitness is the validation accuracy) nor with ``restore_best`` (which would pick
    weights by seen data).
    """

    epochs: int = 10
    batch_size: int = 128
    optimizer: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: float | None = None
    weight_decay: float | None = None
    momentum: float = 0.9
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    grad_clip: float | None = 5.0
    augment: tuple[str, ...] = ()
    shift_pixels: int = 2
    threads: int | None = None
    eval_batch_size: int = 1024
    time_limit_s: float | None = None
    prune_ratio: float = 0.0
    prune_finetune_epochs: int = 1
    prune_finetune_lr: float | None = None
    device: str = "cpu"
    channels_last: bool | None = None
    distill_alpha: float = 0.9
    distill_temperature: float = 4.0
    restore_best: bool = False
    train_on_val: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.eval_batch_size < 1:
            raise ConfigError("epochs, batch_size and eval_batch_size must be positive")
        if self.optimizer not in ("sgd", "adam", "adamw"):
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
        if not isinstance(self.restore_best, bool):
            raise ConfigError(f"restore_best must be true or false, got {self.restore_best!r}")
        if not isinstance(self.train_on_val, bool):
            raise ConfigError(f"train_on_val must be true or false, got {self.train_on_val!r}")
        if self.train_on_val and self.restore_best:
            raise ConfigError("restore_best picks weights by validation accuracy, which train_on_val trains on; "
                              "use one of them")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        ratio = self.prune_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= ratio < 1.0:
            raise ConfigError(f"prune_ratio must be a fraction in [0, 1), got {ratio!r}")
        epochs = self.prune_finetune_epochs
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ConfigError(f"prune_finetune_epochs must be an integer >= 0, got {epochs!r}")
        if self.prune_finetune_lr is not None and not self.prune_finetune_lr > 0:
            raise ConfigError(f"prune_finetune_lr must be positive, got {self.prune_finetune_lr}")
        _check_device_name(self.device)
        alpha, temp = self.distill_alpha, self.distill_temperature
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"distill_alpha must be in [0, 1], got {alpha!r}")
        if isinstance(temp, bool) or not isinstance(temp, (int, float)) or not temp > 0:
            raise ConfigError(f"distill_temperature must be positive, got {temp!r}")

    @property
    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else {"sgd": 0.05, "adam": 0.01, "adamw": 0.01}[self.optimizer]

    @property
    def finetune_config(self) -> TrainConfig:
        """How a pruned candidate is fine-tuned: ``prune_finetune_epochs`` (at least 1) epochs at
        ``prune_finetune_lr`` (default a tenth of the training lr), no warm-up, no time limit, otherwise as
        configured."""
        lr = self.prune_finetune_lr if self.prune_finetune_lr is not None else 0.1 * self.resolved_lr
        return replace(self, epochs=max(1, self.prune_finetune_epochs), lr=lr, warmup_epochs=0.0,
                       time_limit_s=None, prune_ratio=0.0)

    @property
    def resolved_weight_decay(self) -> float:
        if self.weight_decay is not None:
            return self.weight_decay
        return {"sgd": 5e-4, "adam": 0.0, "adamw": 1e-2}[self.optimizer]


@dataclass(frozen=True)
class EpochRecord:
    """One point of the learning curve (``epoch`` may be fractional when evaluated within an epoch)."""

    epoch: float
    train_loss: float
    val_acc: float
    lr: float
    seconds: float  # time since the start of training, validation included
    eval_seconds: float = 0.0  # of which spent measuring validation accuracy
    planned_epochs: int = 0  # the epochs the schedule spans (fewer than configured when fitted to time_limit_s)


@dataclass(frozen=True)
class TrainResult:
    """A trained model (in eval mode), its learning curve and final metrics (``val_acc``, ``test_acc``,
    ...)."""

    model: nn.Module
    history: tuple[EpochRecord, ...]
    metrics: Mapping[str, float] = field(default_factory=dict)
    stopped_early: bool = False


Monitor = Callable[[EpochRecord], bool]
"""Called at each evaluation point; returning True stops training."""


# --- helpers ------------------------------------------------------------------------------------------------


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


def fit_data_to_ir(ir: ArchIR, data: Dataset) -> Dataset:
    """``data`` resized to the IR's input resolution (spaces may search over it); channels must agree."""
    c, h, w = ir.input_shape
    if c != data.input_shape[0]:
        raise DataError(
            f"the architecture expects {c} input channel(s) but the data {data.name!r} has "
            f"{data.input_shape[0]}"
        )
    return data if (h, w) == data.input_shape[1:] else resize(data, (h, w))


def with_val_in_train(data: Dataset) -> Dataset:
    """``data`` whose training split also holds the validation rows (appended; the validation split stays as it
    is, for the learning curve): :class:`TrainConfig`'s ``train_on_val``."""
    return data.with_splits(x_train=np.concatenate([data.x_train, data.x_val]),
                            y_train=np.concatenate([data.y_train, data.y_val]))


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, copy=True))


@torch.no_grad()
def accuracy(
    model: nn.Module, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, *, batch_size: int = 1024
) -> float:
    """Top-1 accuracy of ``model`` (set to eval mode) on ``(x, y)``; NaN for an empty split."""
    if len(x) == 0:
        return math.nan
    xt = x if isinstance(x, torch.Tensor) else _tensor(x)
    yt = y if isinstance(y, torch.Tensor) else _tensor(y)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(xt), batch_size):
        logits = model(xt[i : i + batch_size].to(device))
        correct += int((logits.argmax(1) == yt[i : i + batch_size].to(device)).sum())
    model.train(was_training)
    return correct / len(xt)


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


def _augment(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    if "flip" in cfg.augment:
        flip = torch.rand(len(x), generator=gen, device=x.device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    if "shift" in cfg.augment and cfg.shift_pixels > 0:
        p = cfg.shift_pixels
        n, _, h, w = x.shape
        padded = F.pad(x, (p, p, p, p))
        dy = torch.randint(0, 2 * p + 1, (n,), generator=gen, device=x.device)
        dx = torch.randint(0, 2 * p + 1, (n,), generator=gen, device=x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])[:, None, :, None].expand(n, x.shape[1], h, w + 2 * p)
        x = padded.gather(2, rows)
        cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])[:, None, None, :].expand(n, x.shape[1], h, w)
        x = x.gather(3, cols)
    return x


@contextlib.contextmanager
def _cudnn_autotune(device: torch.device) -> Iterator[None]:
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


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)  # no weight decay on BN parameters and biases
    groups = [
        {"params": decay, "weight_decay": cfg.resolved_weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    lr = cfg.resolved_lr
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    adam = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    params = decay + no_decay
    if params and all(p.dtype in (torch.float32, torch.float64) for p in params) and \
            len({p.device for p in params}) == 1:
        try:  # one fused kernel for all parameters: 11-21 % of a small model's step (the same update within
            return adam(groups, lr=lr, fused=True)  # float rounding)
        except (RuntimeError, ValueError):  # pragma: no cover - a device or build without the fused kernel
            pass
    return adam(groups, lr=lr)


def _clip_grad_norm(params: Sequence[torch.Tensor], max_norm: float) -> None:
    """``nn.utils.clip_grad_norm_(params, max_norm)`` for parameters on one device and of one dtype (a model in
    training): the same foreach kernels and arithmetic, without regrouping the gradients at every step."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
    torch._foreach_mul_(grads, torch.clamp(max_norm / (total + 1e-6), max=1.0))


def _lr_at(step: int, total: int, warmup: int, base: float, schedule: str,
           anchor: tuple[int, float] | None = None) -> float:
    """The learning rate of ``step``: linear warm-up, then constant or a cosine down to 0 at ``total``. ``anchor``
    ``(step0, lr0)``: the cosine restarts from ``lr0`` at ``step0`` (a plan grown late, see :func:`fit`)."""
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    if schedule == "constant":
        return base
    start, top = (warmup, base) if anchor is None or step < anchor[0] else anchor
    t = (step - start) / max(total - start, 1)
    return 0.5 * top * (1.0 + math.cos(math.pi * min(t, 1.0)))


def _epochs_within(epochs: int, epoch_s: float, left_s: float, *, done: int = 0) -> int:
    """How many of ``epochs`` can be trained in all: the ``done`` ones plus those that fit in the ``left_s``
    seconds left when one takes ``epoch_s`` (at least the ones done)."""
    if epoch_s <= 0.0:
        return epochs
    return max(max(1, done), min(epochs, done + math.floor(max(left_s, 0.0) / epoch_s)))


class _Distiller:
    """The distillation term of the loss: the teacher's softened outputs on the same (augmented) batch. The teacher
    may be an :class:`~tinyevo.nn.Ensemble` (the mean of its members' logits); each network sees the batch resized
    to its own resolution."""

    def __init__(self, teacher: nn.Module, cfg: TrainConfig, input_shape: torch.Size) -> None:
        self.alpha, self.t = float(cfg.distill_alpha), float(cfg.distill_temperature)
        self.teacher = teacher if isinstance(teacher, Ensemble) else Ensemble([teacher])
        for member in self.teacher.members:
            want = input_size(member) or tuple(input_shape)
            if want[0] != input_shape[0]:
                raise ConfigError(f"the teacher expects {want[0]} input channel(s) but the data has {input_shape[0]}")
        digest = hashlib.sha1()
        for key, value in teacher.state_dict().items():
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        self.digest = digest.hexdigest()[:16]

    def loss(self, hard: torch.Tensor, logits: torch.Tensor, xb: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.teacher(xb)
        if target.shape != logits.shape:
            raise ConfigError(f"the teacher predicts {target.shape[-1]} classes but the model {logits.shape[-1]}")
        soft = F.kl_div(F.log_softmax(logits / self.t, dim=1), F.log_softmax(target / self.t, dim=1),
                        reduction="batchmean", log_target=True) * (self.t * self.t)
        return (1.0 - self.alpha) * hard + self.alpha * soft


# --- the loop -----------------------------------------------------------------------------------------------


def fit(
    model: nn.Module,
    data: Dataset,
    *,
    config: TrainConfig,
    seed: int,
    monitor: Monitor | None = None,
    evals_per_epoch: int = 1,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every_s: float = 60.0,
    checkpoint_tag: str = "",
    teacher: nn.Module | None = None,
) -> tuple[tuple[EpochRecord, ...], bool]:
    """Train ``model`` in place on ``data.x_train``; returns (learning curve, stopped early by the monitor).

    ``teacher``: a trained network whose softened outputs the model learns from as well as from the labels
    (knowledge distillation, weighted by ``config.distill_alpha`` at temperature ``config.distill_temperature``),
    or several as a :class:`~tinyevo.nn.Ensemble` (the mean of their logits). It sees the same augmented batches,
    resized to its own input resolution when that differs, and is not changed (it is moved to the training device
    and put in eval mode). It must predict the same number of classes.

    The model is moved to ``config.device`` and left there (:func:`train_model` moves it back to the CPU).

    ``checkpoint``: a file where the training state (weights, optimiser, schedule, RNG states, curve, time spent)
    is saved at the end of an epoch at most every ``checkpoint_every_s`` seconds. When the file exists and was
    written by the same training (configuration, seed, data size, architecture, ``checkpoint_tag``), training
    resumes from it: a training killed at any point, or cut by a 10-minute GPU job, goes on where it was saved,
    with the same result as an uninterrupted one on the same device. A checkpoint of another training is ignored
    and overwritten. ``time_limit_s`` counts the time of every session. Resuming on another kind of device
    reseeds the augmentation stream.

    The validation accuracy is measured ``evals_per_epoch`` times per epoch (the curve); training stops when
    the ``monitor`` says so or ``config.time_limit_s`` is exceeded. With a time limit, the schedule is re-planned
    after every epoch to the epochs that fit in the time left (``EpochRecord.planned_epochs``; see the loop). Raises
    :class:`EstimationError` when the loss becomes NaN or infinite.
    """
    device = resolve_device(config.device)
    model.to(device)
    if teacher is not None:
        teacher.to(device).eval()
    channels_last = config.channels_last if config.channels_last is not None else device.type == "cpu"
    nets = [m for m in (model, teacher) if channels_last and m is not None and any(p.ndim == 4 for p in m.parameters())]
    layout = ChannelsLast(nets)  # but the conv shapes that crash oneDNN's backward pass (memory_format.py)
    try:
        return _fit(model, data, config, seed, device, monitor, evals_per_epoch, checkpoint, checkpoint_every_s,
                    checkpoint_tag, teacher)
    finally:
        layout.undo()  # the models are given back in the usual memory order


def _fit(
    model: nn.Module,
    data: Dataset,
    cfg: TrainConfig,
    seed: int,
    device: torch.device,
    monitor: Monitor | None,
    evals_per_epoch: int,
    checkpoint: str | os.PathLike[str] | None,
    checkpoint_every_s: float,
    checkpoint_tag: str,
    teacher: nn.Module | None,
) -> tuple[tuple[EpochRecord, ...], bool]:
    n = len(data.x_train)
    if n < 2:
        raise DataError("need at least two training samples")
    x, y = _tensor(data.x_train).to(device), _tensor(data.y_train).to(device)
    xv, yv = _tensor(data.x_val).to(device), _tensor(data.y_val).to(device)
    rng = np.random.default_rng(seed)
    gen = torch.Generator(device=device).manual_seed(int(rng.integers(2**62)))
    bs = min(cfg.batch_size, n)
    steps_per_epoch = n // bs + (1 if n % bs >= 2 else 0)  # a last batch of one sample would break BatchNorm
    planned = cfg.epochs
    total = steps_per_epoch * planned
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    checkpoints = {
        min(steps_per_epoch, max(1, round(steps_per_epoch * (i + 1) / evals_per_epoch)))
        for i in range(max(1, evals_per_epoch))
    }
    opt = _optimizer(model, cfg)
    base_lr = cfg.resolved_lr
    history: list[EpochRecord] = []
    start = time.perf_counter()
    step = 0
    eval_seconds = 0.0
    epoch_times: list[float] = []
    first_epoch = 0
    distill = _Distiller(teacher, cfg, x.shape[1:]) if teacher is not None else None
    fingerprint = _fingerprint(model, cfg, seed=seed, n=n, tag=checkpoint_tag,
                               teacher=distill.digest if distill is not None else None)
    anchor: tuple[int, float] | None = None  # where a late-grown plan's cosine restarts (step, lr)
    best: tuple[float, dict[str, torch.Tensor]] | None = None  # restore_best: (val_acc, weights) of the best eval
    saved = _load_checkpoint(checkpoint, fingerprint) if checkpoint is not None else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        first_epoch, step, planned = int(saved["epoch"]), int(saved["step"]), int(saved["planned"])
        if saved.get("anchor") is not None:
            anchor = (int(saved["anchor"][0]), float(saved["anchor"][1]))
        total = steps_per_epoch * planned
        history = [EpochRecord(**h) for h in saved["history"]]
        eval_seconds, epoch_times = float(saved["eval_seconds"]), [float(t) for t in saved["epoch_times"]]
        rng.bit_generator.state = saved["np_rng"]
        if saved["gen_device"] == device.type:
            gen.set_state(saved["gen_state"])
        else:  # generator states do not move between device kinds
            gen.manual_seed(int(rng.integers(2**62)))
        start -= float(saved["elapsed"])
        if saved.get("best") is not None:
            best = (float(saved["best"]["val_acc"]), saved["best"]["model"])
    last_save = time.perf_counter()
    model.train()
    clipped = [p for p in model.parameters() if p.requires_grad]  # listed once, not at every step
    one_kind = len({(p.device, p.dtype) for p in clipped}) <= 1
    for epoch in range(first_epoch, cfg.epochs):
        if epoch >= planned:
            break
        perm = torch.from_numpy(rng.permutation(n)).to(device)
        running, seen = torch.zeros((), device=device), 0  # summed on the device: no sync per step on a GPU
        epoch_start = time.perf_counter()
        for i in range(steps_per_epoch):
            idx = perm[i * bs : (i + 1) * bs]
            xb, yb = x[idx], y[idx]
            if cfg.augment:
                xb = _augment(xb, cfg, gen)
            lr = _lr_at(step, total, warmup, base_lr, cfg.schedule, anchor)
            for g in opt.param_groups:
                g["lr"] = lr
            logits = model(xb)
            loss = F.cross_entropy(logits, yb, label_smoothing=cfg.label_smoothing)
            if distill is not None:
                loss = distill.loss(loss, logits, xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                if one_kind:
                    _clip_grad_norm(clipped, cfg.grad_clip)
                else:  # pragma: no cover - a model split over devices or dtypes
                    nn.utils.clip_grad_norm_(clipped, cfg.grad_clip)
            opt.step()
            step += 1
            running += loss.detach() * len(idx)
            seen += len(idx)
            if i + 1 in checkpoints:
                train_loss = float(running) / max(seen, 1)
                # a NaN or infinite loss makes the running sum non-finite: divergence is caught here, at every
                # evaluation point (at least once an epoch) and before the monitor sees the record, without a
                # host sync at every step (which cost 4 % of a small CPU model's step)
                if not math.isfinite(train_loss):
                    raise EstimationError(f"training diverged: the loss became {train_loss} in epoch {epoch + 1}")
                t_eval = time.perf_counter()
                val_acc = accuracy(model, xv, yv, batch_size=cfg.eval_batch_size)
                elapsed = time.perf_counter() - start
                eval_seconds += elapsed - (t_eval - start)
                rec = EpochRecord(
                    epoch=epoch + (i + 1) / steps_per_epoch,
                    train_loss=train_loss,
                    val_acc=val_acc,
                    lr=lr,
                    seconds=elapsed,
                    eval_seconds=eval_seconds,
                    planned_epochs=planned,
                )
                history.append(rec)
                if cfg.restore_best and _improves(val_acc, None if best is None else best[0]):
                    best = (val_acc, {k: v.detach().clone() for k, v in model.state_dict().items()})
                if monitor is not None and monitor(rec):
                    return _finish(model, history, best, stopped=True)
                if cfg.time_limit_s is not None and elapsed > cfg.time_limit_s:
                    return _finish(model, history, best, stopped=False)
        if cfg.time_limit_s is not None:
            # fit the schedule to the time: the remaining steps follow a cosine that ends with the last epoch.
            # Planned after the first epoch, and again after the second, whose time excludes one-off start-up
            # costs (a GPU's kernel selection and warm-up make the first epoch several times slower). Until a
            # quarter of the plan is done the plan follows the epoch times both ways (a machine shared at the
            # start). Later it shrinks when epochs slow down (a shared GPU or CPU), so the schedule still ends in
            # time, and grows again by two or more epochs when they speed up: the cosine then goes on from the
            # current learning rate over the longer plan (an anchor), so the rate never jumps up.
            now = time.perf_counter()
            epoch_times.append(now - epoch_start)
            later = epoch_times[1:][-3:]  # the mean of the last three epochs, never the start-up one
            recent = epoch_times[-1] if epoch <= 1 else sum(later) / len(later)
            fits = _epochs_within(cfg.epochs, recent, cfg.time_limit_s - (now - start), done=epoch + 1)
            if epoch <= 1 or 4 * (epoch + 1) <= planned:
                planned = fits
            elif fits >= planned + 2 and cfg.schedule == "cosine" and step >= warmup:
                anchor = (step, _lr_at(step, total, warmup, base_lr, cfg.schedule, anchor))
                planned = fits
            else:
                planned = min(planned, fits)
            total = steps_per_epoch * planned
        if checkpoint is not None and epoch + 1 < planned and time.perf_counter() - last_save >= checkpoint_every_s:
            _save_checkpoint(checkpoint, {
                "fingerprint": fingerprint, "epoch": epoch + 1, "step": step, "planned": planned,
                "anchor": None if anchor is None else [anchor[0], anchor[1]],
                "history": [dict(vars(h)) for h in history], "eval_seconds": eval_seconds,
                "epoch_times": epoch_times, "np_rng": rng.bit_generator.state, "gen_device": device.type,
                "gen_state": gen.get_state(), "elapsed": time.perf_counter() - start,
                "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "optimizer": opt.state_dict(),
                "best": None if best is None else {
                    "val_acc": best[0], "model": {k: v.detach().cpu() for k, v in best[1].items()}},
            })
            last_save = time.perf_counter()
    if history and history[-1].planned_epochs != planned:  # the last re-plan came after the last record
        history[-1] = replace(history[-1], planned_epochs=planned)
    return _finish(model, history, best, stopped=False)


def _improves(val_acc: float, best: float | None) -> bool:
    """Whether an evaluation with ``val_acc`` beats the best so far (a NaN never does; the first of equals stays)."""
    return math.isfinite(val_acc) and (best is None or val_acc > best)


def _finish(model: nn.Module, history: list[EpochRecord], best: tuple[float, dict[str, torch.Tensor]] | None, *,
            stopped: bool) -> tuple[tuple[EpochRecord, ...], bool]:
    """The end of :func:`_fit`: the best evaluation's weights back in the model (``restore_best``), eval mode."""
    if best is not None:
        model.load_state_dict(best[1])
    model.eval()
    return tuple(history), stopped


def _restored_record(history: Sequence[EpochRecord]) -> EpochRecord | None:
    """The evaluation whose weights :func:`fit` gives back with ``restore_best``: the first with the highest finite
    validation accuracy (None when there is none)."""
    kept: EpochRecord | None = None
    for rec in history:  # the rule fit applies as it trains
        if _improves(rec.val_acc, None if kept is None else kept.val_acc):
            kept = rec
    return kept


def _fingerprint(model: nn.Module, cfg: TrainConfig, *, seed: int, n: int, tag: str, teacher: str | None) -> str:
    """What must agree for a checkpoint to be resumed: the training's math (not its device, threads or time
    limit), seed, data size, architecture (parameter names and shapes), the caller's tag and the teacher's weights
    (``teacher``: their digest, None without one)."""
    ignored = {"device", "threads", "eval_batch_size", "channels_last", "time_limit_s"}
    for flag in ("restore_best", "train_on_val"):
        if not getattr(cfg, flag):  # (so checkpoints written before the option existed still match)
            ignored.add(flag)
    if teacher is None:  # the distillation options change nothing without a teacher
        ignored |= {"distill_alpha", "distill_temperature"}
    doc = {"config": {k: v for k, v in asdict(cfg).items() if k not in ignored}, "seed": seed, "n": n, "tag": tag,
           "shapes": {k: list(v.shape) for k, v in model.state_dict().items()}}
    if teacher is not None:
        doc["teacher"] = teacher
    return json.dumps(doc, sort_keys=True, default=str)


def _load_checkpoint(path: str | os.PathLike[str], fingerprint: str) -> dict | None:
    """The checkpoint in ``path`` if it exists, is readable and matches ``fingerprint``; else None."""
    if not os.path.isfile(path):
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a damaged checkpoint only costs the time it saved
        return None
    return saved if isinstance(saved, dict) and saved.get("fingerprint") == fingerprint else None


def _save_checkpoint(path: str | os.PathLike[str], state: dict) -> None:
    from tinyevo.fsutil import atomic_write

    atomic_write(path, lambda fh: torch.save(state, fh))  # unique temp file + rename: no planted link followed


def train_model(
    ir: ArchIR,
    data: Dataset,
    *,
    config: TrainConfig,
    seed: int,
    init_state: Mapping[str, torch.Tensor] | None = None,
    monitor: Monitor | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    teacher: nn.Module | None = None,
) -> TrainResult:
    """Build ``ir`` with weights from ``seed`` (or ``init_state``), train it, and measure it on every split.

    This is the final retraining: ``metrics`` holds ``val_acc`` and ``train_loss`` (of the last evaluation, or
    with ``config.restore_best`` of the one whose weights were restored, whose epoch is then ``epoch_restored``),
    ``test_acc``, ``train_acc`` (on the training split, in eval mode), ``train_time_s`` (including the time
    trained before a checkpoint this training resumed from), ``epochs`` (those
    trained, fractional when stopped within one), ``epochs_configured`` and ``epochs_planned`` (those the schedule
    spanned after fitting it to ``config.time_limit_s``). Data of another resolution than the IR's input is resized to it. ``checkpoint``:
    see :func:`fit` (a training that started from ``init_state`` resumes only from its own checkpoints).
    ``teacher``: distil from this trained network (see :func:`fit`); it is given back on the CPU.
    """
    data = fit_data_to_ir(ir, data)
    if config.train_on_val:
        data = with_val_in_train(data)
    with torch_threads(config.threads), _cudnn_autotune(resolve_device(config.device)):
        model = build_model(ir, seed=seed)
        if init_state is not None:
            model.load_state_dict(init_state)
        start = time.perf_counter()
        history, stopped = fit(model, data, config=config, seed=seed, monitor=monitor, checkpoint=checkpoint,
                               checkpoint_tag="from-init-state" if init_state is not None else "", teacher=teacher)
        # (a resumed training's records count the time trained before its checkpoint too)
        train_time = max(time.perf_counter() - start, history[-1].seconds if history else 0.0)
        kept = (_restored_record(history) if config.restore_best else None) or (history[-1] if history else None)
        metrics = {
            "val_acc": kept.val_acc if kept is not None else math.nan,
            "test_acc": accuracy(model, data.x_test, data.y_test, batch_size=config.eval_batch_size),
            "train_acc": accuracy(model, data.x_train, data.y_train, batch_size=config.eval_batch_size),
            "train_loss": kept.train_loss if kept is not None else math.nan,
            "train_time_s": train_time,
            "epochs": history[-1].epoch if history else 0.0,
            "epochs_configured": float(config.epochs),
            "epochs_planned": float(history[-1].planned_epochs) if history else float(config.epochs),
        }
        if config.restore_best and kept is not None:
            metrics["epoch_restored"] = kept.epoch
        if config.train_on_val:  # the validation split was trained on: its accuracy is no held-out estimate
            metrics["val_acc_seen"] = metrics["val_acc"]
            metrics["val_acc"] = math.nan
        model.to("cpu")
        if teacher is not None:
            teacher.to("cpu")
    return TrainResult(model=model, history=history, metrics=metrics, stopped_early=stopped)
