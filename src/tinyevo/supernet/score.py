"""Scoring candidates with the supernet's weights: BatchNorm recalibration, then validation accuracy.

A sub-network's BatchNorm statistics in the supernet are a blend over all the sub-networks trained through them,
so (as in Once-for-All / BigNAS) each candidate's statistics are re-estimated before it is scored: its BatchNorm
layers re-estimate mean and variance on one fixed, seeded batch of training images (a few hundred), and it is
evaluated on (a fixed, seeded subset of) the validation split. Nothing about the supernet changes. Scores are cached
by the network the genome decodes to (two genomes whose widths round to the same channels are one network, and the
weights they inherit are the same slices) and are deterministic (same calibration rows, same batches, no randomness).

The score is the accuracy of the module :meth:`Supernet.extract` returns after
``recalibrate_batchnorm(model, calibration_rows, batches=1)`` (tested against that), but it is computed without
building a module: :class:`CalibratedSubnet` walks the genome's IR over the sliced weights
(:meth:`Supernet.sliced_state`), re-estimates each BatchNorm's statistics in the calibration pass, folds the
BatchNorm into its conv (weight scaled, a bias added) and runs the validation rows through plain
``conv2d`` + in-place activation calls, in the channels-last memory layout (several times faster on CPUs for the
depthwise and 1x1 convolutions of MBConv blocks than the default layout).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from tinyevo.data import Dataset, subset
from tinyevo.errors import ConfigError, DataError
from tinyevo.ir import Act, Add, ArchIR, Conv2d, Dense, DepthwiseConv2d, GlobalPool, Identity, same_pads
from tinyevo.spaces.blocks import BlocksGenome
from tinyevo.supernet.model import Genome, Supernet, resize_batch
from tinyevo.supernet.train import finetune
from tinyevo.training import Recipe

#: The BatchNorm epsilon of the torch builder's (and the supernet's) ``nn.BatchNorm2d``.
BN_EPS = 1e-5

#: Most calibration rows (they run as one batch: the activations of all of them are held at once).
MAX_CALIBRATION_ROWS = 4096


@dataclass(frozen=True)
class ScoreConfig:
    """``calibration_rows``: training images the BatchNorm statistics are re-estimated on (one fixed, seeded
    subset, one batch); ``validation_rows``: validation images the accuracy is measured on (a fixed, seeded subset
    of the validation split; ``None``: all of it); ``batch_size``: rows per forward pass when evaluating;
    ``seed``: picks the calibration and validation rows; ``cache_size``: scores remembered (by the network a genome
    decodes to: genomes whose widths round to the same channels share one score).

    The defaults (500 calibration rows, 1,000 validation rows) come from ``benchmarks/supernet_score_rows.py``
    (docs/supernet.md, "Scoring"): against a reference on 2,000 calibration and 3,000 other validation rows, the
    scores of 120 genomes of the rank benchmark's space had a Kendall tau of 0.76 with these rows, 0.77 with 2,000
    validation rows (at about 1.6x the cost) and 0.68 with 500; 64-500 calibration rows differed by less than the
    spread between row draws.

    ``finetune_steps`` > 0 scores a candidate after that many optimiser steps of fine-tuning from its inherited
    weights instead (:func:`tinyevo.supernet.train.finetune`: the extracted sub-network, AdamW from
    ``finetune_lr`` with a cosine decay, about ``finetune_steps`` batches of ``finetune_batch_size`` from one
    fixed, seeded, stratified subset of ``finetune_steps * finetune_batch_size`` training rows (the whole split,
    passed over several times, where it is smaller); its BatchNorm statistics are those the fine-tuning leaves): the accuracy the candidate reaches when trained a little, which ranks architectures
    like stand-alone training far better than the inherited weights alone, at the cost of the steps. In
    ``benchmarks/supernet_rank.py`` (docs/supernet.md, "Scoring after a short fine-tuning") 200 steps took the
    Kendall tau against stand-alone training from 0.42 (inherited weights) to 0.745 (mean of three scorer seeds,
    0.72-0.77; 100 steps: 0.70), at about 7.6 CPU-s per candidate instead of 0.08; the same 200 steps from scratch
    ranked at 0.66.
    """

    calibration_rows: int = 500
    validation_rows: int | None = 1000
    batch_size: int = 250
    seed: int = 0
    cache_size: int = 100_000
    finetune_steps: int = 0
    finetune_lr: float = 0.003
    finetune_batch_size: int = 128

    def __post_init__(self) -> None:
        if not 2 <= self.calibration_rows <= MAX_CALIBRATION_ROWS:
            raise ConfigError(f"calibration_rows must be within 2..{MAX_CALIBRATION_ROWS} (one batch)")
        if self.validation_rows is not None and self.validation_rows < 1:
            raise ConfigError("validation_rows must be >= 1 (or None: the whole validation split)")
        if self.batch_size < 1 or self.cache_size < 0:
            raise ConfigError("batch_size must be >= 1 and cache_size >= 0")
        if self.finetune_steps < 0 or self.finetune_batch_size < 2 or not self.finetune_lr > 0:
            raise ConfigError("finetune_steps must be >= 0, finetune_batch_size >= 2 and finetune_lr > 0")


def _act_(y: torch.Tensor, act: str) -> torch.Tensor:
    """The builder's activation, in place."""
    if act == "relu6":
        return y.clamp_(0.0, 6.0)
    if act == "relu":
        return y.relu_()
    if act != "none":
        raise TypeError(f"no activation {act!r}")
    return y


