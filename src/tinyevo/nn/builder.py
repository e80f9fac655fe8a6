"""ArchIR -> ``torch.nn.Module``.

Decisions made once, here:

* **BatchNorm** follows every ``Conv2d`` and ``DepthwiseConv2d`` (convs have no bias; the BN folds into the conv
  at int8 export). ``Dense`` has a bias and no BN.
* **Activations** fused in an op (``act=``) run after the BN.
* **Padding** is TensorFlow "SAME": symmetric padding is passed to the conv; when TF would pad asymmetrically
  (e.g. a stride-2 3x3 conv on an even-sized input pads 0 before and 1 after), an explicit ``ZeroPad2d`` is
  inserted, so the torch numerics equal TF's and int8 export maps the pair to one SAME conv.
* Tensors are ``(N, C, H, W)`` throughout; a flat vector is ``(N, F, 1, 1)``; the module returns
  ``(N, C*H*W)`` (logits for a classifier).

``build_model(ir, seed=s)`` gives the same weights for the same IR and seed, without touching the global RNG.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

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
    same_pads,
)


def _activation(name: str) -> nn.Module:
    return {"none": nn.Identity(), "relu": nn.ReLU(), "relu6": nn.ReLU6()}[name]


def _pads(in_hw: tuple[int, int], kernel: int, stride: int, padding: str) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) pads for F.pad."""
    if padding == "valid":
        return (0, 0, 0, 0)
    top, bottom = same_pads(in_hw[0], kernel, stride)
    left, right = same_pads(in_hw[1], kernel, stride)
    return (left, right, top, bottom)


class _ConvBN(nn.Module):
    def __init__(self, conv: nn.Conv2d, pads: tuple[int, int, int, int], act: str) -> None:
        super().__init__()
        left, right, top, bottom = pads
        if left == right and top == bottom:
            conv.padding = (top, left)
            self.pad: nn.Module = nn.Identity()
        else:
            self.pad = nn.ZeroPad2d(pads)
        self.conv = conv
        self.bn = nn.BatchNorm2d(conv.out_channels)
        self.act = _activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(self.pad(x))))


class _Pool(nn.Module):
    def __init__(self, mode: str, kernel: int, stride: int, pads: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.mode, self.kernel, self.stride, self.pads = mode, kernel, stride, pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right, top, bottom = self.pads
        symmetric = left == right and top == bottom
        if symmetric or (self.stride >= 2 and right - left in (0, 1) and bottom - top in (0, 1)):
            # One native pooling op (exports to a single TFLite SAME pool, no PAD/DIV): with stride >= 2, an
            # extra pad column on the right/bottom is what ceil_mode adds (and ceil_mode changes no shape when
            # the SAME padding is symmetric); count_include_pad=False divides by the number of real elements, as
            # TF does.
            ceil = self.stride >= 2 and any(self.pads)
            if self.mode == "max":
                return F.max_pool2d(x, self.kernel, self.stride, padding=(top, left), ceil_mode=ceil)
            return F.avg_pool2d(
                x, self.kernel, self.stride, padding=(top, left), ceil_mode=ceil, count_include_pad=False
            )
        if self.mode == "max":
            if any(self.pads):
                x = F.pad(x, self.pads, value=float("-inf"))
            return F.max_pool2d(x, self.kernel, self.stride)
        if not any(self.pads):
            return F.avg_pool2d(x, self.kernel, self.stride)
        # TF SAME average pooling divides by the number of real (unpadded) elements in each window.
        total = F.avg_pool2d(F.pad(x, self.pads), self.kernel, self.stride)
        ones = torch.ones_like(x[:1, :1])
        count = F.avg_pool2d(F.pad(ones, self.pads), self.kernel, self.stride)
        return total / count


class _GlobalPool(nn.Module):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "avg":
            return x.mean(dim=(2, 3), keepdim=True)
        return x.amax(dim=(2, 3), keepdim=True)


class _Dense(nn.Module):
    """A fully connected layer over the flattened input (``(N, F)`` or a feature map), giving ``(N, F, 1, 1)``.

    ``flat_out`` (set by :class:`IRModule` for a dense layer of a chain whose reader is a dense layer or the
    output): while training, give ``(N, F)`` instead, sparing the reshapes forward and backward (a fifth of an
    MLP's ops per step). In eval mode the layout stays 4-D, as exporters trace it."""

    def __init__(self, in_features: int, out_features: int, act: str) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.act = _activation(act)
        self.flat_out = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.linear(x if x.dim() == 2 else x.flatten(1)))
        if self.training and getattr(self, "flat_out", False):  # (a module pickled before this attribute: 4-D)
            return y
        return y[:, :, None, None]


