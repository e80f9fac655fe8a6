"""NAS-Bench-Macro: a MobileNetV2-style macro space of 8 searchable layers x 3 choices (3^8 = 6,561 networks).

Genome string: the 8-digit key of ``nas-bench-macro_cifar10.json``, one digit per searchable layer, first
layer first: ``0`` = identity, ``1`` = MobileNetV2 block (kernel 3, expansion 3), ``2`` = MobileNetV2 block
(kernel 5, expansion 6). Example: ``"01201201"``.

Skeleton (Su et al., "Prioritized Architecture Sampling with Monte-Carlo Tree Search", CVPR 2021; model
definition in xiusu/NAS-Bench-Macro ``train/model.py``), reproduced here as IR:

* stem: 3x3 conv, ``init_channels`` (32), stride 1, BN, ReLU;
* three stages of (2, 3, 3) searchable layers; the first layer of each stage has stride 2 and doubles the
  channels (32 -> 64 -> 128 -> 256), the others keep stride 1 and the width;
* "identity" at a downsampling layer is a 1x1 conv with stride 2 + BN (no activation), elsewhere a plain skip;
* MobileNetV2 block: 1x1 expand conv + BN + ReLU, kxk depthwise (stride) + BN + ReLU, 1x1 linear projection +
  BN, plus an identity shortcut when stride is 1 and the width is unchanged (ReLU, not ReLU6, as in the
  reference);
* head: 1x1 conv to ``head_channels`` (1280) + BN + ReLU, global average pooling, linear classifier.

With the default options the parameter count of the decoded network equals the benchmark's ``params`` field
(BN weights and biases included). The only deliberate difference to the reference is padding: the IR uses TF
"SAME" (a stride-2 conv on an even input pads 0 before / 1 after) where the PyTorch reference pads
symmetrically; shapes and parameter counts are identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyevo.errors import ConfigError, InvalidGenomeError
from tinyevo.ir import Add, ArchIR, Conv2d, Dense, DepthwiseConv2d, GlobalPool, GraphBuilder
from tinyevo.spaces.base import MAX_CHANNELS, MAX_CLASSES, MAX_INPUT, MAX_LAYERS, SPACES, check_bound
from tinyevo.spaces.genes import ChangeOneGene, UniformCrossover, single_edits

#: The three layer choices, indexed by the genome digit: (name, kernel, expansion); identity has no kernel.
CHOICES: tuple[tuple[str, int, int], ...] = (("identity", 0, 0), ("mb_k3_e3", 3, 3), ("mb_k5_e6", 5, 6))


@dataclass(frozen=True)
class MacroGenome:
    """One choice index (0, 1 or 2; see :data:`CHOICES`) per searchable layer, first layer first."""

    layers: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.layers:
            raise InvalidGenomeError("a NAS-Bench-Macro genome needs at least one layer")
        for v in self.layers:
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < len(CHOICES):
                raise InvalidGenomeError(f"NAS-Bench-Macro layer choices are 0, 1 or 2, got {v!r}")

    def __str__(self) -> str:
        return "".join(str(v) for v in self.layers)


@SPACES.register("macro", help="NAS-Bench-Macro: 8 MobileNetV2 layers x {identity, MB k3 e3, MB k5 e6}")
class MacroSpace:
    """The NAS-Bench-Macro space.

    Options: ``init_channels`` (stem width, doubled at each stage), ``stages`` (searchable layers per stage;
    the first of each stage has stride 2), ``head_channels`` (width of the final 1x1 conv), input shape and
    classes. The defaults reproduce the benchmark; smaller values give small networks for tests.
    """

    name = "macro"
    choices = CHOICES

    def __init__(
        self,
        *,
        init_channels: int = 32,
        stages: tuple[int, ...] = (2, 3, 3),
        head_channels: int = 1280,
        input_shape: tuple[int, int, int] = (3, 32, 32),
        num_classes: int = 10,
    ) -> None:
        if init_channels < 1 or head_channels < 1 or num_classes < 1:
            raise ConfigError("init_channels, head_channels and num_classes must be positive")
        if not stages or any(s < 1 for s in stages):
            raise ConfigError(f"stages must be a non-empty tuple of positive layer counts, got {stages!r}")
        check_bound("layers (sum of stages)", sum(stages), MAX_LAYERS)
        check_bound("init_channels x 2**stages", init_channels * 2 ** min(len(stages), 64), MAX_CHANNELS)
        check_bound("head_channels", head_channels, MAX_CHANNELS)
        check_bound("num_classes", num_classes, MAX_CLASSES)
        check_bound("input_shape", tuple(input_shape), MAX_INPUT)
        if len(input_shape) != 3:
            raise ConfigError(f"input_shape must be (C, H, W), got {input_shape!r}")
        self.init_channels = init_channels
        self.stages = tuple(stages)
        self.head_channels = head_channels
        self.input_shape = tuple(int(v) for v in input_shape)
        self.num_classes = num_classes
        self.num_layers = sum(self.stages)

    # --- genomes --------------------------------------------------------------------------------------------
    def validate(self, genome: MacroGenome) -> MacroGenome:
        """``genome`` if it has this space's number of layers, else :class:`InvalidGenomeError`."""
        if not isinstance(genome, MacroGenome):
            raise InvalidGenomeError(f"not a NAS-Bench-Macro genome: {genome!r}")
        if len(genome.layers) != self.num_layers:
            raise InvalidGenomeError(
                f"this NAS-Bench-Macro space has {self.num_layers} layers, "
                f"the genome has {len(genome.layers)}"
            )
        return genome

    def parse(self, text: str) -> MacroGenome:
        text = text.strip()
        if len(text) != self.num_layers or any(ch not in "012" for ch in text):
            raise InvalidGenomeError(
                f"malformed NAS-Bench-Macro genome {text!r}: expected {self.num_layers} digits, "
                "each 0, 1 or 2 (e.g. '01201201')"
            )
        return MacroGenome(tuple(int(ch) for ch in text))

    def sample(self, rng: np.random.Generator) -> MacroGenome:
        return MacroGenome(tuple(int(v) for v in rng.integers(0, len(CHOICES), size=self.num_layers)))

    def trivial(self) -> MacroGenome:
        """Every layer an identity: stem, the three downsampling projections and the head."""
        return MacroGenome((0,) * self.num_layers)

    mutation = ChangeOneGene()  # one layer takes another block choice
    crossover_op = UniformCrossover()  # each layer's choice from either parent

    def _choices(self) -> tuple[range, ...]:
        return (range(len(CHOICES)),) * self.num_layers

    def mutate(self, genome: MacroGenome, rng: np.random.Generator) -> MacroGenome:
        return MacroGenome(self.mutation(self.validate(genome).layers, self._choices(), rng))

    def crossover(self, a: MacroGenome, b: MacroGenome, rng: np.random.Generator) -> MacroGenome:
        return MacroGenome(self.crossover_op(self.validate(a).layers, self.validate(b).layers, rng))

    def neighbours(self, genome: MacroGenome) -> list[MacroGenome]:
        """All genomes one layer-edit away (2 per layer)."""
        return [MacroGenome(layers) for layers in single_edits(self.validate(genome).layers, self._choices())]

    def features(self, genome: MacroGenome) -> np.ndarray:
        """One-hot choice per layer (``3 * num_layers`` values)."""
        vec = np.zeros(self.num_layers * len(CHOICES), dtype=np.float64)
        for i, c in enumerate(self.validate(genome).layers):
            vec[i * len(CHOICES) + c] = 1.0
        return vec

    # --- architecture ---------------------------------------------------------------------------------------
    def decode(self, genome: MacroGenome) -> ArchIR:
        self.validate(genome)
        b = GraphBuilder(self.input_shape)
        c = self.init_channels
        x = b.add(Conv2d(c, kernel=3, act="relu"), b.input, name="stem")
        i = 0
        for n in self.stages:
            for j in range(n):
                stride, c_out = (2, 2 * c) if j == 0 else (1, c)
                x = _layer(b, x, genome.layers[i], c, c_out, stride, f"l{i}")
                c = c_out
                i += 1
        x = b.add(Conv2d(self.head_channels, kernel=1, act="relu"), x, name="head")
        x = b.add(GlobalPool("avg"), x, name="gap")
        return b.build(b.add(Dense(self.num_classes), x, name="classifier"))


def _layer(b: GraphBuilder, x: str, choice: int, c_in: int, c_out: int, stride: int, name: str) -> str:
    _, kernel, expand = CHOICES[choice]
    if choice == 0:
        if stride == 1 and c_in == c_out:
            return x
        return b.add(Conv2d(c_out, kernel=1, stride=stride), x, name=f"{name}.down")
    y = b.add(Conv2d(c_in * expand, kernel=1, act="relu"), x, name=f"{name}.expand")
    y = b.add(DepthwiseConv2d(kernel, stride=stride, act="relu"), y, name=f"{name}.dw")
    y = b.add(Conv2d(c_out, kernel=1), y, name=f"{name}.project")
    if stride == 1 and c_in == c_out:
        y = b.add(Add(), y, x, name=f"{name}.add")
    return y