def _channels_last(y: torch.Tensor) -> torch.Tensor:
    """``y`` in the channels-last layout (a conv over a one-channel input, whose layout is ambiguous, returns the
    default layout, and every conv after it would follow)."""
    if y.stride(1) == 1:
        return y
    return y.contiguous(memory_format=torch.channels_last)


@dataclass(frozen=True)
class _FoldedConv:
    """conv (+ folded BatchNorm as its bias) + activation, padded as the builder pads (TF "SAME")."""

    weight: torch.Tensor
    bias: torch.Tensor
    stride: int
    padding: tuple[int, int]
    pads: tuple[int, int, int, int] | None  # an explicit (left, right, top, bottom) pad when it is asymmetric
    groups: int
    act: str

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.pads is not None:
            x = F.pad(x, self.pads)
        return _act_(_channels_last(F.conv2d(x, self.weight, self.bias, self.stride, self.padding, 1, self.groups)),
                     self.act)


@dataclass(frozen=True)
class _Linear:
    weight: torch.Tensor
    bias: torch.Tensor
    act: str

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return _act_(F.linear(x.flatten(1), self.weight, self.bias), self.act)[:, :, None, None]


@dataclass(frozen=True)
class _Sum:
    act: str

    def __call__(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0] + xs[1]
        for x in xs[2:]:
            out.add_(x)
        return _act_(out, self.act)


@dataclass(frozen=True)
class _Pool:
    mode: str

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True) if self.mode == "avg" else x.amax(dim=(2, 3), keepdim=True)


@dataclass(frozen=True)
class _Activation:
    act: str

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return _act_(x.clone(), self.act)  # (its input may be read by another node)


def _same(x: torch.Tensor) -> torch.Tensor:
    return x


_Step = tuple[str, Callable[..., torch.Tensor], tuple[str, ...], tuple[str, ...]]  # name, fn, inputs, freed after


