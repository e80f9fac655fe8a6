"""Torch-side helpers of the deployment step: rebuild a trained network, channel-last wrapper, predictions,
fine-tuning (on :func:`tinyevo.training.train`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn

from tinyevo.deploy.errors import DeployError
from tinyevo.deploy.graph import strip_passthrough
from tinyevo.ir import ArchIR
from tinyevo.nn import IRModule, build_model
from tinyevo.training import Recipe, train

log = logging.getLogger(__name__)


class LabelledData(Protocol):
    """What deployment reads from a :class:`tinyevo.data.Dataset` (arrays are ``(N, C, H, W)`` float32)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_weights(ir: ArchIR, state_dict: Mapping[str, torch.Tensor] | None, *, seed: int = 0) -> IRModule:
    """The network of ``ir`` (after :func:`strip_passthrough`) in eval mode, with the trained ``state_dict``.

    ``state_dict`` may come from the unstripped network: stripping keeps node names, and parameters of nodes that
    no longer reach the output are ignored. ``None`` keeps the seeded initial weights (useful in tests).
    """
    lean = strip_passthrough(ir)
    model = build_model(lean, seed=seed)
    if state_dict is not None:
        own = model.state_dict()
        missing = [k for k in own if k not in state_dict]
        if missing:
            raise DeployError(
                f"the weights do not belong to this architecture: {len(missing)} tensor(s) missing, "
                f"e.g. {missing[0]!r}"
            )
        bad = [k for k in own if tuple(own[k].shape) != tuple(state_dict[k].shape)]
        if bad:
            raise DeployError(
                f"the weights do not belong to this architecture: {bad[0]!r} has shape "
                f"{tuple(state_dict[bad[0]].shape)}, expected {tuple(own[bad[0]].shape)}"
            )
        model.load_state_dict({k: state_dict[k] for k in own})
    return model.eval()


class _DenseNHWC(nn.Module):
    """A builder ``_Dense`` over a feature map, flattening in (H, W, C) order with permuted weight columns.

    Numerically the same function; in TFLite the flatten of an NHWC tensor is then one RESHAPE instead of a
    TRANSPOSE (to channel-major order) plus a RESHAPE.
    """

    def __init__(self, dense: nn.Module, shape: tuple[int, int, int]) -> None:
        super().__init__()
        c, h, w = shape
        self.linear = nn.Linear(dense.linear.in_features, dense.linear.out_features)
        with torch.no_grad():
            weight = dense.linear.weight.reshape(-1, c, h, w).permute(0, 2, 3, 1).reshape(-1, c * h * w)
            self.linear.weight.copy_(weight)
            self.linear.bias.copy_(dense.linear.bias)
        self.act = dense.act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.linear(x.permute(0, 2, 3, 1).flatten(1)))
        return y[:, :, None, None]


class _TwoChannelPool(nn.Module):
    """Runs a 1-channel padded average pool on two copies of its input and keeps one.

    litert-torch 0.10 lowers a padded stride-2 average pool of a single-channel tensor to
    ``STABLEHLO_REDUCE_WINDOW`` ops that TFLite-Micro cannot run (``ceil_mode`` with ``count_include_pad=False``
    gets no composite; the windowed sums become a pool again only where the layout transposes around them are
    not reshapes, i.e. with more than one channel); with two channels it emits AVERAGE_POOL_2D, plus a
    CONCATENATION and a SLICE that :func:`tinyevo.deploy.tflite.strip_flatbuffer` folds away again.
    """

    def __init__(self, pool: nn.Module) -> None:
        super().__init__()
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.cat([x, x], 1))[:, :1]


def export_friendly(model: IRModule) -> IRModule:
    """A copy of ``model``, numerically the same, whose layers export to clean TFLite graphs.

    Dense layers over feature maps flatten in NHWC order (:class:`_DenseNHWC`); padded strided average pools
    of 1-channel tensors get a second channel (:class:`_TwoChannelPool`).
    """
    import copy

    from tinyevo.ir import Dense, Pool2d

    out = copy.deepcopy(model)
    ir = model.ir
    for node in ir.nodes:
        key = node.name.replace(".", "_")
        if isinstance(node.op, Dense):
            shape = ir.shapes[node.inputs[0]]
            if shape[1] * shape[2] > 1:
                out.layers[key] = _DenseNHWC(model.layers[key], shape)
        elif (isinstance(node.op, Pool2d) and node.op.mode == "avg" and node.op.stride >= 2
              and ir.shapes[node.inputs[0]][0] == 1 and any(getattr(model.layers[key], "pads", ()))):
            out.layers[key] = _TwoChannelPool(model.layers[key])
    return out.train(model.training)


