"""IR clean-up before deployment: drop nodes that compute nothing.

Search spaces such as the NB201 cell contain ``Identity`` skips and ``Zero`` ("none") edges. Exported as they
are, a zero edge becomes a constant tensor the size of an activation in flash plus an ADD in the graph, and an
identity costs nothing but clutter. :func:`strip_passthrough` removes both while keeping every other node's name,
so a state dict of the original network loads into the stripped one (see :func:`tinyevo.deploy.model.load_weights`).
"""

from __future__ import annotations

from tinyevo.ir import Act, Add, ArchIR, Identity, Node, Zero


def strip_passthrough(ir: ArchIR) -> ArchIR:
    """An equivalent IR without ``Identity`` nodes and without ``Zero`` terms in sums.

    * ``Identity`` nodes are removed and their readers read the identity's input.
    * ``Zero`` inputs of an ``Add`` are dropped; an ``Add`` left with one input becomes that input (or an ``Act``
      node of the same name when the sum had an activation); an ``Add`` of zeros only is itself zero.
    * A ``Zero`` read by any other op (e.g. a concat) is kept, since it changes the shape of the result.
    * Nodes that no longer reach the output are dropped.
    """
    alias: dict[str, str] = {}
    zeros: dict[str, Node] = {}  # pending zero nodes, emitted only when a non-sum op needs them
    out: list[Node] = []
    emitted: set[str] = set()

    def resolve(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    def need(name: str) -> str:
        name = resolve(name)
        if name in zeros and name not in emitted:
            out.append(zeros[name])
            emitted.add(name)
        return name

    for node in ir.nodes:
        op = node.op
        if node is ir.nodes[0]:
            out.append(node)
            emitted.add(node.name)
        elif isinstance(op, Identity):
            alias[node.name] = resolve(node.inputs[0])
        elif isinstance(op, Zero):
            zeros[node.name] = Node(node.name, op, (resolve(node.inputs[0]),))
        elif isinstance(op, Add):
            terms = [resolve(s) for s in node.inputs]
            live = [need(s) for s in terms if s not in zeros]
            if not live:
                zeros[node.name] = Node(node.name, Zero(), (_source_of_zero(zeros, terms[0]),))
            elif len(live) == 1 and op.act == "none":
                alias[node.name] = live[0]
            elif len(live) == 1:
                out.append(Node(node.name, Act(op.act), (live[0],)))
                emitted.add(node.name)
            else:
                out.append(Node(node.name, op, tuple(live)))
                emitted.add(node.name)
        else:
            out.append(Node(node.name, op, tuple(need(s) for s in node.inputs)))
            emitted.add(node.name)
    output = need(ir.output)
    return ArchIR(_live(out, output), output)


def _source_of_zero(zeros: dict[str, Node], name: str) -> str:
    """The non-zero tensor a chain of zero nodes starts from (its shape is the zero's shape)."""
    while name in zeros:
        name = zeros[name].inputs[0]
    return name


def _live(nodes: list[Node], output: str) -> tuple[Node, ...]:
    index = {n.name: n for n in nodes}
    keep: set[str] = set()
    stack = [output]
    while stack:
        name = stack.pop()
        if name not in keep:
            keep.add(name)
            stack.extend(index[name].inputs)
    keep.add(nodes[0].name)
    return tuple(n for n in nodes if n.name in keep)