class CalibratedSubnet:
    """One sub-network of a supernet, run straight from its sliced weights with BatchNorm statistics re-estimated
    on a calibration batch and folded into the convs.

    ``CalibratedSubnet.calibrate(supernet, genome, calib)`` runs ``calib`` (at the genome's resolution) through the
    sub-network with each BatchNorm normalising by the batch's statistics (training mode), keeps each BatchNorm's
    batch mean and unbiased variance as its statistics (what ``recalibrate_batchnorm`` with one batch stores) and
    folds them and the affine parameters into the conv before it. Calling the result gives the logits that the
    extracted module (:meth:`Supernet.extract`) so recalibrated gives in eval mode, up to float rounding. The
    supernet is not changed. Ops outside what a supernet's IR holds (conv, depthwise conv, add, global pool, dense,
    activation) raise ``TypeError``."""

    def __init__(self, steps: list[_Step], input_name: str, output: str) -> None:
        self._steps, self._input, self._output = steps, input_name, output

    @classmethod
    @torch.inference_mode()
    def calibrate(cls, supernet: Supernet, genome: Genome, calib: torch.Tensor) -> CalibratedSubnet:
        g = supernet.genome(genome)
        ir = supernet.space.decode(g)
        state = supernet.sliced_state(g)
        if len(calib) < 2:
            raise ConfigError("BatchNorm recalibration needs at least 2 rows")
        last_use: dict[str, int] = {}
        for i, n in enumerate(ir.nodes):
            for s in n.inputs:
                last_use[s] = i
        env: dict[str, torch.Tensor] = {ir.input_name: calib.contiguous(memory_format=torch.channels_last)}
        steps: list[_Step] = []
        for i, node in enumerate(ir.nodes[1:], start=1):
            xs = [env[s] for s in node.inputs]
            fn, y = _calibrated_step(ir, node.name, node.op, state, xs)
            free = tuple(s for s in dict.fromkeys(node.inputs) if last_use[s] == i and s != ir.output)
            steps.append((node.name, fn, tuple(node.inputs), free))
            env[node.name] = y
            for s in free:
                del env[s]
        return cls(steps, ir.input_name, ir.output)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, classes) of ``x`` (N, C, H, W at the genome's resolution)."""
        env = {self._input: x.contiguous(memory_format=torch.channels_last)}
        for name, fn, inputs, free in self._steps:
            env[name] = fn(*(env[s] for s in inputs))
            for s in free:
                del env[s]
        return env[self._output].flatten(1)


def _taps(size: int, kernel: int, stride: int) -> tuple[int, int, int, int]:
    """(first, end) kernel taps that ever read an input row, and the (before, after) padding that the kernel cut
    to those taps needs, for TF "SAME" along one axis of ``size`` rows. A kernel larger than the map (a 7x7
    kernel over a 2x2 map) only multiplies zeros with its outer taps; cutting them changes no output."""
    before, after = same_pads(size, kernel, stride)
    out = (size + before + after - kernel) // stride + 1
    first, end = max(0, before - stride * (out - 1)), min(kernel, size + before)
    before -= first
    return first, end, before, stride * (out - 1) + (end - first) - size - before


def _geometry(
    weight: torch.Tensor, h: int, w: int, stride: int, *, same: bool, extend: bool
) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int, int, int] | None]:
    """(weight, conv padding, explicit pad or None) of a conv over an ``h x w`` map that computes what the builder's
    conv (TF "SAME": symmetric padding in the conv, an explicit ``ZeroPad2d`` when asymmetric) computes.

    Taps that only ever read padding are cut (:func:`_taps`). With ``extend`` an asymmetric padding becomes a
    symmetric one by zero taps added to the kernel on the side that pads less (output ``i`` then reads the same
    rows with the same weights; the extra taps multiply padding by zero), which costs a few multiply-adds but
    not a padded copy of the activations -- faster for depthwise and one-channel convs; other convs get an explicit
    pad."""
    if not same:
        return weight.contiguous(memory_format=torch.channels_last), (0, 0), None
    k = weight.shape[-1]
    h0, h1, top, bottom = _taps(h, k, stride)
    w0, w1, left, right = _taps(w, k, stride)
    weight = weight[:, :, h0:h1, w0:w1]
    if top == bottom and left == right:
        return weight.contiguous(memory_format=torch.channels_last), (top, left), None
    if extend:
        ph, pw = max(top, bottom), max(left, right)
        weight = F.pad(weight, (pw - left, pw - right, ph - top, ph - bottom))
        return weight.contiguous(memory_format=torch.channels_last), (ph, pw), None
    return weight.contiguous(memory_format=torch.channels_last), (0, 0), (left, right, top, bottom)


