"""Chain space: variable-length plain networks (muNAS style), from a 20-parameter classifier to a small CNN.

A genome is a list of feature layers, a head, and a list of hidden dense layers; the classifier
``Dense(num_classes)`` is implicit. The canonical string joins the tokens with ``-``::

    conv_k3_s2_c8-dsc_k3_s1_c8_r-maxpool_k2_s2-gap-dense_c32

Feature-layer tokens:

* ``conv_k{kernel}_s{stride}_c{channels}[_r]``: convolution + BN + ReLU;
* ``dsc_k{kernel}_s{stride}_c{channels}[_r]``: depthwise-separable conv (depthwise kxk + BN + ReLU, then 1x1
  pointwise + BN + ReLU);
* ``maxpool_k{kernel}_s{stride}`` / ``avgpool_k{kernel}_s{stride}``: pooling.

``_r`` adds a residual skip around the layer: the layer's last conv drops its ReLU, the skip is added and the
sum goes through the ReLU. When the layer changes the shape (stride > 1 or a different width) the skip is a
1x1 convolution with the layer's stride and width (+ BN), as in ResNet's projection shortcut; otherwise it is
the identity. Head token: ``gap`` (global average pooling) or ``flat`` (flatten the feature map). Then zero or
more ``dense_c{units}`` hidden layers (+ ReLU). All convolutions and pools use TF "SAME" padding.

Validity (checked by :meth:`ChainSpace.parse` and kept by every operator): genes come from the space's
choices, at most ``max_layers`` feature layers and ``max_dense`` hidden dense layers, and no layer strides or
pools a 1x1 feature map (it could not shrink any further).

The empty genome ``gap`` (global pool of the input + classifier) is the space's trivial network. Mutation
operators (:class:`InsertLayer`, :class:`RemoveLayer`, :class:`ChangeLayer`, :class:`ToggleResidual`,
:class:`ChangeHead`) are objects composed in the space's constructor; crossover is a variable-length one-point
crossover (:class:`OnePointCrossover`) that takes a prefix of one parent and a suffix of the other.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from tinyevo.errors import ConfigError, InvalidGenomeError
from tinyevo.ir import Add, ArchIR, Conv2d, Dense, DepthwiseConv2d, GlobalPool, GraphBuilder, Pool2d
from tinyevo.spaces.base import (
    MAX_CHANNELS,
    MAX_CLASSES,
    MAX_INPUT,
    MAX_KERNEL,
    MAX_LAYERS,
    SPACES,
    check_bound,
)

CONV_OPS: tuple[str, ...] = ("conv", "dsc")
POOL_OPS: tuple[str, ...] = ("maxpool", "avgpool")
LAYER_OPS: tuple[str, ...] = CONV_OPS + POOL_OPS
HEADS: tuple[str, ...] = ("gap", "flat")

_CONV_RE = re.compile(r"^(conv|dsc)_k(\d+)_s(\d+)_c(\d+)(_r)?$")
_POOL_RE = re.compile(r"^(maxpool|avgpool)_k(\d+)_s(\d+)$")
_DENSE_RE = re.compile(r"^dense_c(\d+)$")


@dataclass(frozen=True)
class ChainLayer:
    """One feature layer; ``channels`` and ``residual`` apply to ``conv``/``dsc`` only (0/False for pools)."""

    op: str
    kernel: int
    stride: int = 1
    channels: int = 0
    residual: bool = False

    def __post_init__(self) -> None:
        if self.op not in LAYER_OPS:
            raise InvalidGenomeError(
                f"unknown chain layer {self.op!r}; expected one of {', '.join(LAYER_OPS)}"
            )
        if self.kernel < 1 or self.stride < 1:
            raise InvalidGenomeError(f"chain layer {self.op}: kernel and stride must be >= 1")
        if self.op in CONV_OPS and self.channels < 1:
            raise InvalidGenomeError(f"chain layer {self.op}: channels must be >= 1, got {self.channels}")
        if self.op in POOL_OPS and (self.channels or self.residual):
            raise InvalidGenomeError(
                f"chain layer {self.op}: a pooling layer has no channels and no residual"
            )

    def __str__(self) -> str:
        if self.op in POOL_OPS:
            return f"{self.op}_k{self.kernel}_s{self.stride}"
        return f"{self.op}_k{self.kernel}_s{self.stride}_c{self.channels}" + ("_r" if self.residual else "")


@dataclass(frozen=True)
class ChainGenome:
    """Feature layers, head (``gap`` or ``flat``) and hidden dense widths; see the module docstring."""

    layers: tuple[ChainLayer, ...] = ()
    head: str = "gap"
    dense: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise InvalidGenomeError(f"unknown chain head {self.head!r}; expected one of {', '.join(HEADS)}")
        if any(u < 1 for u in self.dense):
            raise InvalidGenomeError(f"dense widths must be >= 1, got {self.dense}")

    def __str__(self) -> str:
        return "-".join([*map(str, self.layers), self.head, *(f"dense_c{u}" for u in self.dense)])


def parse_chain(text: str) -> ChainGenome:
    """Parse a chain genome string; structure only (:meth:`ChainSpace.parse` also checks the choices)."""
    tokens = text.strip().split("-")
    heads = [i for i, t in enumerate(tokens) if t in HEADS]
    if len(heads) != 1:
        raise InvalidGenomeError(
            f"malformed chain genome {text!r}: expected exactly one head token ('gap' or 'flat') between the "
            "feature layers and the dense layers, e.g. 'conv_k3_s2_c8-gap-dense_c16'"
        )
    h = heads[0]
    layers: list[ChainLayer] = []
    for tok in tokens[:h]:
        if m := _CONV_RE.match(tok):
            layers.append(ChainLayer(m[1], int(m[2]), int(m[3]), int(m[4]), bool(m[5])))
        elif m := _POOL_RE.match(tok):
            layers.append(ChainLayer(m[1], int(m[2]), int(m[3])))
        else:
            raise InvalidGenomeError(
                f"malformed chain layer {tok!r} in {text!r}: expected conv_k<k>_s<s>_c<c>[_r], "
                "dsc_k<k>_s<s>_c<c>[_r], maxpool_k<k>_s<s> or avgpool_k<k>_s<s>"
            )
    dense: list[int] = []
    for tok in tokens[h + 1 :]:
        m = _DENSE_RE.match(tok)
        if not m:
            raise InvalidGenomeError(f"malformed dense layer {tok!r} in {text!r}: expected dense_c<units>")
        dense.append(int(m[1]))
    return ChainGenome(tuple(layers), tokens[h], tuple(dense))


# --- mutation and crossover operators -----------------------------------------------------------------------
class ChainMutation(Protocol):
    """One kind of edit; ``None`` when it does not apply to ``genome`` (e.g. removing from an empty net).

    The result may break the space's validity rules; the space repairs it (see :meth:`ChainSpace.repair`).
    """

    weight: float

    def __call__(
        self, space: ChainSpace, genome: ChainGenome, rng: np.random.Generator
    ) -> ChainGenome | None: ...


def _pick(rng: np.random.Generator, items: Sequence):  # type: ignore[no-untyped-def]
    return items[int(rng.integers(len(items)))]


def _step(rng: np.random.Generator, choices: tuple[int, ...], value: int) -> int:
    """A neighbouring value of ``value`` in the sorted ``choices`` (a small edit of an ordered gene)."""
    i = choices.index(value)
    nbrs = [j for j in (i - 1, i + 1) if 0 <= j < len(choices)]
    return choices[_pick(rng, nbrs)] if nbrs else value


@dataclass(frozen=True)
class InsertLayer:
    """Insert a random feature layer or hidden dense layer at a random position."""

    weight: float = 1.0

    def __call__(
        self, space: ChainSpace, genome: ChainGenome, rng: np.random.Generator
    ) -> ChainGenome | None:
        slots = []
        if len(genome.layers) < space.max_layers:
            slots.append("layer")
        if len(genome.dense) < space.max_dense:
            slots.append("dense")
        if not slots:
            return None
        if _pick(rng, slots) == "layer":
            i = int(rng.integers(len(genome.layers) + 1))
            layers = genome.layers[:i] + (space.random_layer(rng),) + genome.layers[i:]
            return replace(genome, layers=layers)
        i = int(rng.integers(len(genome.dense) + 1))
        return replace(
            genome, dense=genome.dense[:i] + (int(_pick(rng, space.dense_units)),) + genome.dense[i:]
        )


@dataclass(frozen=True)
class RemoveLayer:
    """Remove one feature layer or hidden dense layer."""

    weight: float = 1.0

    def __call__(
        self, space: ChainSpace, genome: ChainGenome, rng: np.random.Generator
    ) -> ChainGenome | None:
        n = len(genome.layers) + len(genome.dense)
        if n == 0:
            return None
        i = int(rng.integers(n))
        if i < len(genome.layers):
            return replace(genome, layers=genome.layers[:i] + genome.layers[i + 1 :])
        i -= len(genome.layers)
        return replace(genome, dense=genome.dense[:i] + genome.dense[i + 1 :])


@dataclass(frozen=True)
class ChangeLayer:
    """Change one gene of one layer: type, kernel or stride (any other choice), or width (one step)."""

    weight: float = 2.0

    def __call__(
        self, space: ChainSpace, genome: ChainGenome, rng: np.random.Generator
    ) -> ChainGenome | None:
        n = len(genome.layers) + len(genome.dense)
        if n == 0:
            return None
        i = int(rng.integers(n))
        if i >= len(genome.layers):
            i -= len(genome.layers)
            units = _step(rng, space.dense_units, genome.dense[i])
            return replace(genome, dense=genome.dense[:i] + (units,) + genome.dense[i + 1 :])
        layer = genome.layers[i]
        gene = _pick(
            rng,
            ("op", "kernel", "stride", "channels") if layer.op in CONV_OPS else ("op", "kernel", "stride"),
        )
        if gene == "op":
            others = [o for o in space.layer_ops if o != layer.op]
            if not others:
                return None
            op = _pick(rng, others)
            if op in POOL_OPS:
                new = ChainLayer(op, int(_pick(rng, space.pool_kernels)), layer.stride)
            elif layer.op in CONV_OPS:
                new = replace(layer, op=op)
            else:
                new = ChainLayer(
                    op, int(_pick(rng, space.kernels)), layer.stride, int(_pick(rng, space.channels))
                )
        elif gene == "kernel":
            kernels = space.pool_kernels if layer.op in POOL_OPS else space.kernels
            others = [k for k in kernels if k != layer.kernel]
            if not others:
                return None
            new = replace(layer, kernel=int(_pick(rng, others)))
        elif gene == "stride":
            others = [s for s in space.strides if s != layer.stride]
            if not others:
                return None
            new = replace(layer, stride=int(_pick(rng, others)))
        else:
            new = replace(layer, channels=_step(rng, space.channels, layer.channels))
        return replace(genome, layers=genome.layers[:i] + (new,) + genome.layers[i + 1 :])


@dataclass(frozen=True)
class ToggleResidual:
    """Add or remove the residual skip of one conv / depthwise-separable layer."""

    weight: float = 0.5

    def __call__(
        self, space: ChainSpace, genome: ChainGenome, rng: np.random.Generator
    ) -> ChainGenome | None:
        convs = [i for i, layer in enumerate(genome.layers) if layer.op in CONV_OPS]
        if not convs:
            return None
        i = _pick(rng, convs)
        layers = list(genome.layers)
        layers[i] = replace(layers[i], residual=not layers[i].residual)
        return replace(genome, layers=tuple(layers))


@dataclass(frozen=True)
class ChangeHead:
    """Switch between global pooling and flattening."""

    weight: float = 0.25

    def __call__(
        self, space: ChainSpace, genome: ChainGenome, rng: np.random.Generator
    ) -> ChainGenome | None:
        others = [h for h in space.heads if h != genome.head]
        return replace(genome, head=_pick(rng, others)) if others else None


DEFAULT_MUTATIONS: tuple[ChainMutation, ...] = (
    InsertLayer(),
    RemoveLayer(),
    ChangeLayer(),
    ToggleResidual(),
    ChangeHead(),
)


@dataclass(frozen=True)
class OnePointCrossover:
    """Prefix of one parent + suffix of the other, cut at the same relative depth (any two lengths work).

    The cut ``i`` in parent ``a`` is uniform; the cut in ``b`` is ``round(i * len(b) / len(a))`` (uniform when
    ``a`` is empty), so two identical parents give back the parent instead of duplicating or dropping layers.
    Feature layers and dense layers are cut separately; the head comes from either parent. The child is
    truncated to the space's maximum lengths (and repaired by the space).
    """

    def __call__(
        self, space: ChainSpace, a: ChainGenome, b: ChainGenome, rng: np.random.Generator
    ) -> ChainGenome:
        if rng.random() < 0.5:
            a, b = b, a
        layers = _splice(a.layers, b.layers, rng)[: space.max_layers]
        dense = _splice(a.dense, b.dense, rng)[: space.max_dense]
        return ChainGenome(layers, a.head if rng.random() < 0.5 else b.head, dense)


def _splice(a: tuple, b: tuple, rng: np.random.Generator) -> tuple:  # type: ignore[type-arg]
    i = int(rng.integers(len(a) + 1))
    j = round(i * len(b) / len(a)) if a else int(rng.integers(len(b) + 1))
    return a[:i] + b[j:]


class ChainCrossover(Protocol):
    def __call__(
        self, space: ChainSpace, a: ChainGenome, b: ChainGenome, rng: np.random.Generator
    ) -> ChainGenome: ...


# --- the space ----------------------------------------------------------------------------------------------
def _sorted_choices(name: str, values: Sequence[int], *, minimum: int = 1) -> tuple[int, ...]:
    out = tuple(sorted({int(v) for v in values}))
    if not out or out[0] < minimum:
        raise ConfigError(f"{name} must be a non-empty tuple of integers >= {minimum}, got {tuple(values)!r}")
    return out


@SPACES.register(
    "chain", help="variable-length chain of conv / dw-separable / pool / dense layers (muNAS style)"
)
class ChainSpace:
    """Variable-length layer chains. All options are keyword-only; the gene choices are tuples.

    ``max_layers`` / ``max_dense`` bound the number of feature / hidden dense layers; ``channels``,
    ``kernels``, ``pool_kernels``, ``strides`` and ``dense_units`` are the gene choices; ``layer_ops`` and
    ``heads`` restrict the layer types and heads. ``mutations`` and ``crossover_op`` are the operator objects.
    """

    name = "chain"

    def __init__(
        self,
        *,
        input_shape: tuple[int, int, int] = (1, 28, 28),
        num_classes: int = 10,
        max_layers: int = 8,
        max_dense: int = 2,
        channels: tuple[int, ...] = (2, 4, 8, 12, 16, 24, 32, 48, 64),
        kernels: tuple[int, ...] = (1, 3, 5),
        pool_kernels: tuple[int, ...] = (2, 3),
        strides: tuple[int, ...] = (1, 2),
        dense_units: tuple[int, ...] = (8, 16, 32, 64, 128),
        layer_ops: tuple[str, ...] = LAYER_OPS,
        heads: tuple[str, ...] = HEADS,
        mutations: Sequence[ChainMutation] = DEFAULT_MUTATIONS,
        crossover_op: ChainCrossover = OnePointCrossover(),
    ) -> None:
        if len(input_shape) != 3 or min(input_shape) < 1:
            raise ConfigError(f"input_shape must be (C, H, W) with positive sizes, got {input_shape!r}")
        if num_classes < 1 or max_layers < 0 or max_dense < 0:
            raise ConfigError("num_classes must be >= 1, max_layers and max_dense >= 0")
        for name, values, upper in (("max_layers", max_layers, MAX_LAYERS), ("max_dense", max_dense, 16),
                                    ("channels", channels, MAX_CHANNELS), ("kernels", kernels, MAX_KERNEL),
                                    ("pool_kernels", pool_kernels, MAX_KERNEL), ("strides", strides, MAX_KERNEL),
                                    ("dense_units", dense_units, MAX_CHANNELS), ("num_classes", num_classes,
                                    MAX_CLASSES), ("input_shape", tuple(input_shape), MAX_INPUT)):
            check_bound(name, values, upper)
        self.input_shape = tuple(int(v) for v in input_shape)
        self.num_classes = num_classes
        self.max_layers = max_layers
        self.max_dense = max_dense
        self.channels = _sorted_choices("channels", channels)
        self.kernels = _sorted_choices("kernels", kernels)
        self.pool_kernels = _sorted_choices("pool_kernels", pool_kernels)
        self.strides = _sorted_choices("strides", strides)
        self.dense_units = _sorted_choices("dense_units", dense_units)
        if 1 not in self.strides:
            raise ConfigError(f"strides must include 1 (needed once the feature map is 1x1), got {strides!r}")
        bad = [o for o in layer_ops if o not in LAYER_OPS]
        if bad or not layer_ops:
            raise ConfigError(f"layer_ops must be a non-empty subset of {LAYER_OPS}, got {layer_ops!r}")
        if not heads or any(h not in HEADS for h in heads):
            raise ConfigError(f"heads must be a non-empty subset of {HEADS}, got {heads!r}")
        if not mutations or sum(m.weight for m in mutations) <= 0:
            raise ConfigError("at least one mutation operator with a positive weight is needed")
        self.layer_ops = tuple(layer_ops)
        self.heads = tuple(heads)
        self.mutations = tuple(mutations)
        self.crossover_op = crossover_op
        w = np.array([m.weight for m in self.mutations], dtype=np.float64)
        self._mutation_p = w / w.sum()
        ow = np.array([0.5 if o in POOL_OPS else 1.0 for o in self.layer_ops])
        self._op_p = ow / ow.sum()

    # --- validity -------------------------------------------------------------------------------------------
    def validate(self, genome: ChainGenome) -> ChainGenome:
        """Return ``genome`` if it belongs to this space, else raise :class:`InvalidGenomeError`."""
        if len(genome.layers) > self.max_layers:
            raise InvalidGenomeError(
                f"{len(genome.layers)} feature layers; this space allows {self.max_layers}"
            )
        if len(genome.dense) > self.max_dense:
            raise InvalidGenomeError(f"{len(genome.dense)} dense layers; this space allows {self.max_dense}")
        if genome.head not in self.heads:
            raise InvalidGenomeError(f"head {genome.head!r} is not allowed here; choices: {self.heads}")
        for u in genome.dense:
            if u not in self.dense_units:
                raise InvalidGenomeError(f"dense width {u} is not one of {self.dense_units}")
        h, w = self.input_shape[1:]
        for i, layer in enumerate(genome.layers):
            where = f"layer {i} ({layer})"
            if layer.op not in self.layer_ops:
                raise InvalidGenomeError(
                    f"{where}: type {layer.op!r} is not allowed here; choices: {self.layer_ops}"
                )
            kernels = self.pool_kernels if layer.op in POOL_OPS else self.kernels
            if layer.kernel not in kernels:
                raise InvalidGenomeError(f"{where}: kernel {layer.kernel} is not one of {kernels}")
            if layer.stride not in self.strides:
                raise InvalidGenomeError(f"{where}: stride {layer.stride} is not one of {self.strides}")
            if layer.op in CONV_OPS and layer.channels not in self.channels:
                raise InvalidGenomeError(f"{where}: channels {layer.channels} is not one of {self.channels}")
            if max(h, w) == 1 and (layer.stride > 1 or layer.op in POOL_OPS):
                raise InvalidGenomeError(
                    f"{where}: the feature map is already 1x1; it cannot be strided or pooled"
                )
            h, w = math.ceil(h / layer.stride), math.ceil(w / layer.stride)
        return genome

    def repair(self, genome: ChainGenome) -> ChainGenome:
        """The nearest valid genome for operator outputs: truncate to the maximum lengths, set the stride of
        layers that act on a 1x1 feature map to 1 and drop pools there."""
        h, w = self.input_shape[1:]
        layers: list[ChainLayer] = []
        for layer in genome.layers[: self.max_layers]:
            if max(h, w) == 1:
                if layer.op in POOL_OPS:
                    continue
                layer = replace(layer, stride=1)
            layers.append(layer)
            h, w = math.ceil(h / layer.stride), math.ceil(w / layer.stride)
        return ChainGenome(tuple(layers), genome.head, genome.dense[: self.max_dense])

    # --- genomes --------------------------------------------------------------------------------------------
    def parse(self, text: str) -> ChainGenome:
        return self.validate(parse_chain(text))

    def random_layer(self, rng: np.random.Generator) -> ChainLayer:
        """A random feature layer (each pooling type is half as likely as each conv type)."""
        op = self.layer_ops[int(rng.choice(len(self.layer_ops), p=self._op_p))]
        stride = int(_pick(rng, self.strides))
        if op in POOL_OPS:
            return ChainLayer(op, int(_pick(rng, self.pool_kernels)), stride)
        residual = bool(rng.random() < 0.25)
        return ChainLayer(op, int(_pick(rng, self.kernels)), stride, int(_pick(rng, self.channels)), residual)

    def sample(self, rng: np.random.Generator) -> ChainGenome:
        n = int(rng.integers(self.max_layers + 1))
        layers = tuple(self.random_layer(rng) for _ in range(n))
        head = _pick(rng, self.heads)
        dense = tuple(int(_pick(rng, self.dense_units)) for _ in range(int(rng.integers(self.max_dense + 1))))
        return self.repair(ChainGenome(layers, head, dense))

    def trivial(self) -> ChainGenome:
        """No feature and no hidden layer: the pooled (or flattened) input feeds the classifier."""
        return ChainGenome((), self.heads[0], ())

    def mutate(self, genome: ChainGenome, rng: np.random.Generator) -> ChainGenome:
        """Apply one operator drawn by weight, retrying (a bounded number of times) while it is a no-op."""
        self.validate(genome)
        for _ in range(16):
            op = self.mutations[int(rng.choice(len(self.mutations), p=self._mutation_p))]
            child = op(self, genome, rng)
            if child is not None:
                child = self.repair(child)
                if child != genome:
                    return child
        for op in self.mutations:  # deterministic fallback: the first operator that changes anything
            for _ in range(4):
                child = op(self, genome, rng)
                if child is not None and (child := self.repair(child)) != genome:
                    return child
        return genome  # only reachable in a space with a single point

    def crossover(self, a: ChainGenome, b: ChainGenome, rng: np.random.Generator) -> ChainGenome:
        self.validate(a), self.validate(b)
        return self.repair(self.crossover_op(self, a, b, rng))

    # --- features -------------------------------------------------------------------------------------------
    _PER_LAYER = len(LAYER_OPS) + 5  # one-hot type + present, log-width, kernel, stride, residual

    def features(self, genome: ChainGenome) -> np.ndarray:
        """Per-position padded encoding of the feature and dense layers plus summary counts.

        Per feature position: [present, one-hot type (4), log2 width / log2 max width, kernel / max kernel,
        stride - 1, residual]; per dense position: [present, log2 units / log2 max units]; then the summary:
        [#feature layers / max, #dense / max, #residual, log2 total stride, one-hot head (2)].
        """
        self.validate(genome)
        per = self._PER_LAYER
        vec = np.zeros(self.max_layers * per + self.max_dense * 2 + 4 + len(HEADS), dtype=np.float64)
        cmax = math.log2(max(self.channels) + 1)
        kmax = max(max(self.kernels), max(self.pool_kernels))
        for i, layer in enumerate(genome.layers):
            v = vec[i * per : (i + 1) * per]
            v[0] = 1.0
            v[1 + LAYER_OPS.index(layer.op)] = 1.0
            v[5] = math.log2(layer.channels + 1) / cmax if layer.channels else 0.0
            v[6] = layer.kernel / kmax
            v[7] = layer.stride - 1
            v[8] = float(layer.residual)
        off = self.max_layers * per
        umax = math.log2(max(self.dense_units) + 1)
        for i, u in enumerate(genome.dense):
            vec[off + 2 * i] = 1.0
            vec[off + 2 * i + 1] = math.log2(u + 1) / umax
        off += self.max_dense * 2
        vec[off] = len(genome.layers) / max(self.max_layers, 1)
        vec[off + 1] = len(genome.dense) / max(self.max_dense, 1)
        vec[off + 2] = sum(layer.residual for layer in genome.layers)
        vec[off + 3] = sum(math.log2(layer.stride) for layer in genome.layers)
        vec[off + 4 + HEADS.index(genome.head)] = 1.0
        return vec

    # --- architecture ---------------------------------------------------------------------------------------
    def decode(self, genome: ChainGenome) -> ArchIR:
        self.validate(genome)
        b = GraphBuilder(self.input_shape)
        x = b.input
        for i, layer in enumerate(genome.layers):
            x = _feature_layer(b, x, layer, f"l{i}")
        if genome.head == "gap":
            x = b.add(GlobalPool("avg"), x, name="gap")
        for i, units in enumerate(genome.dense):
            x = b.add(Dense(units, act="relu"), x, name=f"dense{i}")
        return b.build(b.add(Dense(self.num_classes), x, name="classifier"))


def _feature_layer(b: GraphBuilder, x: str, layer: ChainLayer, name: str) -> str:
    if layer.op in POOL_OPS:
        mode = "max" if layer.op == "maxpool" else "avg"
        return b.add(Pool2d(mode, kernel=layer.kernel, stride=layer.stride, padding="same"), x, name=name)
    act = "none" if layer.residual else "relu"
    if layer.op == "conv":
        y = b.add(
            Conv2d(layer.channels, kernel=layer.kernel, stride=layer.stride, act=act), x, name=f"{name}.conv"
        )
    else:
        y = b.add(DepthwiseConv2d(layer.kernel, stride=layer.stride, act="relu"), x, name=f"{name}.dw")
        y = b.add(Conv2d(layer.channels, kernel=1, act=act), y, name=f"{name}.pw")
    if not layer.residual:
        return y
    skip = x
    if b.shape(x) != b.shape(y):
        skip = b.add(Conv2d(layer.channels, kernel=1, stride=layer.stride), x, name=f"{name}.proj")
    return b.add(Add(act="relu"), y, skip, name=f"{name}.add")