class _Add(nn.Module):
    def __init__(self, act: str) -> None:
        super().__init__()
        self.act = _activation(act)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return self.act(out)


class _Concat(nn.Module):
    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=1)


class _Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def build_layer(ir: ArchIR, node: Node) -> nn.Module:
    """The torch module for one IR node (the single place that maps op types to torch)."""
    op = node.op
    in_shapes = ir.in_shapes(node)
    if isinstance(op, Input) or isinstance(op, Identity):
        return nn.Identity()
    if isinstance(op, Conv2d):
        c_in = in_shapes[0][0]
        conv = nn.Conv2d(c_in, op.out_channels, op.kernel, op.stride, groups=op.groups, bias=False)
        return _ConvBN(conv, _pads(in_shapes[0][1:], op.kernel, op.stride, op.padding), op.act)
    if isinstance(op, DepthwiseConv2d):
        c_in = in_shapes[0][0]
        conv = nn.Conv2d(c_in, c_in, op.kernel, op.stride, groups=c_in, bias=False)
        return _ConvBN(conv, _pads(in_shapes[0][1:], op.kernel, op.stride, op.padding), op.act)
    if isinstance(op, Pool2d):
        return _Pool(op.mode, op.kernel, op.stride, _pads(in_shapes[0][1:], op.kernel, op.stride, op.padding))
    if isinstance(op, GlobalPool):
        return _GlobalPool(op.mode)
    if isinstance(op, Dense):
        c, h, w = in_shapes[0]
        return _Dense(c * h * w, op.out_features, op.act)
    if isinstance(op, Add):
        return _Add(op.act)
    if isinstance(op, Concat):
        return _Concat()
    if isinstance(op, Zero):
        return _Zero()
    if isinstance(op, Act):
        return _activation(op.fn)
    raise TypeError(f"the torch builder has no rule for op {type(op).__name__}")


class IRModule(nn.Module):
    """Executes an :class:`ArchIR` node by node, freeing each tensor after its last reader."""

    def __init__(self, ir: ArchIR) -> None:
        super().__init__()
        self.ir = ir
        self.layers = nn.ModuleDict({_key(n.name): build_layer(ir, n) for n in ir.nodes[1:]})
        order = {n.name: i for i, n in enumerate(ir.nodes)}
        last_use: dict[str, int] = {}
        for i, n in enumerate(ir.nodes):
            for s in n.inputs:
                last_use[s] = i
        self._plan = [
            (n.name, _key(n.name), n.inputs, [s for s in set(n.inputs) if last_use[s] == order[n.name]])
            for n in ir.nodes[1:]
        ]
        # a chain (each node reads the one before it, the last is the output) runs as straight-line calls of its
        # layers, in node order, without the interpreter's bookkeeping (the same modules and ops)
        self.is_chain = ir.output == ir.nodes[-1].name and all(
            tuple(n.inputs) == (prev.name,) for prev, n in zip(ir.nodes, ir.nodes[1:], strict=False))
        if self.is_chain:  # a dense layer read only by a dense layer or the output skips its 4-D reshape
            readers = [m for m in self.layers.values() if not isinstance(m, nn.Identity)]
            for i, layer in enumerate(readers):
                reader = readers[i + 1] if i + 1 < len(readers) else None
                if isinstance(layer, _Dense) and (reader is None or isinstance(reader, _Dense)):
                    layer.flat_out = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if getattr(self, "is_chain", False):  # (a module pickled before this attribute: the interpreter)
            for layer in self.layers.values():  # a ModuleDict keeps the node order
                x = layer(x)
            return x if x.dim() == 2 else x.flatten(1)
        return self.interpret(x)

    def interpret(self, x: torch.Tensor) -> torch.Tensor:
        """The network's output computed node by node from the IR (any graph)."""
        env: dict[str, torch.Tensor] = {self.ir.input_name: x}
        for name, key, inputs, free in self._plan:
            env[name] = self.layers[key](*(env[s] for s in inputs))
            for s in free:
                if s != self.ir.output:
                    del env[s]
        out = env[self.ir.output]
        return out if out.dim() == 2 else out.flatten(1)


def _key(name: str) -> str:
    return name.replace(".", "_")


def build_model(ir: ArchIR, *, seed: int | None = None) -> IRModule:
    """Build the torch module for ``ir``; with ``seed`` the initial weights are reproducible."""
    if seed is None:
        return IRModule(ir)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return IRModule(ir)