def _calibrated_step(
    ir: ArchIR, name: str, op: object, state: dict[str, torch.Tensor], xs: list[torch.Tensor]
) -> tuple[Callable[..., torch.Tensor], torch.Tensor]:
    """(the folded step of node ``name``, its output on the calibration batch ``xs``)."""
    key = "layers." + name.replace(".", "_") + "."
    if isinstance(op, Conv2d | DepthwiseConv2d):
        (x,) = xs
        c_in = x.shape[1]
        depthwise = isinstance(op, DepthwiseConv2d)
        groups = c_in if depthwise else op.groups
        weight, padding, pads = _geometry(state[key + "conv.weight"], x.shape[2], x.shape[3], op.stride,
                                          same=op.padding == "same", extend=depthwise or c_in == 1)
        y = _channels_last(F.conv2d(x if pads is None else F.pad(x, pads), weight, None, op.stride, padding, 1,
                                    groups))
        c = y.shape[1]
        mean, var = torch.zeros(c), torch.ones(c)
        gamma, beta = state[key + "bn.weight"], state[key + "bn.bias"]
        # training-mode BatchNorm: normalise by the batch's statistics; momentum 1 stores them (unbiased variance)
        y = _act_(F.batch_norm(y, mean, var, gamma, beta, True, 1.0, BN_EPS), op.act)
        scale = gamma * torch.rsqrt(var + BN_EPS)
        folded = (weight * scale[:, None, None, None]).contiguous(memory_format=torch.channels_last)
        return _FoldedConv(folded, beta - mean * scale, op.stride, padding, pads, groups, op.act), y
    if isinstance(op, Dense):
        fn: Callable[..., torch.Tensor] = _Linear(state[key + "linear.weight"], state[key + "linear.bias"], op.act)
    elif isinstance(op, Add):
        fn = _Sum(op.act)
    elif isinstance(op, GlobalPool):
        fn = _Pool(op.mode)
    elif isinstance(op, Act):
        fn = _Activation(op.fn)
    elif isinstance(op, Identity):
        fn = _same
    else:
        raise TypeError(f"the supernet scorer has no rule for op {type(op).__name__} (node {name!r} of {ir.name!r})")
    return fn, fn(*xs)


def validation_index(n_val: int, config: ScoreConfig) -> np.ndarray:
    """The rows (sorted) of a validation split of ``n_val`` rows that scores under ``config`` are measured on."""
    if config.validation_rows is None or config.validation_rows >= n_val:
        return np.arange(n_val)
    return np.sort(np.random.default_rng([config.seed, 1]).choice(n_val, size=config.validation_rows, replace=False))


def finetune_data(data: Dataset, config: ScoreConfig) -> Dataset:
    """The data of a fine-tuned score (``config.finetune_steps`` > 0): a fixed, seeded, stratified subset of
    ``finetune_steps * finetune_batch_size`` training rows (all of them, passed over more than once, where the split
    is smaller) and the scorer's validation rows (:func:`validation_index`)."""
    rows = config.finetune_steps * config.finetune_batch_size
    train = subset(data, rows / len(data.x_train), seed=config.seed) if rows < len(data.x_train) else data
    val = validation_index(len(data.x_val), config)
    return train.with_splits(x_val=np.asarray(data.x_val)[val], y_val=np.asarray(data.y_val)[val])


