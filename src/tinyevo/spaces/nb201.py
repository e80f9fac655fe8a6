"""NAS-Bench-201 cell space: 6 edges x 5 operations, in the fixed NB201 macro skeleton.

Genome string: the standard NB201 architecture string, e.g.
``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|``,
exactly as in the ``arch`` column of ``nb201_cifar10.csv``. Edge order: (1<-0), (2<-0), (2<-1), (3<-0), (3<-1),
(3<-2).

Skeleton (Dong & Yang, 2020): 3x3 conv stem (C channels), then three stages of N cells with C, 2C, 4C channels
separated by residual reduction blocks, then ReLU, global average pooling and a classifier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from tinyevo.errors import InvalidGenomeError
from tinyevo.ir import Act, Add, ArchIR, Conv2d, Dense, GlobalPool, GraphBuilder, Pool2d, Zero
from tinyevo.spaces.base import MAX_CHANNELS, MAX_CLASSES, MAX_INPUT, MAX_LAYERS, SPACES, check_bound
from tinyevo.spaces.genes import ChangeOneGene, UniformCrossover, single_edits

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to, from)
_EDGE_CHOICES = (OPS,) * len(EDGES)
_NODE_RE = re.compile(r"^([a-z0-9_]+)~(\d)$")


@dataclass(frozen=True)
class NB201Genome:
    """The operation on each of the six cell edges, in :data:`EDGES` order."""

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.ops) != len(EDGES):
            raise InvalidGenomeError(f"an NB201 genome has {len(EDGES)} edges, got {len(self.ops)}")
        for op in self.ops:
            if op not in OPS:
                raise InvalidGenomeError(f"unknown NB201 operation {op!r}; expected one of {', '.join(OPS)}")

    def __str__(self) -> str:
        parts, k = [], 0
        for node in (1, 2, 3):
            edges = []
            for src in range(node):
                edges.append(f"{self.ops[k]}~{src}")
                k += 1
            parts.append("|" + "|".join(edges) + "|")
        return "+".join(parts)


def parse_nb201(text: str) -> NB201Genome:
    """Parse a standard NB201 architecture string."""
    text = text.strip()
    nodes = text.split("+")
    if len(nodes) != 3:
        raise InvalidGenomeError(f"malformed NB201 string {text!r}: expected 3 '+'-separated nodes")
    ops: list[str] = []
    for i, chunk in enumerate(nodes, start=1):
        if not (chunk.startswith("|") and chunk.endswith("|")):
            raise InvalidGenomeError(f"malformed NB201 string {text!r}: node {i} must be enclosed in '|'")
        items = chunk[1:-1].split("|")
        if len(items) != i:
            raise InvalidGenomeError(f"malformed NB201 string {text!r}: node {i} needs {i} edges, got {len(items)}")
        for src, item in enumerate(items):
            m = _NODE_RE.match(item)
            if not m or int(m.group(2)) != src:
                raise InvalidGenomeError(f"malformed NB201 edge {item!r} in {text!r}: expected 'op~{src}'")
            ops.append(m.group(1))
    return NB201Genome(tuple(ops))


@SPACES.register("nb201", help="NAS-Bench-201 cell (6 edges x 5 ops), fixed-length")
class NB201Space:
    """The NAS-Bench-201 space. Options: stem channels ``C``, cells per stage ``N``, input shape, classes."""

    name = "nb201"
    ops = OPS

    def __init__(
        self,
        *,
        channels: int = 16,
        cells_per_stage: int = 5,
        input_shape: tuple[int, int, int] = (3, 32, 32),
        num_classes: int = 10,
    ) -> None:
        check_bound("cells_per_stage", cells_per_stage, MAX_LAYERS // 3)  # three stages of cells
        check_bound("channels x 4", channels * 4, MAX_CHANNELS)  # (doubled at each of the two reductions)
        check_bound("num_classes", num_classes, MAX_CLASSES)
        check_bound("input_shape", tuple(input_shape), MAX_INPUT)
        self.channels = channels
        self.cells_per_stage = cells_per_stage
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes

    # --- genomes -----------------------------------------------------------------------------------------------
    def parse(self, text: str) -> NB201Genome:
        return parse_nb201(text)

    def sample(self, rng: np.random.Generator) -> NB201Genome:
        return NB201Genome(tuple(OPS[i] for i in rng.integers(0, len(OPS), size=len(EDGES))))

    def trivial(self) -> NB201Genome:
        """The cell reduced to one skip connection (input -> output): the network is stem + reductions."""
        return NB201Genome(("none", "none", "none", "skip_connect", "none", "none"))

    mutation = ChangeOneGene()  # one edge takes another operation
    crossover_op = UniformCrossover()  # each edge's operation from either parent

    def validate(self, genome: NB201Genome) -> NB201Genome:
        """``genome`` if it is an NB201 genome (every genome of six known operations belongs to every NB201
        space), else :class:`InvalidGenomeError`."""
        if not isinstance(genome, NB201Genome):
            raise InvalidGenomeError(f"not an NB201 genome: {genome!r}")
        return genome

    def mutate(self, genome: NB201Genome, rng: np.random.Generator) -> NB201Genome:
        return NB201Genome(self.mutation(self.validate(genome).ops, _EDGE_CHOICES, rng))

    def crossover(self, a: NB201Genome, b: NB201Genome, rng: np.random.Generator) -> NB201Genome:
        return NB201Genome(self.crossover_op(self.validate(a).ops, self.validate(b).ops, rng))

    def neighbours(self, genome: NB201Genome) -> list[NB201Genome]:
        """All genomes one edge-edit away (24 of them)."""
        return [NB201Genome(ops) for ops in single_edits(self.validate(genome).ops, _EDGE_CHOICES)]

    def features(self, genome: NB201Genome) -> np.ndarray:
        vec = np.zeros(len(EDGES) * len(OPS), dtype=np.float64)
        for e, op in enumerate(genome.ops):
            vec[e * len(OPS) + OPS.index(op)] = 1.0
        return vec

    # --- architecture ------------------------------------------------------------------------------------------
    def decode(self, genome: NB201Genome) -> ArchIR:
        b = GraphBuilder(self.input_shape)
        c = self.channels
        x = b.add(Conv2d(c, kernel=3), b.input, name="stem")
        for stage in range(3):
            if stage > 0:
                c *= 2
                x = _reduction(b, x, c, f"reduce{stage}")
            for cell in range(self.cells_per_stage):
                x = _cell(b, x, c, genome, f"s{stage}c{cell}")
        x = b.add(Act("relu"), x, name="lastact")
        x = b.add(GlobalPool("avg"), x, name="gap")
        return b.build(b.add(Dense(self.num_classes), x, name="classifier"))


def _relu_conv(b: GraphBuilder, x: str, c: int, kernel: int, stride: int, name: str) -> str:
    x = b.add(Act("relu"), x, name=f"{name}.relu")
    return b.add(Conv2d(c, kernel=kernel, stride=stride), x, name=f"{name}.conv")


def _reduction(b: GraphBuilder, x: str, c: int, name: str) -> str:
    """NB201's residual reduction block (ResNet basic block, stride 2, avg-pool + 1x1 conv shortcut)."""
    y = _relu_conv(b, x, c, 3, 2, f"{name}.a")
    y = _relu_conv(b, y, c, 3, 1, f"{name}.b")
    s = b.add(Pool2d("avg", kernel=2, stride=2), x, name=f"{name}.pool")
    s = b.add(Conv2d(c, kernel=1), s, name=f"{name}.proj")
    return b.add(Add(), y, s, name=f"{name}.add")


def _cell(b: GraphBuilder, x: str, c: int, genome: NB201Genome, name: str) -> str:
    nodes: list[str | None] = [x]  # None = an all-zero node
    k = 0
    for node in (1, 2, 3):
        terms: list[str] = []
        for src in range(node):
            op = genome.ops[k]
            k += 1
            inp = nodes[src]
            if op == "none" or inp is None:
                continue
            tag = f"{name}.n{node}e{src}"
            if op == "skip_connect":
                terms.append(inp)
            elif op == "nor_conv_1x1":
                terms.append(_relu_conv(b, inp, c, 1, 1, tag))
            elif op == "nor_conv_3x3":
                terms.append(_relu_conv(b, inp, c, 3, 1, tag))
            else:  # avg_pool_3x3
                terms.append(b.add(Pool2d("avg", kernel=3, stride=1, padding="same"), inp, name=f"{tag}.pool"))
        if not terms:
            nodes.append(None)
        elif len(terms) == 1:
            nodes.append(terms[0])
        else:
            nodes.append(b.add(Add(), *terms, name=f"{name}.n{node}"))
    out = nodes[3]
    if out is None:
        return b.add(Zero(), x, name=f"{name}.zero")
    return out
