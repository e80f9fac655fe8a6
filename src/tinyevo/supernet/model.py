"""The elastic supernet of the ``blocks`` space: every genome of a (sub-)space is a slice of one network.

``Supernet(space)`` holds, per stage, ``max(depths)`` block positions, each with one elastic block per block
type of the space (MBConv, ResNet basic, plain conv), at the largest width (the widest base width times the
largest width multiplier), the largest expansion ratio and the largest kernel. A genome picks:

* **depth** -- the first ``d`` block positions of each stage run (Once-for-All's "first k" elastic depth);
* **width / expansion** -- every conv uses its first ``c_out`` filters over its first ``c_in`` input channels
  (the channels the genome decodes to, ``round_channels(c * w)``); :meth:`Supernet.sort_channels` reorders the
  hidden channels of every block by importance so that the slices keep the most important ones. An MBConv
  block without expansion (``e = 1``) has its own depthwise and projection weights (they read the block's
  input channels, not expanded ones);
* **kernel** -- centre crops with learned transforms (:class:`~tinyevo.supernet.elastic.ElasticConvBN`);
* **resolution** -- the input is resampled to the genome's resolution (:func:`resize_batch`, the resampling of
  :func:`tinyevo.data.resize`); the convolutions are resolution-free.

There is no "active sub-network" state: the genome is an argument of every call
(``supernet(x, genome)``), and :meth:`Supernet.extract` returns the module that
:func:`tinyevo.nn.build_model` builds from ``space.decode(genome)`` with copies of the sliced weights (the kernel
transforms folded into them), whose outputs equal the supernet's for that genome.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn
from torch.nn import functional as F

from tinyevo.cost.lowering import lower
from tinyevo.errors import ConfigError
from tinyevo.ir import ArchIR
from tinyevo.nn import IRModule, build_model
from tinyevo.spaces.blocks import BlocksGenome, BlocksSpace, Stage, round_channels
from tinyevo.supernet.elastic import ElasticConvBN, ElasticLinear

#: Block types the supernet has elastic versions of (``dense`` blocks change their graph with the widths).
ELASTIC_BLOCKS: tuple[str, ...] = ("mb", "res", "conv")

Genome = BlocksGenome | str


def resize_batch(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """``x`` (N, C, H, W) resampled to ``resolution x resolution`` as :func:`tinyevo.data.resize` resamples
    (antialiased bilinear when downscaling, bilinear when upscaling); unchanged when already that size."""
    if x.shape[-2:] == (resolution, resolution):
        return x
    down = resolution <= x.shape[-2] and resolution <= x.shape[-1]
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=down)


def _key(name: str) -> str:
    return "layers." + name.replace(".", "_") + "."


class _MBBlock(nn.Module):
    def __init__(self, in_max: int, out_max: int, space: BlocksSpace, stride: int) -> None:
        super().__init__()
        e_max = max(space.expands)
        hidden = in_max * e_max
        self.expand = ElasticConvBN(in_max, hidden, kernels=(1,), act="relu6") if e_max > 1 else None
        self.dw = ElasticConvBN(hidden, hidden, kernels=space.kernels, stride=stride, act="relu6", depthwise=True)
        self.project = ElasticConvBN(hidden, out_max, kernels=(1,))
        # without expansion (e = 1) the depthwise conv and the projection read the block's input channels, not
        # expanded ones: they get their own weights rather than sharing those of the expanded channels
        plain = 1 in space.expands and e_max > 1
        self.dw_plain = ElasticConvBN(in_max, in_max, kernels=space.kernels, stride=stride, act="relu6",
                                      depthwise=True) if plain else None
        self.project_plain = ElasticConvBN(in_max, out_max, kernels=(1,)) if plain else None

    def _path(self, e: int) -> tuple[ElasticConvBN, ElasticConvBN]:
        if e == 1 and self.dw_plain is not None and self.project_plain is not None:
            return self.dw_plain, self.project_plain
        return self.dw, self.project

    def forward(self, x: torch.Tensor, st: Stage, c_out: int) -> torch.Tensor:
        c_in = x.shape[1]
        y = x
        e = st.expand or 1
        if e > 1:
            assert self.expand is not None
            y = self.expand(y, c_in * e, 1)
        dw, project = self._path(e)
        y = project(dw(y, y.shape[1], st.kernel), c_out, 1)
        return y + x if self.dw.stride == 1 and c_in == c_out else y

    def sliced(self, name: str, c_in: int, st: Stage, c_out: int) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        e = st.expand or 1
        if e > 1:
            assert self.expand is not None
            out.update(_prefixed(f"{name}.expand", self.expand.sliced(c_in * e, c_in, 1)))
        hidden = c_in * e
        dw, project = self._path(e)
        out.update(_prefixed(f"{name}.dw", dw.sliced(hidden, hidden, st.kernel)))
        out.update(_prefixed(f"{name}.project", project.sliced(c_out, hidden, 1)))
        return out

    @torch.no_grad()
    def sort_channels(self) -> None:
        """Hidden channels in decreasing L1 norm of the projection weights that read them (the largest
        sub-network's function is unchanged; a smaller expansion keeps the most important channels)."""
        if self.expand is None:
            return
        order = torch.argsort(self.project.weight.abs().sum(dim=(0, 2, 3)), descending=True, stable=True)
        self.expand.permute_out(order)
        self.dw.permute_out(order)
        self.project.permute_in(order)


class _ResBlock(nn.Module):
    def __init__(self, in_max: int, out_max: int, space: BlocksSpace, stride: int) -> None:
        super().__init__()
        self.conv1 = ElasticConvBN(in_max, out_max, kernels=space.kernels, stride=stride, act="relu6")
        self.conv2 = ElasticConvBN(out_max, out_max, kernels=space.kernels)
        self.proj = ElasticConvBN(in_max, out_max, kernels=(1,), stride=stride)

    def forward(self, x: torch.Tensor, st: Stage, c_out: int) -> torch.Tensor:
        y = self.conv2(self.conv1(x, c_out, st.kernel), c_out, st.kernel)
        same = self.conv1.stride == 1 and x.shape[1] == c_out
        return F.relu6(y + (x if same else self.proj(x, c_out, 1)))

    def sliced(self, name: str, c_in: int, st: Stage, c_out: int) -> dict[str, torch.Tensor]:
        out = _prefixed(f"{name}.conv1", self.conv1.sliced(c_out, c_in, st.kernel))
        out.update(_prefixed(f"{name}.conv2", self.conv2.sliced(c_out, c_out, st.kernel)))
        if not (self.conv1.stride == 1 and c_in == c_out):
            out.update(_prefixed(f"{name}.proj", self.proj.sliced(c_out, c_in, 1)))
        return out

    @torch.no_grad()
    def sort_channels(self) -> None:
        """Not reordered: the middle channels are the block's output width, which the next block's slices
        and the shortcut tie to the same channel order."""


class _ConvBlock(nn.Module):
    def __init__(self, in_max: int, out_max: int, space: BlocksSpace, stride: int) -> None:
        super().__init__()
        self.conv = ElasticConvBN(in_max, out_max, kernels=space.kernels, stride=stride, act="relu6")

    def forward(self, x: torch.Tensor, st: Stage, c_out: int) -> torch.Tensor:
        return self.conv(x, c_out, st.kernel)

    def sliced(self, name: str, c_in: int, st: Stage, c_out: int) -> dict[str, torch.Tensor]:
        return _prefixed(f"{name}.conv", self.conv.sliced(c_out, c_in, st.kernel))

    @torch.no_grad()
    def sort_channels(self) -> None:
        """Nothing to reorder (a plain conv's filters are the block's output channels)."""


_BLOCKS = {"mb": _MBBlock, "res": _ResBlock, "conv": _ConvBlock}


def _prefixed(name: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    k = _key(name)
    return {k + n: t for n, t in tensors.items()}


def macs(ir: ArchIR) -> int:
    """Multiply-accumulates of ``ir`` (the cost model's count)."""
    return sum(op.macs for op in lower(ir).ops)


class Supernet(nn.Module):
    """The weight-sharing network of a ``blocks`` space (see the module docstring)."""

    def __init__(self, space: BlocksSpace) -> None:
        super().__init__()
        if not isinstance(space, BlocksSpace):
            raise ConfigError(f"a supernet is built for the 'blocks' space, not {getattr(space, 'name', space)!r}")
        bad = [t for t in space.block_types if t not in ELASTIC_BLOCKS]
        if bad:
            raise ConfigError(
                f"the supernet has no elastic version of block type(s) {', '.join(bad)} (a dense block's graph "
                f"changes with the widths); restrict the space's block_types to {', '.join(ELASTIC_BLOCKS)}"
            )
        self.space = space
        w_max = max(space.width_multipliers)
        stem_max = round_channels(space.stem_channels * w_max)
        self.stem = ElasticConvBN(space.input_shape[0], stem_max, kernels=(3,), stride=2, act="relu6")
        stages = []
        c_in = stem_max
        for i, stride in enumerate(space.stage_strides):
            c_out = round_channels(max(space.stage_channels[i]) * w_max)
            positions = []
            for d in range(max(space.depths)):
                positions.append(nn.ModuleDict({
                    t: _BLOCKS[t](c_in if d == 0 else c_out, c_out, space, stride if d == 0 else 1)
                    for t in space.block_types
                }))
            stages.append(nn.ModuleList(positions))
            c_in = c_out
        self.stages = nn.ModuleList(stages)
        self.classifier = ElasticLinear(c_in, space.num_classes)

    # --- genomes ---------------------------------------------------------------------------------------------
    def genome(self, genome: Genome) -> BlocksGenome:
        """``genome`` parsed (a string) and checked against the space."""
        return self.space.parse(genome) if isinstance(genome, str) else self.space.validate(genome)

    def largest(self) -> BlocksGenome:
        """The largest sub-network: every gene at its largest choice; per stage the block type with the most
        MACs (the teacher of in-place distillation)."""
        sp = self.space
        best: tuple[int, BlocksGenome] | None = None
        for t in sp.block_types:
            g = BlocksGenome(max(sp.resolutions), max(sp.width_multipliers), tuple(
                Stage(t, max(sp.depths), max(sp.stage_channels[i]), max(sp.kernels),
                      max(sp.expands) if t == "mb" else None) for i in range(sp.num_stages)))
            m = macs(sp.decode(g))
            if best is None or m > best[0]:
                best = (m, g)
        assert best is not None
        return best[1]

    def smallest(self) -> BlocksGenome:
        """The smallest sub-network: the space's trivial genome (every gene at its smallest choice)."""
        return self.space.trivial()

    # --- forward ---------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, genome: Genome) -> torch.Tensor:
        """Logits of the sub-network ``genome`` for ``x`` (resampled to the genome's resolution)."""
        g = self.genome(genome)
        x = resize_batch(x, g.resolution)
        y = self.stem(x, round_channels(self.space.stem_channels * g.width), 3)
        for st, positions in zip(g.stages, self.stages, strict=True):
            c_out = round_channels(st.channels * g.width)
            for d in range(st.depth):
                y = positions[d][st.block](y, st, c_out)
        return self.classifier(y.mean(dim=(2, 3)))

    # --- extraction ------------------------------------------------------------------------------------------
    def sliced_state(self, genome: Genome) -> dict[str, torch.Tensor]:
        """Copies of the weights of sub-network ``genome``, keyed as in the ``state_dict`` of
        ``build_model(space.decode(genome))`` (without BatchNorm batch counters)."""
        g = self.genome(genome)
        c = round_channels(self.space.stem_channels * g.width)
        state = _prefixed("stem", self.stem.sliced(c, self.space.input_shape[0], 3))
        for i, (st, positions) in enumerate(zip(g.stages, self.stages, strict=True)):
            c_out = round_channels(st.channels * g.width)
            for d in range(st.depth):
                state.update(positions[d][st.block].sliced(f"s{i}b{d}", c, st, c_out))
                c = c_out
        state.update(_prefixed("classifier", self.classifier.sliced(c)))
        return state

    def extract(self, genome: Genome) -> IRModule:
        """The sub-network ``genome`` as an ordinary module (``build_model(space.decode(genome))``) with its
        own copy of the supernet's weights; same mode (train / eval) as the supernet."""
        g = self.genome(genome)
        with torch.device("meta"):  # no random initialisation: every tensor is overwritten below
            model = build_model(self.space.decode(g))
        model.to_empty(device=self.stem.weight.device)
        own = model.state_dict()
        state = self.sliced_state(g)
        missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
        extra = [k for k in state if k not in own]
        if missing or extra:  # a builder / supernet naming mismatch: a bug, not a user error
            raise AssertionError(f"supernet slices do not match the builder: missing {missing}, extra {extra}")
        for k, t in own.items():
            if k in state and t.shape != state[k].shape:
                raise AssertionError(f"{k}: builder shape {tuple(t.shape)}, supernet slice {tuple(state[k].shape)}")
        for k, t in own.items():
            if k.endswith("num_batches_tracked"):
                state[k] = torch.zeros_like(t)
        model.load_state_dict(state)
        model.train(self.training)
        return model

    @torch.no_grad()
    def sort_channels(self) -> None:
        """Reorder the hidden channels of every MBConv block by importance (see the module docstring)."""
        for block in self._blocks():
            block.sort_channels()  # type: ignore[operator]

    def _blocks(self) -> Iterator[nn.Module]:
        for positions in self.stages:
            for choices in positions:
                yield from choices.values()


__all__ = ["ELASTIC_BLOCKS", "Supernet", "macs", "resize_batch"]