def finetune_recipe(config: ScoreConfig, train_rows: int) -> Recipe:
    """The recipe of a fine-tuned score over ``train_rows`` rows: AdamW from ``finetune_lr``, cosine decay, about
    ``finetune_steps`` steps of ``finetune_batch_size``."""
    per_pass = max(1, train_rows // config.finetune_batch_size)
    return Recipe(epochs=max(1, round(config.finetune_steps / per_pass)), batch_size=config.finetune_batch_size,
                  optimizer="adamw", lr=config.finetune_lr, eval_batch_size=config.batch_size)


class SupernetScorer:
    """Validation accuracy of sub-networks of ``supernet`` on ``data`` with inherited weights (see the module
    docstring). ``score(genome)`` / ``score_many(genomes)``; ``calls`` counts the candidates actually
    evaluated (cache misses)."""

    def __init__(self, supernet: Supernet, data: Dataset, *, config: ScoreConfig | None = None) -> None:
        cfg = config or ScoreConfig()
        if len(data.x_val) == 0:
            raise DataError("the data has no validation split; the supernet scores on it")
        if data.input_shape[0] != supernet.space.input_shape[0]:
            raise DataError(
                f"the supernet reads {supernet.space.input_shape[0]} input channel(s), the data "
                f"{data.name!r} has {data.input_shape[0]}"
            )
        if data.num_classes != supernet.space.num_classes:
            raise DataError(f"the supernet has {supernet.space.num_classes} classes, the data {data.num_classes}")
        self.supernet, self.data, self.config = supernet, data, cfg
        rng = np.random.default_rng(cfg.seed)
        n = min(cfg.calibration_rows, len(data.x_train))
        rows = np.sort(rng.choice(len(data.x_train), size=n, replace=False))
        self._calib = torch.tensor(np.asarray(data.x_train)[rows], dtype=torch.float32)
        #: the rows of the validation split the scores are measured on (sorted)
        self.validation_index = validation_index(len(data.x_val), cfg)
        self._x_val = torch.tensor(np.asarray(data.x_val)[self.validation_index], dtype=torch.float32)
        self._y_val = torch.tensor(np.asarray(data.y_val)[self.validation_index], dtype=torch.long)
        self._inputs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._cache: OrderedDict[ArchIR, float] = OrderedDict()
        self._finetune_data: Dataset | None = None
        self.calls = 0

    def inputs(self, resolution: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(calibration images, validation images, validation labels) at ``resolution`` (resampled once per
        resolution, channels-last)."""
        hit = self._inputs.get(resolution)
        if hit is None:
            bs = self.config.batch_size
            with torch.inference_mode():
                val = torch.cat([resize_batch(self._x_val[i : i + bs], resolution)
                                 for i in range(0, len(self._x_val), bs)])
                hit = (resize_batch(self._calib, resolution).contiguous(memory_format=torch.channels_last),
                       val.contiguous(memory_format=torch.channels_last))
            self._inputs[resolution] = hit
        return hit[0], hit[1], self._y_val

    def calibrated(self, genome: Genome) -> CalibratedSubnet:
        """Sub-network ``genome`` with its BatchNorm statistics re-estimated on the calibration rows."""
        g = self.supernet.genome(genome)
        return CalibratedSubnet.calibrate(self.supernet, g, self.inputs(g.resolution)[0])

    def score(self, genome: Genome) -> float:
        """Validation accuracy (a fraction) of sub-network ``genome``."""
        g = self.supernet.genome(genome)
        key = self.supernet.space.decode(g)  # genomes that decode to one network (rounded widths) share a score
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        acc = self._finetuned(g) if self.config.finetune_steps else self._inherited(g)
        self.calls += 1
        if self.config.cache_size:
            self._cache[key] = acc
            while len(self._cache) > self.config.cache_size:
                self._cache.popitem(last=False)
        return acc

    def _inherited(self, g: BlocksGenome) -> float:
        net = self.calibrated(g)
        _, x_val, y_val = self.inputs(g.resolution)
        correct = 0
        bs = self.config.batch_size
        for i in range(0, len(x_val), bs):
            correct += int((net(x_val[i : i + bs]).argmax(1) == y_val[i : i + bs]).sum())
        return correct / len(x_val)

    def _finetuned(self, g: BlocksGenome) -> float:
        if self._finetune_data is None:
            self._finetune_data = finetune_data(self.data, self.config)
        data = self._finetune_data
        _, fitted = finetune(self.supernet, g, data, finetune_recipe(self.config, len(data.x_train)),
                             seed=self.config.seed)
        return fitted.history[-1].val_acc

    def score_many(self, genomes: Iterable[Genome]) -> list[float]:
        return [self.score(g) for g in genomes]


__all__ = ["BN_EPS", "CalibratedSubnet", "ScoreConfig", "SupernetScorer", "finetune_data", "finetune_recipe",
           "validation_index"]
