"""Blocks space: a block-based MCU backbone (MnasNet / MCUNet style) with per-stage choices.

Genes: the input resolution, a global width multiplier, and per stage the block type, depth (number of
blocks), width (base channels), kernel and, for MBConv, the expansion ratio. Canonical string: timm-like
tokens joined by ``-``, the first token holding the global genes::

    r96_w0.5-mb_d2_k3_e6_c16-res_d1_k5_c24-dense_d2_k3_c40-conv_d1_k3_c64-mb_d3_k7_e4_c96-mb_d1_k3_e1_c160

``c`` is the base width before the multiplier; the decoded width is ``c * w`` rounded to the nearest multiple
of 8 (halves up, at least 8), and the same rule applies to the stem. ``w`` is written as Python's shortest
float repr (``w1.0``, ``w0.35``).

Skeleton: stem 3x3 conv (stride 2, ReLU6), then one stage per entry of ``stage_strides`` (the first block of a
stage has the stage's stride, the rest stride 1), then global average pooling and a dense classifier. Blocks
(every conv is followed by BN in the torch builder; TF "SAME" padding everywhere):

* ``mb`` -- MBConv (MobileNetV2 inverted residual): 1x1 expand to ``e * c_in`` + ReLU6 (skipped when
  ``e == 1``), kxk depthwise (stride) + ReLU6, 1x1 linear projection; identity shortcut when stride 1 and
  ``c_in == c_out``.
* ``res`` -- ResNet basic block: kxk conv (stride) + ReLU6, kxk conv, plus a shortcut (identity, or 1x1 conv
  with the stride when the shape changes), ReLU6 after the sum.
* ``dense`` -- DenseNet-style block: ``t`` = the input when stride is 1 and ``c_in < c_out``, else a 1x1
  transition conv to ``c_out / 2`` (with the stride) + ReLU6; a kxk conv + ReLU6 grows ``c_out - channels(t)``
  new channels from ``t``, and the output is ``concat(t, new)`` (``c_out`` channels).
* ``conv`` -- a plain kxk conv (stride) + ReLU6.

The resolution gene sets the input's H and W (``decode`` gives input shape ``(C, r, r)`` with ``C`` from
``input_shape``). ``width_multipliers`` and ``resolutions`` are the gene choices, so a TinyNAS-style sub-space
with one fixed width and resolution is ``create_space("blocks", width_multipliers=(w,), resolutions=(r,))``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from tinyevo.errors import ConfigError, InvalidGenomeError
from tinyevo.ir import Add, ArchIR, Concat, Conv2d, Dense, DepthwiseConv2d, GlobalPool, GraphBuilder
from tinyevo.spaces.base import (
    MAX_CHANNELS,
    MAX_CLASSES,
    MAX_INPUT,
    MAX_KERNEL,
    MAX_LAYERS,
    SPACES,
    check_bound,
)

BLOCK_TYPES: tuple[str, ...] = ("mb", "res", "dense", "conv")
#: Order in which :meth:`BlocksSpace.trivial` prefers block types (cheapest first for equal genes).
_CHEAPEST_FIRST: tuple[str, ...] = ("mb", "dense", "conv", "res")

_GLOBAL_RE = re.compile(r"^r(\d+)_w(\d+(?:\.\d+)?(?:e-?\d+)?)$")
_STAGE_RE = re.compile(r"^(mb|res|dense|conv)_d(\d+)_k(\d+)(?:_e(\d+))?_c(\d+)$")


def round_channels(channels: float) -> int:
    """Round to the nearest multiple of 8 (halves up), at least 8: MCU kernels vectorise over channels."""
    return max(8, math.floor(channels / 8.0 + 0.5) * 8)


@dataclass(frozen=True)
class Stage:
    """The genes of one stage. ``expand`` is set for ``mb`` blocks only (``None`` otherwise)."""

    block: str
    depth: int
    channels: int
    kernel: int
    expand: int | None = None

    def __post_init__(self) -> None:
        if self.block not in BLOCK_TYPES:
            raise InvalidGenomeError(
                f"unknown block type {self.block!r}; expected one of {', '.join(BLOCK_TYPES)}"
            )
        if (self.block == "mb") != (self.expand is not None):
            raise InvalidGenomeError(
                f"stage {self}: an expansion ratio is given for 'mb' blocks and only for them"
            )
        for name in ("depth", "channels", "kernel"):
            if getattr(self, name) < 1:
                raise InvalidGenomeError(f"stage {self.block}: {name} must be >= 1")
        if self.expand is not None and self.expand < 1:
            raise InvalidGenomeError(f"stage {self.block}: expand must be >= 1")

    def __str__(self) -> str:
        e = f"_e{self.expand}" if self.expand is not None else ""
        return f"{self.block}_d{self.depth}_k{self.kernel}{e}_c{self.channels}"


@dataclass(frozen=True)
class BlocksGenome:
    """Input resolution, width multiplier and one :class:`Stage` per stage of the skeleton."""

    resolution: int
    width: float
    stages: tuple[Stage, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "width", float(self.width))
        if self.resolution < 1 or not self.width > 0:
            raise InvalidGenomeError(
                f"resolution and width must be positive, got r={self.resolution} w={self.width}"
            )

    def __str__(self) -> str:
        return "-".join([f"r{self.resolution}_w{self.width!r}", *map(str, self.stages)])


def parse_blocks(text: str) -> BlocksGenome:
    """Parse a blocks genome string; structure only (:meth:`BlocksSpace.parse` also checks the choices)."""
    tokens = text.strip().split("-")
    m = _GLOBAL_RE.match(tokens[0])
    if not m:
        raise InvalidGenomeError(
            f"malformed blocks genome {text!r}: it must start with 'r<resolution>_w<width>', e.g. 'r96_w0.5'"
        )
    stages = []
    for tok in tokens[1:]:
        s = _STAGE_RE.match(tok)
        if not s:
            raise InvalidGenomeError(
                f"malformed stage {tok!r} in {text!r}: expected "
                f"<block>_d<depth>_k<kernel>[_e<expand>]_c<channels> with block in {BLOCK_TYPES}, "
                "e.g. 'mb_d2_k3_e6_c24' or 'res_d1_k3_c32'"
            )
        stages.append(Stage(s[1], int(s[2]), int(s[5]), int(s[3]), int(s[4]) if s[4] is not None else None))
    return BlocksGenome(int(m[1]), float(m[2]), tuple(stages))


def _pick(rng: np.random.Generator, items: Sequence):  # type: ignore[no-untyped-def]
    return items[int(rng.integers(len(items)))]


def _ints(name: str, values: Sequence[int]) -> tuple[int, ...]:
    out = tuple(sorted({int(v) for v in values}))
    if not out or out[0] < 1:
        raise ConfigError(f"{name} must be a non-empty tuple of positive integers, got {tuple(values)!r}")
    return out


@SPACES.register(
    "blocks", help="block-based MCU backbone (MBConv/Res/Dense/Conv stages, width and resolution genes)"
)
class BlocksSpace:
    """Stage-wise block space. Options (keyword-only) are the gene choices and the skeleton:

    ``width_multipliers``, ``resolutions``, ``block_types``, ``depths``, ``kernels``, ``expands``;
    ``stage_strides`` (one per stage) and ``stage_channels`` (the base-width choices of each stage);
    ``stem_channels`` (base width of the stem).
    """

    name = "blocks"

    def __init__(
        self,
        *,
        input_shape: tuple[int, int, int] = (3, 96, 96),
        num_classes: int = 10,
        width_multipliers: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
        resolutions: tuple[int, ...] = (48, 64, 80, 96, 112, 128, 144, 160, 176),
        block_types: tuple[str, ...] = BLOCK_TYPES,
        depths: tuple[int, ...] = (1, 2, 3, 4),
        kernels: tuple[int, ...] = (3, 5, 7),
        expands: tuple[int, ...] = (1, 3, 4, 6),
        stage_strides: tuple[int, ...] = (1, 2, 2, 2, 1, 2),
        stage_channels: tuple[tuple[int, ...], ...] = (
            (8, 16),
            (16, 24),
            (24, 32, 40),
            (48, 64, 80),
            (80, 96, 112),
            (128, 160, 192),
        ),
        stem_channels: int = 16,
    ) -> None:
        if len(input_shape) != 3 or min(input_shape) < 1:
            raise ConfigError(f"input_shape must be (C, H, W) with positive sizes, got {input_shape!r}")
        if num_classes < 1 or stem_channels < 1:
            raise ConfigError("num_classes and stem_channels must be positive")
        for name, values, upper in (("depths", tuple(depths), 32), ("stages", len(stage_strides), 32),
                                    ("kernels", tuple(kernels), MAX_KERNEL), ("expands", tuple(expands), 32),
                                    ("stage_strides", tuple(stage_strides), MAX_KERNEL),
                                    ("resolutions", tuple(resolutions), MAX_INPUT), ("width_multipliers",
                                    tuple(width_multipliers), 8), ("stem_channels", stem_channels, MAX_CHANNELS),
                                    ("stage_channels", tuple(c for cs in stage_channels for c in cs), MAX_CHANNELS),
                                    ("num_classes", num_classes, MAX_CLASSES), ("input_shape", tuple(input_shape),
                                    MAX_INPUT)):
            check_bound(name, values, upper)
        check_bound("layers (max(depths) x stages)", max(depths, default=0) * len(stage_strides), MAX_LAYERS)
        widths = tuple(sorted({float(w) for w in width_multipliers}))
        if not widths or widths[0] <= 0:
            raise ConfigError(f"width_multipliers must be positive, got {width_multipliers!r}")
        if not block_types or any(t not in BLOCK_TYPES for t in block_types):
            raise ConfigError(f"block_types must be a non-empty subset of {BLOCK_TYPES}, got {block_types!r}")
        if len(stage_strides) != len(stage_channels) or not stage_strides:
            raise ConfigError(
                "stage_strides and stage_channels need one (and the same number of) entry per stage"
            )
        self.input_shape = tuple(int(v) for v in input_shape)
        self.num_classes = num_classes
        self.width_multipliers = widths
        self.resolutions = _ints("resolutions", resolutions)
        self.block_types = tuple(t for t in BLOCK_TYPES if t in block_types)
        self.depths = _ints("depths", depths)
        self.kernels = _ints("kernels", kernels)
        self.expands = _ints("expands", expands)
        if any(int(s) < 1 for s in stage_strides):
            raise ConfigError(f"stage_strides must be positive, got {stage_strides!r}")
        self.stage_strides = tuple(int(s) for s in stage_strides)
        self.stage_channels = tuple(_ints(f"stage_channels[{i}]", c) for i, c in enumerate(stage_channels))
        self.stem_channels = stem_channels

    @property
    def num_stages(self) -> int:
        return len(self.stage_strides)

    # --- validity -------------------------------------------------------------------------------------------
    def validate(self, genome: BlocksGenome) -> BlocksGenome:
        """Return ``genome`` if all its genes are choices of this space, else raise
        :class:`InvalidGenomeError`."""
        if genome.resolution not in self.resolutions:
            raise InvalidGenomeError(f"resolution {genome.resolution} is not one of {self.resolutions}")
        if genome.width not in self.width_multipliers:
            raise InvalidGenomeError(
                f"width multiplier {genome.width} is not one of {self.width_multipliers}"
            )
        if len(genome.stages) != self.num_stages:
            raise InvalidGenomeError(
                f"this space has {self.num_stages} stages, the genome {len(genome.stages)}"
            )
        for i, st in enumerate(genome.stages):
            checks = (
                ("block type", st.block, self.block_types),
                ("depth", st.depth, self.depths),
                ("kernel", st.kernel, self.kernels),
                ("channels", st.channels, self.stage_channels[i]),
            )
            for what, value, allowed in checks:
                if value not in allowed:
                    raise InvalidGenomeError(f"stage {i} ({st}): {what} {value!r} is not one of {allowed}")
            if st.expand is not None and st.expand not in self.expands:
                raise InvalidGenomeError(f"stage {i} ({st}): expand {st.expand} is not one of {self.expands}")
        return genome

    # --- genomes --------------------------------------------------------------------------------------------
    def parse(self, text: str) -> BlocksGenome:
        return self.validate(parse_blocks(text))

    def _random_stage(self, i: int, rng: np.random.Generator) -> Stage:
        block = _pick(rng, self.block_types)
        depth = int(_pick(rng, self.depths))
        channels = int(_pick(rng, self.stage_channels[i]))
        kernel = int(_pick(rng, self.kernels))
        expand = int(_pick(rng, self.expands)) if block == "mb" else None
        return Stage(block, depth, channels, kernel, expand)

    def sample(self, rng: np.random.Generator) -> BlocksGenome:
        r = int(_pick(rng, self.resolutions))
        w = float(_pick(rng, self.width_multipliers))
        return BlocksGenome(r, w, tuple(self._random_stage(i, rng) for i in range(self.num_stages)))

    def trivial(self) -> BlocksGenome:
        """Every gene at its smallest choice, with the cheapest block type (MBConv when allowed)."""
        block = next(t for t in _CHEAPEST_FIRST if t in self.block_types)
        stages = tuple(
            Stage(
                block,
                self.depths[0],
                self.stage_channels[i][0],
                self.kernels[0],
                self.expands[0] if block == "mb" else None,
            )
            for i in range(self.num_stages)
        )
        return BlocksGenome(self.resolutions[0], self.width_multipliers[0], stages)

    def _genes(self, genome: BlocksGenome) -> list[tuple[str, int]]:
        """The genes of ``genome`` that have at least one alternative value in this space."""
        genes: list[tuple[str, int]] = []
        if len(self.resolutions) > 1:
            genes.append(("resolution", -1))
        if len(self.width_multipliers) > 1:
            genes.append(("width", -1))
        for i, st in enumerate(genome.stages):
            for field, n in (
                ("block", len(self.block_types)),
                ("depth", len(self.depths)),
                ("kernel", len(self.kernels)),
                ("channels", len(self.stage_channels[i])),
                ("expand", len(self.expands) if st.block == "mb" else 1),
            ):
                if n > 1:
                    genes.append((field, i))
        return genes

    def mutate(self, genome: BlocksGenome, rng: np.random.Generator) -> BlocksGenome:
        """Change one gene (chosen uniformly among those with alternatives) to another of its choices.

        A space with a single point returns the genome unchanged.
        """
        self.validate(genome)
        genes = self._genes(genome)
        if not genes:
            return genome
        field, i = genes[int(rng.integers(len(genes)))]

        def other(choices: Sequence, current: object):  # type: ignore[no-untyped-def]
            return _pick(rng, [c for c in choices if c != current])

        if field == "resolution":
            return replace(genome, resolution=int(other(self.resolutions, genome.resolution)))
        if field == "width":
            return replace(genome, width=float(other(self.width_multipliers, genome.width)))
        st = genome.stages[i]
        if field == "block":
            block = other(self.block_types, st.block)
            expand = (st.expand or int(_pick(rng, self.expands))) if block == "mb" else None
            new = replace(st, block=block, expand=expand)
        elif field == "depth":
            new = replace(st, depth=int(other(self.depths, st.depth)))
        elif field == "kernel":
            new = replace(st, kernel=int(other(self.kernels, st.kernel)))
        elif field == "channels":
            new = replace(st, channels=int(other(self.stage_channels[i], st.channels)))
        else:
            new = replace(st, expand=int(other(self.expands, st.expand)))
        return replace(genome, stages=genome.stages[:i] + (new,) + genome.stages[i + 1 :])

    def crossover(self, a: BlocksGenome, b: BlocksGenome, rng: np.random.Generator) -> BlocksGenome:
        """Uniform crossover of the resolution, the width and whole stages (a stage's genes stay together)."""
        self.validate(a), self.validate(b)
        mask = rng.random(self.num_stages + 2) < 0.5
        stages = tuple(x if m else y for x, y, m in zip(a.stages, b.stages, mask[2:], strict=True))
        return BlocksGenome(
            a.resolution if mask[0] else b.resolution, a.width if mask[1] else b.width, stages
        )

    # --- features -------------------------------------------------------------------------------------------
    def features(self, genome: BlocksGenome) -> np.ndarray:
        """[resolution / max, width / max, then per stage: one-hot block type (4), depth / max,
        base width / the stage's max, kernel / max, expand / max (0 for non-MBConv)]."""
        self.validate(genome)
        per = len(BLOCK_TYPES) + 4
        vec = np.zeros(2 + self.num_stages * per, dtype=np.float64)
        vec[0] = genome.resolution / max(self.resolutions)
        vec[1] = genome.width / max(self.width_multipliers)
        for i, st in enumerate(genome.stages):
            v = vec[2 + i * per : 2 + (i + 1) * per]
            v[BLOCK_TYPES.index(st.block)] = 1.0
            v[4] = st.depth / max(self.depths)
            v[5] = st.channels / max(self.stage_channels[i])
            v[6] = st.kernel / max(self.kernels)
            v[7] = (st.expand or 0) / max(self.expands)
        return vec

    # --- architecture ---------------------------------------------------------------------------------------
    def decode(self, genome: BlocksGenome) -> ArchIR:
        self.validate(genome)
        r, w = genome.resolution, genome.width
        b = GraphBuilder((self.input_shape[0], r, r))
        x = b.add(
            Conv2d(round_channels(self.stem_channels * w), kernel=3, stride=2, act="relu6"),
            b.input,
            name="stem",
        )
        for i, (st, stride) in enumerate(zip(genome.stages, self.stage_strides, strict=True)):
            c_out = round_channels(st.channels * w)
            for d in range(st.depth):
                x = _block(b, x, st, c_out, stride if d == 0 else 1, f"s{i}b{d}")
        x = b.add(GlobalPool("avg"), x, name="gap")
        return b.build(b.add(Dense(self.num_classes), x, name="classifier"))


def _block(b: GraphBuilder, x: str, st: Stage, c_out: int, stride: int, name: str) -> str:
    c_in = b.shape(x)[0]
    k = st.kernel
    same_shape = stride == 1 and c_in == c_out
    if st.block == "mb":
        y = x
        if st.expand and st.expand > 1:
            y = b.add(Conv2d(c_in * st.expand, kernel=1, act="relu6"), y, name=f"{name}.expand")
        y = b.add(DepthwiseConv2d(k, stride=stride, act="relu6"), y, name=f"{name}.dw")
        y = b.add(Conv2d(c_out, kernel=1), y, name=f"{name}.project")
        return b.add(Add(), y, x, name=f"{name}.add") if same_shape else y
    if st.block == "res":
        y = b.add(Conv2d(c_out, kernel=k, stride=stride, act="relu6"), x, name=f"{name}.conv1")
        y = b.add(Conv2d(c_out, kernel=k), y, name=f"{name}.conv2")
        skip = x if same_shape else b.add(Conv2d(c_out, kernel=1, stride=stride), x, name=f"{name}.proj")
        return b.add(Add(act="relu6"), y, skip, name=f"{name}.add")
    if st.block == "dense":
        t = x
        if stride > 1 or c_in >= c_out:
            t = b.add(Conv2d(c_out // 2, kernel=1, stride=stride, act="relu6"), x, name=f"{name}.transition")
        grow = c_out - b.shape(t)[0]
        y = b.add(Conv2d(grow, kernel=k, act="relu6"), t, name=f"{name}.conv")
        return b.add(Concat(), t, y, name=f"{name}.concat")
    return b.add(Conv2d(c_out, kernel=k, stride=stride, act="relu6"), x, name=f"{name}.conv")