class ChannelLast(nn.Module):
    """Takes ``(N, H, W, C)`` input (TFLite's layout) and runs a channel-first network on it.

    The permute is absorbed by the TFLite converter's layout pass, so the ``.tflite`` has NHWC I/O and no
    TRANSPOSE at its boundary; layers are adjusted by :func:`export_friendly` (e.g. dense layers over feature
    maps flatten in NHWC order, so there is no TRANSPOSE before them either).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = export_friendly(model) if isinstance(model, IRModule) else model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.permute(0, 3, 1, 2))


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every conv + BatchNorm pair folded into one conv with a bias (eval statistics).

    Used for quantisation-aware fine-tuning with frozen BN statistics: the exported graph then has no
    BatchNorm, so PT2E's conv-BN QAT rewriting (slow: it re-traces many patterns) is not needed.
    """
    import copy

    out = copy.deepcopy(model)
    for module in out.modules():
        conv, bn = getattr(module, "conv", None), getattr(module, "bn", None)
        if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.BatchNorm2d):
            continue
        with torch.no_grad():
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                               conv.dilation, conv.groups, bias=True)
            folded.weight.copy_(conv.weight * scale[:, None, None, None])
            base = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            folded.bias.copy_(bn.bias + (base - bn.running_mean) * scale)
        module.conv = folded
        module.bn = nn.Identity()
    return out


def nhwc(x: np.ndarray) -> np.ndarray:
    """``(N, C, H, W)`` -> ``(N, H, W, C)`` (contiguous float32)."""
    return np.array(np.transpose(x, (0, 2, 3, 1)), dtype=np.float32, order="C")  # a writable copy


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """Class predictions of ``model`` (which must accept ``x``'s layout) for every row of ``x``."""
    out = []
    for i in range(0, len(x), batch_size):
        # a copy: the rows may be a read-only view (a cached data set), which torch.from_numpy warns about
        logits = model(torch.from_numpy(np.array(x[i : i + batch_size], dtype=np.float32)))
        out.append(logits.argmax(1).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class FinetuneConfig:
    """A short supervised fine-tuning run (after pruning, or quantisation-aware)."""

    epochs: int = 2
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    max_samples: int | None = None  # cap on the training rows used

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0:
            raise DeployError(f"invalid fine-tuning settings {self}")

    def recipe(self, batch_size: int | None = None) -> Recipe:
        """The training recipe of this fine-tuning (``batch_size``: the rows per batch actually used)."""
        return Recipe(epochs=max(1, self.epochs), batch_size=batch_size or self.batch_size, optimizer="adam",
                      lr=self.lr, weight_decay=self.weight_decay, schedule="constant", grad_clip=None,
                      channels_last=False)


def finetune(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    config: FinetuneConfig,
    rng: np.random.Generator,
    train_mode: bool = True,
) -> None:
    """Fine-tune ``model`` in place with cross-entropy on ``(x, y)``: :func:`tinyevo.training.train` with
    :meth:`FinetuneConfig.recipe` (Adam at a constant learning rate, no clipping, no augmentation).

    Every batch has exactly the batch size (``config.batch_size``, at most the rows) because an exported program
    fixes its batch size: the rows trained on are a random subset (from ``rng``, as is the loop's seed) of at most
    ``config.max_samples`` rows whose number is a multiple of the batch size. ``train_mode=False`` leaves the
    module's mode to the caller: an exported QAT program is switched with ``move_exported_model_to_train`` /
    ``_eval`` and refuses ``.train()`` / ``.eval()``.
    """
    from tinyevo.data import Dataset

    n = len(x) if config.max_samples is None else min(len(x), config.max_samples)
    if n < 2 or config.epochs == 0:
        return
    bs = min(config.batch_size, n)
    rows = np.sort(rng.permutation(len(x))[: n - n % bs])
    xs = np.ascontiguousarray(np.asarray(x)[rows], dtype=np.float32)
    ys = np.asarray(y, dtype=np.int64)[rows]
    data = Dataset(name="finetune", x_train=xs, y_train=ys, x_val=xs[:0], y_val=ys[:0], x_test=xs[:0],
                   y_test=ys[:0], num_classes=int(ys.max()) + 1)
    net = model if train_mode else _CallerSetsMode(model)
    train(net, data, config.recipe(bs), seed=int(rng.integers(2**62)))


class _CallerSetsMode(nn.Module):
    """``module`` whose train / eval mode the caller switches (``train()`` / ``eval()`` only set the flag)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)

    def train(self, mode: bool = True) -> _CallerSetsMode:
        self.training = mode
        return self
