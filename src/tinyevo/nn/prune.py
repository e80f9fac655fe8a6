"""Structured channel pruning (L1 norm of the BN-folded filters) as an IR transform plus weight slicing.

Channels are tracked through the graph as *classes*: every output channel of a dense ``Conv2d`` starts a class;
depthwise convs, pooling, activations and skips pass classes through; an ``Add`` ties the channels it sums
(they must be pruned together); a ``Concat`` lists its inputs' classes side by side; a ``Dense`` reading a
feature map reads each class's ``H * W`` features. Channels of the network input and output, of grouped convs and
of dense layers are never pruned.

A class's importance is the sum of the L1 norms of its filters after folding BatchNorm (``|gamma| / sqrt(var +
eps) * |W|``: the filter as deployed). Within each *channel space* (the classes of a set of convs tied by adds)
the ``fraction`` least important classes are removed, keeping at least one channel per conv. The result is a
smaller :class:`~tinyevo.ir.ArchIR` (same node names, fewer ``out_channels``) and its sliced ``state_dict``;
The search (:mod:`tinyevo.estimators.training_estimator`, ``prune_ratio``) and deployment
(:func:`tinyevo.deploy.prune.prune_and_finetune`) both prune with this module, so neither imports the other.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tinyevo.errors import DeployError
from tinyevo.ir import (
    Act,
    Add,
    ArchIR,
    Concat,
    Conv2d,
    Dense,
    DepthwiseConv2d,
    GlobalPool,
    Identity,
    Input,
    Node,
    Pool2d,
    Zero,
)

__all__ = ["Pruned", "compensate_dense_bias", "prune_channels"]

_PASS_THROUGH = (DepthwiseConv2d, Pool2d, GlobalPool, Act, Identity, Zero)


def _key(name: str) -> str:
    """The builder's module key of node ``name`` (see :mod:`tinyevo.nn.builder`)."""
    return "layers." + name.replace(".", "_")


class _Classes:
    """Union-find over channel ids; an id is ``(producer node, channel index)``."""

    def __init__(self) -> None:
        self.parent: dict[tuple[str, int], tuple[str, int]] = {}
        self.fixed: set[tuple[str, int]] = set()

    def new(self, node: str, n: int, *, prunable: bool) -> list[tuple[str, int]]:
        ids = [(node, i) for i in range(n)]
        for i in ids:
            self.parent[i] = i
            if not prunable:
                self.fixed.add(i)
        return ids

    def find(self, i: tuple[str, int]) -> tuple[str, int]:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: tuple[str, int], b: tuple[str, int]) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra

    def fix(self, ids: list[tuple[str, int]]) -> None:
        self.fixed.update(ids)


def _trace(ir: ArchIR) -> tuple[dict[str, list[tuple[str, int]]], _Classes]:
    """Channel ids of every tensor."""
    cls = _Classes()
    ids: dict[str, list[tuple[str, int]]] = {}
    for node in ir.nodes:
        op = node.op
        c = ir.shapes[node.name][0]
        ins = [ids[s] for s in node.inputs]
        if isinstance(op, Input):
            ids[node.name] = cls.new(node.name, c, prunable=False)
        elif isinstance(op, Conv2d):
            ids[node.name] = cls.new(node.name, c, prunable=op.groups == 1)
            if op.groups > 1:
                cls.fix(ins[0])
        elif isinstance(op, _PASS_THROUGH):
            ids[node.name] = list(ins[0])
        elif isinstance(op, Add):
            for other in ins[1:]:
                for a, b in zip(ins[0], other, strict=True):
                    cls.union(a, b)
            ids[node.name] = list(ins[0])
        elif isinstance(op, Concat):
            ids[node.name] = [i for part in ins for i in part]
        elif isinstance(op, Dense):
            ids[node.name] = cls.new(node.name, c, prunable=False)
        else:
            raise DeployError(f"pruning has no rule for op {type(op).__name__} (node {node.name!r})")
    cls.fix(ids[ir.output])  # the network's outputs (classes) stay, e.g. of a conv classifier
    return ids, cls


