"""IR transforms used by low-fidelity estimation: another input resolution, scaled widths.

Both rebuild the graph node by node with :class:`~tinyevo.ir.GraphBuilder` (same node names, so weights of a
transformed network still line up by name where shapes agree) and raise
:class:`~tinyevo.errors.IRValidationError` when the result is not a valid network.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

from tinyevo.errors import ConfigError
from tinyevo.ir import ArchIR, Conv2d, Dense, GraphBuilder, Input, Node, Op, Shape


def rebuild(
    ir: ArchIR,
    *,
    input_shape: Shape | None = None,
    op_for: Callable[[Node, tuple[Shape, ...]], Op] | None = None,
) -> ArchIR:
    """A copy of ``ir`` with another input shape and/or ops replaced by ``op_for(node, new_input_shapes)``."""
    b = GraphBuilder(input_shape or ir.input_shape, input_name=ir.input_name)
    for node in ir.nodes[1:]:
        shapes = tuple(b.shape(s) for s in node.inputs)
        op = op_for(node, shapes) if op_for is not None else node.op
        b.add(op, *node.inputs, name=node.name)
    return b.build(ir.output)


def with_input_shape(ir: ArchIR, shape: Shape) -> ArchIR:
    """``ir`` reading inputs of ``shape`` (C, H, W) (e.g. downscaled images); layer sizes follow the
    shapes."""
    if tuple(shape) == ir.input_shape:
        return ir
    return rebuild(ir, input_shape=tuple(int(v) for v in shape))  # type: ignore[arg-type]


def classifier_nodes(ir: ArchIR) -> set[str]:
    """Names of the Dense / Conv2d nodes that set the number of outputs (reached from the output through ops
    that keep channel counts: pooling, activations, identities, adds, depthwise convs)."""
    fixed: set[str] = set()
    stack, seen = [ir.output], set()
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        node = ir.node(name)
        if isinstance(node.op, (Dense, Conv2d)):
            fixed.add(name)
        elif not isinstance(node.op, Input):
            stack.extend(node.inputs)
    return fixed


def scale_width(ir: ArchIR, multiplier: float, *, divisor: int = 1, min_channels: int = 1) -> ArchIR:
    """``ir`` with the channels of every conv and the units of every dense layer multiplied by ``multiplier``
    (rounded to a multiple of ``divisor``, at least ``min_channels``), except the classifier.

    Grouped convolutions keep working: a conv with one group per input channel keeps that property, other
    groups shrink to a common divisor of the new channel counts.
    """
    if not multiplier > 0:
        raise ConfigError(f"width multiplier must be positive, got {multiplier}")
    if multiplier == 1.0:
        return ir
    fixed = classifier_nodes(ir)

    def scaled(c: int) -> int:
        v = int(round(c * multiplier / divisor)) * divisor
        return max(min_channels, divisor, v)

    def op_for(node: Node, shapes: tuple[Shape, ...]) -> Op:
        op = node.op
        if node.name in fixed:
            if isinstance(op, Conv2d) and op.groups > 1:
                old_in = ir.in_shapes(node)[0][0]
                new_in = shapes[0][0]
                g = new_in if op.groups == old_in else math.gcd(math.gcd(new_in, op.out_channels), op.groups)
                return replace(op, groups=math.gcd(g, op.out_channels))
            return op
        if isinstance(op, Dense):
            return replace(op, out_features=scaled(op.out_features))
        if isinstance(op, Conv2d):
            out = scaled(op.out_channels)
            if op.groups == 1:
                return replace(op, out_channels=out)
            old_in, new_in = ir.in_shapes(node)[0][0], shapes[0][0]
            if op.groups == old_in:  # one group per input channel: keep that property
                per = max(1, op.out_channels // old_in)
                return replace(op, out_channels=new_in * per, groups=new_in)
            g = math.gcd(math.gcd(new_in, out), op.groups)
            return replace(op, out_channels=out, groups=g)
        return op

    return rebuild(ir, op_for=op_for)
