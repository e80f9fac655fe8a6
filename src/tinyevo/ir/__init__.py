"""Framework-free architecture IR: ops, graphs and the graph builder."""

from __future__ import annotations

from tinyevo.ir.graph import ArchIR, GraphBuilder, Node
from tinyevo.ir.ops import (
    ACTIVATIONS,
    OP_TYPES,
    Act,
    Add,
    Concat,
    Conv2d,
    Dense,
    DepthwiseConv2d,
    GlobalPool,
    Identity,
    Input,
    Op,
    Pool2d,
    Shape,
    Zero,
    same_pads,
    spatial_out,
)

__all__ = [
    "ACTIVATIONS", "OP_TYPES", "Act", "Add", "ArchIR", "Concat", "Conv2d", "Dense", "DepthwiseConv2d",
    "GlobalPool", "GraphBuilder", "Identity", "Input", "Node", "Op", "Pool2d", "Shape", "Zero", "same_pads",
    "spatial_out",
]