def _folded_l1(state: Mapping[str, torch.Tensor], name: str) -> np.ndarray:
    k = _key(name)
    w = state[f"{k}.conv.weight"].detach().double()
    l1 = w.abs().flatten(1).sum(1)
    if f"{k}.bn.weight" in state:
        gamma = state[f"{k}.bn.weight"].detach().double()
        var = state[f"{k}.bn.running_var"].detach().double()
        l1 = l1 * gamma.abs() / torch.sqrt(var + 1e-5)
    return l1.numpy()


@dataclass(frozen=True)
class Pruned:
    """A pruned architecture and its sliced weights."""

    ir: ArchIR
    state_dict: dict[str, torch.Tensor]
    channels_before: int  # prunable channels (outputs of dense convs)
    channels_after: int
    removed: tuple[tuple[str, int], ...]  # (conv node, channel index) removed
    kept: dict[str, tuple[int, ...]]  # node of the original IR -> indices of its output channels that remain

    @property
    def removed_fraction(self) -> float:
        return 1.0 - self.channels_after / self.channels_before if self.channels_before else 0.0


def prune_channels(ir: ArchIR, state_dict: Mapping[str, torch.Tensor], fraction: float) -> Pruned:
    """Remove ``fraction`` of the prunable channels of each channel space (see the module docstring)."""
    if not 0.0 <= fraction < 1.0:
        raise DeployError(f"the pruning fraction must be in [0, 1), got {fraction}")
    ids, cls = _trace(ir)
    convs = [n for n in ir.nodes if isinstance(n.op, Conv2d) and n.op.groups == 1]
    importance: dict[tuple[str, int], float] = {}
    members: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for n in convs:
        if f"{_key(n.name)}.conv.weight" not in state_dict:
            raise DeployError(f"no weights for node {n.name!r} in the state dict")
        for i, v in enumerate(_folded_l1(state_dict, n.name)):
            r = cls.find((n.name, i))
            importance[r] = importance.get(r, 0.0) + float(v)
            members.setdefault(r, []).append((n.name, i))
    fixed_roots = {cls.find(i) for i in cls.fixed}
    # channel spaces: classes connected through shared producers
    space_of: dict[str, str] = {n.name: n.name for n in convs}

    def space(a: str) -> str:
        while space_of[a] != a:
            a = space_of[a]
        return a

    for root, mem in members.items():
        first = space(mem[0][0])
        for node, _ in mem[1:]:
            other = space(node)
            if other != first:
                space_of[other] = first
    by_space: dict[str, list[tuple[str, int]]] = {}
    for root, mem in members.items():
        if root not in fixed_roots:
            by_space.setdefault(space(mem[0][0]), []).append(root)
    removed_roots: set[tuple[str, int]] = set()
    for roots in by_space.values():
        k = min(math.floor(fraction * len(roots)), len(roots) - 1)
        ranked = sorted(roots, key=lambda r: (importance[r], r))
        removed_roots.update(ranked[:k])
    # every conv keeps at least its most important channel
    for n in convs:
        out = ids[n.name]
        if all(cls.find(i) in removed_roots for i in out):
            best = max(out, key=lambda i: importance[cls.find(i)])
            removed_roots.discard(cls.find(best))

    def kept(name: str) -> list[int]:
        return [p for p, i in enumerate(ids[name]) if cls.find(i) not in removed_roots]

    nodes: list[Node] = []
    new_state: dict[str, torch.Tensor] = {}
    for node in ir.nodes:
        op = node.op
        k = _key(node.name)
        if isinstance(op, Conv2d) and op.groups == 1:
            out_keep = kept(node.name)
            in_keep = kept(node.inputs[0])
            nodes.append(Node(node.name, dataclasses.replace(op, out_channels=len(out_keep)), node.inputs))
            _copy_prefix(state_dict, new_state, k, {
                "conv.weight": lambda t, o=out_keep, i=in_keep: t[o][:, i],
                "bn.": lambda t, o=out_keep: t[o] if t.ndim else t,
            })
        elif isinstance(op, DepthwiseConv2d):
            keep = kept(node.inputs[0])
            nodes.append(node)
            _copy_prefix(state_dict, new_state, k, {"conv.weight": lambda t, c=keep: t[c],
                                                    "bn.": lambda t, c=keep: t[c] if t.ndim else t})
        elif isinstance(op, Dense):
            _c, h, w = ir.shapes[node.inputs[0]]
            feats = [ch * h * w + j for ch in kept(node.inputs[0]) for j in range(h * w)]
            nodes.append(node)
            _copy_prefix(state_dict, new_state, k, {"linear.weight": lambda t, f=feats: t[:, f],
                                                    "linear.bias": lambda t: t})
        else:
            nodes.append(node)
            _copy_prefix(state_dict, new_state, k, {"": lambda t: t})
    new_ir = ArchIR(tuple(nodes), ir.output)
    before = sum(ir.shapes[n.name][0] for n in convs)
    after = sum(new_ir.shapes[n.name][0] for n in convs)
    removed = tuple(sorted(m for r in removed_roots for m in members.get(r, [])))
    return Pruned(new_ir, new_state, before, after, removed, {n.name: tuple(kept(n.name)) for n in ir.nodes})


