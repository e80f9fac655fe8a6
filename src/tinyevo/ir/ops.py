"""Framework-free operator records of the architecture IR.

Every op is a frozen dataclass that knows how to infer its output shape from its input shapes. Shapes are
``(C, H, W)`` tuples; a flat vector of ``F`` features is ``(F, 1, 1)``. Batch normalisation is not an IR op: the
torch builder places it after every convolution (one decision, one place), and int8 export folds it away.

Padding is ``"same"`` (TensorFlow semantics: output = ceil(in / stride), the extra pad row/column goes to the
bottom/right) or ``"valid"`` (no padding). TF "SAME" is what an int8 ``.tflite`` kernel supports natively, so an
IR that uses it exports without extra PAD ops.

A new op is added here (record + shape rule) and then once in each consumer (torch builder, cost model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

from tinyevo.errors import IRValidationError

Shape = tuple[int, int, int]
Activation = Literal["none", "relu", "relu6"]
Padding = Literal["same", "valid"]

ACTIVATIONS: tuple[str, ...] = ("none", "relu", "relu6")
PADDINGS: tuple[str, ...] = ("same", "valid")


def _check_act(act: str) -> None:
    if act not in ACTIVATIONS:
        raise IRValidationError(f"unknown activation {act!r}; expected one of {ACTIVATIONS}")


def _check_padding(padding: str) -> None:
    if padding not in PADDINGS:
        raise IRValidationError(f"unknown padding {padding!r}; expected one of {PADDINGS}")


def _positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise IRValidationError(f"{name} must be a positive integer, got {value!r}")


def spatial_out(size: int, kernel: int, stride: int, padding: str) -> int:
    """Output length of one spatial axis under TF padding semantics."""
    if padding == "same":
        return math.ceil(size / stride)
    if size < kernel:
        raise IRValidationError(f"kernel {kernel} is larger than the input ({size}) with 'valid' padding")
    return (size - kernel) // stride + 1


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding that TF "SAME" applies on one axis."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


@dataclass(frozen=True)
class Op:
    """Base class: an operator with a fixed number of inputs (``arity``; ``-1`` = two or more)."""

    kind: ClassVar[str] = "op"
    arity: ClassVar[int] = 1

    def infer_shape(self, inputs: tuple[Shape, ...]) -> Shape:
        raise NotImplementedError

    def check_arity(self, inputs: tuple[Shape, ...]) -> None:
        if self.arity == -1:
            if len(inputs) < 2:
                raise IRValidationError(f"{self.kind} needs at least two inputs, got {len(inputs)}")
        elif len(inputs) != self.arity:
            raise IRValidationError(f"{self.kind} needs {self.arity} input(s), got {len(inputs)}")

    def describe(self) -> str:
        """A short human-readable label, e.g. ``conv3x3/2 c32 relu``."""
        return self.kind


@dataclass(frozen=True)
class Input(Op):
    """The network input; the only op without inputs."""

    shape: Shape
    kind: ClassVar[str] = "input"
    arity: ClassVar[int] = 0

    def __post_init__(self) -> None:
        if len(self.shape) != 3:
            raise IRValidationError(f"input shape must be (C, H, W), got {self.shape!r}")
        for v in self.shape:
            _positive("input dimension", v)

    def infer_shape(self, inputs: tuple[Shape, ...]) -> Shape:
        return tuple(self.shape)  # type: ignore[return-value]

    def describe(self) -> str:
        return "input " + "x".join(map(str, self.shape))


@dataclass(frozen=True)
class Conv2d(Op):
    """Convolution (grouped when ``groups > 1``); followed by BatchNorm in the torch builder.

    A 1x1 convolution is a pointwise conv (:attr:`is_pointwise`).
    """

    out_channels: int
    kernel: int = 3
    stride: int = 1
    padding: Padding = "same"
    groups: int = 1
    act: Activation = "none"
    kind: ClassVar[str] = "conv2d"

    def __post_init__(self) -> None:
        for name in ("out_channels", "kernel", "stride", "groups"):
            _positive(name, getattr(self, name))
        _check_padding(self.padding)
        _check_act(self.act)
        if self.out_channels % self.groups:
            raise IRValidationError(f"out_channels {self.out_channels} not divisible by groups {self.groups}")

    @property
    def is_pointwise(self) -> bool:
        return self.kernel == 1 and self.groups == 1

    def infer_shape(self, inputs: tuple[Shape, ...]) -> Shape:
        self.check_arity(inputs)
        c, h, w = inputs[0]
        if c % self.groups:
            raise IRValidationError(f"conv2d input channels {c} not divisible by groups {self.groups}")
        return (
            self.out_channels,
            spatial_out(h, self.kernel, self.stride, self.padding),
            spatial_out(w, self.kernel, self.stride, self.padding),
        )

    def describe(self) -> str:
        name = "pw" if self.is_pointwise else f"conv{self.kernel}x{self.kernel}"
        parts = [name + (f"/{self.stride}" if self.stride > 1 else ""), f"c{self.out_channels}"]
        if self.groups > 1:
            parts.append(f"g{self.groups}")
        if self.act != "none":
            parts.append(self.act)
        return " ".join(parts)


@dataclass(frozen=True)
class DepthwiseConv2d(Op):
    """Depthwise convolution (one filter per channel, multiplier 1); followed by BatchNorm."""

    kernel: int = 3
    stride: int = 1
    padding: Padding = "same"
    act: Activation = "none"
    kind: ClassVar[str] = "dwconv2d"

    def __post_init__(self) -> None:
        _positive("kernel", self.kernel)
        _positive("stride", self.stride)
        _check_padding(self.padding)
        _check_act(self.act)

    def infer_shape(self, inputs: tuple[Shape, ...]) -> Shape:
        self.check_arity(inputs)
        c, h, w = inputs[0]
        return (
            c,
            spatial_out(h, self.kernel, self.stride, self.padding),
            spatial_out(w, self.kernel, self.stride, self.padding),
        )

    def describe(self) -> str:
        s = f"dw{self.kernel}x{self.kernel}" + (f"/{self.stride}" if self.stride > 1 else "")
        return s + (f" {self.act}" if self.act != "none" else "")


@dataclass(frozen=True)
class Pool2d(Op):
    """Average or max pooling over a ``kernel`` x ``kernel`` window."""

    mode: Literal["avg", "max"] = "max"
    kernel: int = 2
    stride: int = 2
    padding: Padding = "valid"
    kind: ClassVar[str] = "pool2d"

    def __post_init__(self) -> None:
        if self.mode not in ("avg", "max"):
            raise IRValidationError(f"pool mode must be 'avg' or 'max', got {self.mode!r}")
        _positive("kernel", self.kernel)
        _positive("stride", self.stride)
        _check_padding(self.padding)

    def infer_shape(self, inputs: tuple[Shape, ...]) -> Shape:
        self.check_arity(inputs)
        c, h, w = inputs[0]
        return (
            c,
            spatial_out(h, self.kernel, self.stride, self.padding),
            spatial_out(w, self.kernel, self.stride, self.padding),
        )

    def describe(self) -> str:
        return f"{self.mode}pool{self.kernel}x{self.kernel}" + (f"/{self.stride}" if self.stride > 1 else "")


@dataclass(frozen=True)
class GlobalPool(Op):
    """Global average (or max) pooling to ``(C, 1, 1)``."""

    mode: Literal["avg", "max"] = "avg"
    kind: ClassVar[str] = "globalpool"

    def __post_init__(self) -> None:
        if self.mode not in ("avg", "max"):
            raise IRValidationError(f"pool mode must be 'avg' or 'max', got {self.mode!r}")

    def infer_shape(self, inputs: tuple[Shape, ...]) -> Shape:
        self.check_arity(inputs)
        return (inputs[0][0], 1, 1)

    def describe(self) -> str:
        return f"global{self.mode}pool"


@dataclass(frozen=True)
class Dense(Op):
    """Fully connected layer over the flattened input (C*H*W features, channel-major order)."""

    out_features: int
    act: Activation = "none"
    kind: ClassVar[str] = "dense"

    def __post_init__(self) -> None:
        _positive("out_features", self.out_features)
        _check_act(self.act)

    def infer_shape(self, inputs: tuple[Shape, ...]) -> Shape:
        self.check_arity(inputs)
        return (self.out_features, 1, 1)

    def describe(self) -> str:
        return f"dense {self.out_features}" + (f" {self.act}" if self.act != "none" else "")


@dataclass(frozen=True)
class Add(Op):
    """Element-wise sum of two or more tensors of the same shape, optionally followed by an activation."""

    act: Activation = "none"
    kind: ClassVar[str] = "add"
    arity: ClassVar[int] = -1

    def __post_init__(self) -> None:
        _check_act(self.act)

    def infer_shape(self, inputs: tuple[Shape, ...]) -> Shape:
        self.check_arity(inputs)
        if len(set(inputs)) != 1:
            raise IRValidationError(f"add needs inputs of one shape, got {list(inputs)}")
        return inputs[0]


@dataclass(frozen=True)
class Concat(Op):
    """Concatenation along channels of tensors with the same spatial size."""

    kind: ClassVar[str] = "concat"
    arity: ClassVar[int] = -1

    def infer_shape(self, inputs: tuple[Shape, ...]) -> Shape:
        self.check_arity(inputs)
        if len({s[1:] for s in inputs}) != 1:
            raise IRValidationError(f"concat needs inputs of one spatial size, got {list(inputs)}")
        return (sum(s[0] for s in inputs), inputs[0][1], inputs[0][2])


@dataclass(frozen=True)
class Identity(Op):
    """Skip connection: passes its input through unchanged."""

    kind: ClassVar[str] = "identity"

    def infer_shape(self, inputs: tuple[Shape, ...]) -> Shape:
        self.check_arity(inputs)
        return inputs[0]


@dataclass(frozen=True)
class Zero(Op):
    """The "none" operation: a tensor of zeros shaped like its input (contributes nothing to a sum)."""

    kind: ClassVar[str] = "zero"

    def infer_shape(self, inputs: tuple[Shape, ...]) -> Shape:
        self.check_arity(inputs)
        return inputs[0]


@dataclass(frozen=True)
class Act(Op):
    """A standalone activation (ReLU / ReLU6), used where it does not follow a conv (e.g. pre-activation)."""

    fn: Activation = "relu"
    kind: ClassVar[str] = "activation"

    def __post_init__(self) -> None:
        _check_act(self.fn)
        if self.fn == "none":
            raise IRValidationError("a standalone activation must be 'relu' or 'relu6'; use Identity for none")

    def infer_shape(self, inputs: tuple[Shape, ...]) -> Shape:
        self.check_arity(inputs)
        return inputs[0]

    def describe(self) -> str:
        return self.fn


OP_TYPES: tuple[type[Op], ...] = (
    Input, Conv2d, DepthwiseConv2d, Pool2d, GlobalPool, Dense, Add, Concat, Identity, Zero, Act,
)
