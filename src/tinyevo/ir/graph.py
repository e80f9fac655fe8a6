"""The architecture IR: a validated DAG of ops with inferred tensor shapes.

Search spaces emit :class:`ArchIR`; cost models, the torch builder and exporters consume it. Build one with
:class:`GraphBuilder`::

    b = GraphBuilder((1, 28, 28))
    x = b.add(Conv2d(8, kernel=3, stride=2, act="relu"), b.input)
    x = b.add(GlobalPool(), x)
    ir = b.build(b.add(Dense(10), x))
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from tinyevo.errors import IRValidationError
from tinyevo.ir.ops import Input, Op, Shape


@dataclass(frozen=True)
class Node:
    """One op applied to the outputs of earlier nodes (``inputs`` are node names)."""

    name: str
    op: Op
    inputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class ArchIR:
    """A network as a topologically ordered tuple of nodes with exactly one input and one output.

    Construction validates the graph: unique names, inputs that refer to earlier nodes, shape-consistent ops,
    one :class:`Input` node first, and every node contributing to the output. Invalid graphs raise
    :class:`~tinyevo.errors.IRValidationError`.
    """

    nodes: tuple[Node, ...]
    output: str
    shapes: dict[str, Shape] = field(init=False, compare=False, repr=False)
    _index: dict[str, Node] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.nodes:
            raise IRValidationError("an architecture needs at least an input node")
        if not isinstance(self.nodes[0].op, Input):
            raise IRValidationError("the first node must be the Input")
        shapes: dict[str, Shape] = {}
        index: dict[str, Node] = {}
        for node in self.nodes:
            if node.name in index:
                raise IRValidationError(f"duplicate node name {node.name!r}")
            if isinstance(node.op, Input) and node is not self.nodes[0]:
                raise IRValidationError(f"node {node.name!r}: only one Input node is allowed")
            for src in node.inputs:
                if src not in shapes:
                    raise IRValidationError(
                        f"node {node.name!r} reads {src!r}, which is not an earlier node (graphs must be acyclic "
                        "and listed in topological order)"
                    )
            try:
                shape = node.op.infer_shape(tuple(shapes[s] for s in node.inputs))
            except IRValidationError as exc:
                raise IRValidationError(f"node {node.name!r} ({node.op.describe()}): {exc}") from None
            if min(shape) < 1:
                raise IRValidationError(f"node {node.name!r} produces an empty tensor {shape}")
            shapes[node.name] = shape
            index[node.name] = node
        if self.output not in index:
            raise IRValidationError(f"output {self.output!r} is not a node")
        live = self._ancestors(index)
        dead = [n.name for n in self.nodes if n.name not in live]
        if dead:
            raise IRValidationError(f"nodes do not reach the output: {', '.join(dead[:5])}")
        object.__setattr__(self, "shapes", shapes)
        object.__setattr__(self, "_index", index)

    def _ancestors(self, index: dict[str, Node]) -> set[str]:
        seen: set[str] = set()
        stack = [self.output]
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            stack.extend(index[name].inputs)
        return seen

    # --- queries -----------------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def node(self, name: str) -> Node:
        return self._index[name]

    @property
    def input_name(self) -> str:
        return self.nodes[0].name

    @property
    def input_shape(self) -> Shape:
        return self.shapes[self.nodes[0].name]

    @property
    def output_shape(self) -> Shape:
        return self.shapes[self.output]

    def in_shapes(self, node: Node) -> tuple[Shape, ...]:
        return tuple(self.shapes[s] for s in node.inputs)

    def consumers(self) -> dict[str, tuple[str, ...]]:
        """Map from each node name to the names of the nodes that read it (in topological order)."""
        out: dict[str, list[str]] = {n.name: [] for n in self.nodes}
        for n in self.nodes:
            for s in n.inputs:
                out[s].append(n.name)
        return {k: tuple(v) for k, v in out.items()}

    def summary(self) -> str:
        """One line per node: name, op, inputs and output shape."""
        lines = []
        for n in self.nodes:
            shape = "x".join(map(str, self.shapes[n.name]))
            src = ",".join(n.inputs) or "-"
            lines.append(f"{n.name:<14} {n.op.describe():<24} <- {src:<20} {shape}")
        return "\n".join(lines)


class GraphBuilder:
    """Incremental constructor of an :class:`ArchIR` with shape checks at every step."""

    def __init__(self, input_shape: Sequence[int], *, input_name: str = "input") -> None:
        self._nodes: list[Node] = []
        self._shapes: dict[str, Shape] = {}
        self._counts: dict[str, int] = {}
        self.input = self._append(Node(input_name, Input(tuple(int(v) for v in input_shape))))  # type: ignore[arg-type]

    def _append(self, node: Node) -> str:
        if node.name in self._shapes:
            raise IRValidationError(f"duplicate node name {node.name!r}")
        for s in node.inputs:
            if s not in self._shapes:
                raise IRValidationError(f"node {node.name!r} reads unknown node {s!r}")
        try:
            shape = node.op.infer_shape(tuple(self._shapes[s] for s in node.inputs))
        except IRValidationError as exc:
            raise IRValidationError(f"node {node.name!r} ({node.op.describe()}): {exc}") from None
        self._nodes.append(node)
        self._shapes[node.name] = shape
        return node.name

    def add(self, op: Op, *inputs: str, name: str | None = None) -> str:
        """Append ``op`` reading ``inputs``; returns the new node's name (auto-named ``<kind>_<i>``)."""
        if name is None:
            i = self._counts.get(op.kind, 0)
            self._counts[op.kind] = i + 1
            name = f"{op.kind}_{i}"
        return self._append(Node(name, op, tuple(inputs)))

    def shape(self, name: str) -> Shape:
        return self._shapes[name]

    def build(self, output: str) -> ArchIR:
        """Finish the graph at ``output``; nodes that do not reach it are dropped."""
        keep: set[str] = set()
        stack = [output]
        index = {n.name: n for n in self._nodes}
        if output not in index:
            raise IRValidationError(f"output {output!r} is not a node")
        while stack:
            name = stack.pop()
            if name not in keep:
                keep.add(name)
                stack.extend(index[name].inputs)
        keep.add(self.input)
        return ArchIR(tuple(n for n in self._nodes if n.name in keep), output)