@torch.no_grad()
def compensate_dense_bias(model: torch.nn.Module, ir: ArchIR, pruned: Pruned, x: np.ndarray | torch.Tensor, *,
                          rows: int = 2048, batch_size: int = 256, seed: int = 0) -> dict[str, torch.Tensor]:
    """``pruned.state_dict`` with each ``Dense`` layer's bias absorbing the mean contribution of the input features
    pruning took from it: ``bias += W[:, removed] @ mean(removed features)``, the means measured on up to ``rows``
    rows of ``x`` (a seeded subset) in the unpruned ``model`` (built from ``ir``, in eval mode). Convolutions need
    no such step: the BatchNorm after each re-estimates its mean (:func:`~tinyevo.estimators.recalibrate_batchnorm`),
    but a ``Dense`` layer (e.g. the classifier after global pooling) has no statistics to re-estimate."""
    dense = [n for n in ir.nodes if isinstance(n.op, Dense)]
    if not dense or len(x) == 0:
        return dict(pruned.state_dict)
    sums: dict[str, torch.Tensor] = {}
    hooks = []
    for node in dense:
        def grab(_m: torch.nn.Module, args: tuple[torch.Tensor, ...], name: str = node.name) -> None:
            f = args[0].flatten(1).double().sum(0)
            sums[name] = sums[name] + f if name in sums else f
        hooks.append(model.get_submodule(_key(node.name)).register_forward_pre_hook(grab))
    idx = np.sort(np.random.default_rng(seed).choice(len(x), size=min(rows, len(x)), replace=False))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        for i in range(0, len(idx), batch_size):
            part = idx[i : i + batch_size]
            xb = x[torch.from_numpy(part)] if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x)[part])
            model(xb.to(device, dtype=torch.float32))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    full = model.state_dict()
    state = dict(pruned.state_dict)
    for node in dense:
        _c, h, w = ir.shapes[node.inputs[0]]
        keep = set(pruned.kept[node.inputs[0]])
        lost = [ch * h * w + j for ch in range(_c) if ch not in keep for j in range(h * w)]
        if not lost:
            continue
        k = _key(node.name)
        mean = (sums[node.name] / len(idx))[lost].cpu()
        weight = full[f"{k}.linear.weight"].double().cpu()[:, lost]
        bias = state[f"{k}.linear.bias"]
        state[f"{k}.linear.bias"] = (bias.double() + weight @ mean).to(bias.dtype)
    return state


def _copy_prefix(src: Mapping[str, torch.Tensor], dst: dict[str, torch.Tensor], key: str,
                 rules: Mapping[str, Any]) -> None:
    """Copy every ``key.*`` tensor of ``src``, transformed by the first rule whose prefix matches its suffix."""
    prefix = key + "."
    for name, t in src.items():
        if not name.startswith(prefix):
            continue
        suffix = name[len(prefix):]
        for rule, fn in rules.items():
            if suffix.startswith(rule):
                dst[name] = fn(t.detach()).clone()
                break
        else:
            dst[name] = t.detach().clone()
