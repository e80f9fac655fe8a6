"""The memory plan of tinyevo's native C runtime (:mod:`tinyevo.codegen`): planner ``native``.

The generated C runs the kernels in the order the ``optimal`` planner finds, on one arena, with every buffer
at an offset this module assigns. The arena it prices (``peak_bytes``) is exactly
``TINYEVO_MODEL_ARENA_BYTES`` of the generated model: the code generator calls :meth:`NativePlanner.layout` on
the graph read from the exported ``.tflite``, the search calls :meth:`NativePlanner.plan` on the lowered IR,
and both see the same graph.

* **Order**: the graph's kernels are first put in a canonical topological order (ready kernels sorted by a
  structural signature: kernel type, output shape and the signatures of its inputs), so that the plan does not
  depend on the order in which an exporter happened to list them; then the ``optimal`` planner's exact search
  (:class:`~tinyevo.cost.memory.OptimalPlanner`) picks the execution order with in-place kernels allowed.
* **In place** (TinyEngine's trick): a kernel may write its output over an input that dies at it and is at
  least as large. Element-wise kernels (``ADD``, ``RELU``, ``RELU6``, ``RESHAPE``, ``ZEROS_LIKE``,
  ``QUANTIZE``) need nothing more; a ``DEPTHWISE_CONV_2D`` with depth multiplier 1 runs channel by channel and needs a scratch
  buffer of one input channel plane (``H x W`` bytes), so it is only eligible when that saves bytes (output
  larger than the plane).
* **Requantised pool outputs**: a ``FULLY_CONNECTED`` reading a max / average pool may read it through an
  int8 -> int8 ``QUANTIZE`` in a ``.tflite`` (when the dense layer's input observer chose other parameters
  than the pool's, which shares its input's: it depends on the calibration data; tinyevo's exporter now shares
  the pool's parameters, models converted elsewhere may still have it), wrapped in a
  layout ``TRANSPOSE`` pair that the code generator folds away (:func:`tinyevo.codegen.generate.
  fold_layout_transposes`; for one channel a ``RESHAPE`` comes first instead). The lowered IR has no such
  kernel: the planner lays out the graph without them (a ``QUANTIZE``, and a ``RESHAPE`` read only by one,
  whose input dies at it) and then runs each in place over its input, right after that input's kernel, so
  the arena is the same with or without them.
* **Placement**: in-place chains share one buffer; buffers (sizes rounded up to ``alignment`` bytes) get the
  lowest offset that does not overlap, in address and lifetime, a buffer placed before, in four orders
  (largest first, longest-lived first, first used first, largest bytes x lifetime first); the smallest arena
  wins. No other scratch: the native kernels need none.

The network input and output live in the arena too (``count_input`` / ``count_output`` as for the other
planners; the C arena always holds both, so only the defaults give ``TINYEVO_MODEL_ARENA_BYTES``).
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Mapping
from dataclasses import dataclass, replace

from tinyevo.cost.lowering import DeployGraph, DeployOp
from tinyevo.cost.memory import (
    PLANNERS,
    MemoryPlan,
    _heuristic_segment,
    _Problem,
    _segment_peak,
    _segments,
    _solve_segment,
)

#: Kernels the native runtime may run in place (output over a dying input of at least the output's size).
NATIVE_INPLACE: frozenset[str] = frozenset(
    {"DEPTHWISE_CONV_2D", "ADD", "RELU", "RELU6", "RESHAPE", "ZEROS_LIKE", "QUANTIZE"})



def inplace_scratch(graph: DeployGraph, op: DeployOp) -> int:
    """Bytes of scratch ``op`` needs when it runs in place (a depthwise conv: one input channel plane)."""
    if op.tflite == "DEPTHWISE_CONV_2D":
        _c, h, w = graph.tensors[op.inputs[0]].shape
        return h * w
    return 0


def inplace_eligible(graph: DeployGraph, op: DeployOp) -> bool:
    """Whether the native runtime may run ``op`` in place (see the module docstring)."""
    if op.tflite not in NATIVE_INPLACE:
        return False
    out = graph.tensors[op.name]
    if op.tflite == "DEPTHWISE_CONV_2D":
        src = graph.tensors[op.inputs[0]]
        return src.shape[0] == out.shape[0] and out.nbytes > inplace_scratch(graph, op)
    return True


def canonical_graph(graph: DeployGraph) -> DeployGraph:
    """``graph`` with its kernels in a canonical topological order (see the module docstring)."""
    sig: dict[str, bytes] = {graph.input: _digest(("input", graph.tensors[graph.input].shape))}
    producer = {op.name: j for j, op in enumerate(graph.ops)}
    for op in graph.ops:  # the given order is topological
        ins = [sig[t] for t in op.inputs]
        if op.tflite in ("ADD", "MUL"):
            ins.sort()
        sig[op.name] = _digest((op.tflite, graph.tensors[op.name].shape, tuple(ins)))
    waiting = {j: len({t for t in op.inputs if t in producer}) for j, op in enumerate(graph.ops)}
    readers: dict[str, list[int]] = {}
    for j, op in enumerate(graph.ops):
        for t in dict.fromkeys(op.inputs):
            readers.setdefault(t, []).append(j)
    ready = [(sig[op.name], j) for j, op in enumerate(graph.ops) if waiting[j] == 0]
    heapq.heapify(ready)
    order: list[DeployOp] = []
    while ready:
        _s, j = heapq.heappop(ready)
        op = graph.ops[j]
        order.append(op)
        for r in readers.get(op.name, ()):
            waiting[r] -= 1
            if waiting[r] == 0:
                heapq.heappush(ready, (sig[graph.ops[r].name], r))
    return replace(graph, ops=tuple(order))


def _digest(value: object) -> bytes:
    return hashlib.blake2b(repr(value).encode(), digest_size=8).digest()


@dataclass(frozen=True)
class NativeLayout:
    """Where everything lives in the native runtime's arena.

    ``order``: kernel (= output tensor) names in execution order; ``offsets`` / ``sizes``: each tensor's arena
    offset and bytes (tensors of an in-place chain share an offset); ``inplace``: kernel -> the input tensor
    it overwrites; ``scratch``: kernel -> (offset, bytes) of its scratch buffer; ``arena_bytes``: the arena;
    ``live_bytes``: bytes of buffers alive while each kernel runs (scratch and alignment included).
    """

    order: tuple[str, ...]
    offsets: Mapping[str, int]
    sizes: Mapping[str, int]
    inplace: Mapping[str, str]
    scratch: Mapping[str, tuple[int, int]]
    arena_bytes: int
    live_bytes: tuple[int, ...]
    exact_order: bool
    graph: DeployGraph


@PLANNERS.register("native", help="tinyevo's native C runtime: optimal order, in-place kernels, one arena")
class NativePlanner:
    """The arena of the native C runtime (see the module docstring). Always plans in-place kernels: the
    ``inplace`` argument of :meth:`plan` does not apply."""

    name = "native"

    def __init__(self, *, alignment: int = 4, max_states: int = 200_000, max_segment_ops: int = 400) -> None:
        self.alignment = alignment
        self.max_states = max_states
        self.max_segment_ops = max_segment_ops

    def plan(self, graph: DeployGraph, *, count_input: bool = True, count_output: bool = True,
             inplace: bool = True) -> MemoryPlan:
        lay = self.layout(graph, count_input=count_input, count_output=count_output)
        g = lay.graph
        k = max(range(len(lay.order)), key=lambda i: lay.live_bytes[i]) if lay.order else -1
        live: tuple[tuple[str, int], ...] = ()
        if k >= 0:
            alive = self._alive(lay, k)
            live = tuple(sorted(alive.items(), key=lambda x: -x[1]))
        offsets = dict(lay.offsets)
        offsets.update({f"{op}:scratch": off for op, (off, _n) in lay.scratch.items()})
        return MemoryPlan(
            planner=self.name, peak_bytes=lay.arena_bytes, order=lay.order,
            peak_op=lay.order[k] if k >= 0 else None, live_at_peak=live, live_bytes=lay.live_bytes,
            count_input=count_input, count_output=count_output, inplace=True, exact=lay.exact_order,
            lower_bound=max(lay.live_bytes, default=g.tensors[g.input].nbytes if count_input else 0),
            offsets=offsets,
        )

    @staticmethod
    def _alive(lay: NativeLayout, k: int) -> dict[str, int]:
        spans = _spans(lay)
        return {t: n for t, (f, la, n) in spans.items() if f <= k <= la and n}

    def layout(self, graph: DeployGraph, *, count_input: bool = True,
               count_output: bool = True) -> NativeLayout:
        """Order, in-place decisions and arena offsets of ``graph`` (see the module docstring)."""
        core, hidden = _contract_requantise(graph)
        lay = self._layout(core, count_input=count_input, count_output=count_output)
        return _expand(lay, graph, hidden) if hidden else lay

    def _layout(self, graph: DeployGraph, *, count_input: bool, count_output: bool) -> NativeLayout:
        g = canonical_graph(graph)
        prob = _Problem(g, count_input=count_input, count_output=count_output, inplace=True)
        prob.inplace = [inplace_eligible(g, op) for op in g.ops]
        order: list[int] = []
        exact = True
        for seg in _segments(prob):
            seg_order = None
            if all(prev + 1 in prob.ins[j] for prev, j in zip(seg, seg[1:])):
                seg_order = list(seg)
            elif len(seg) <= self.max_segment_ops:
                seg_order = _solve_segment(prob, seg, self.max_states)
            exact = exact and seg_order is not None
            order.extend(seg_order or _heuristic_segment(prob, seg))
        return self._place(g, prob, order, exact)

    def _align(self, n: int) -> int:
        a = self.alignment
        return -(-n // a) * a if a > 1 else n

    def _place(self, g: DeployGraph, prob: _Problem, order: list[int], exact: bool) -> NativeLayout:
        names = prob.tensor_names
        size = prob.size
        n = len(order)
        pos = {j: p for p, j in enumerate(order)}
        first = [0] * len(names)
        last = [0] * len(names)
        for t in range(len(names)):
            first[t] = 0 if t == 0 else pos[t - 1]
            readers = [pos[c] for c in prob.consumers[t]]
            last[t] = n - 1 if t == prob.out_t else max(readers, default=first[t])
        # in-place decisions in execution order; a chain of in-place kernels shares its root's buffer
        root = list(range(len(names)))
        inplace: dict[str, str] = {}
        scratch_need: dict[int, int] = {}
        remaining = [len(c) for c in prob.consumers]
        for p, j in enumerate(order):
            dying = []
            for t in prob.ins[j]:
                remaining[t] -= 1
                if remaining[t] == 0 and t != prob.out_t:
                    dying.append(t)
            out = size[j + 1]
            if prob.inplace[j] and out > 0:
                cands = [t for t in dying if size[t] >= out and size[t] > 0]
                if cands:
                    t = min(cands, key=lambda c: (-size[c], pos.get(c - 1, -1)))
                    root[j + 1] = root[t]
                    inplace[names[j + 1]] = names[t]
                    extra = inplace_scratch(g, g.ops[j])
                    if extra:
                        scratch_need[j] = extra
        # buffers: (key, bytes, first, last)
        groups: dict[int, list[int]] = {}
        for t in range(len(names)):
            if size[t] > 0:
                groups.setdefault(root[t], []).append(t)
        buffers: list[tuple[str, int, int, int]] = []
        for r, members in groups.items():
            nbytes = self._align(max(size[t] for t in members))
            buffers.append((names[r], nbytes, min(first[t] for t in members), max(last[t] for t in members)))
        for j, extra in scratch_need.items():
            buffers.append((f"{names[j + 1]}:scratch", self._align(extra), pos[j], pos[j]))
        best: dict[str, int] | None = None
        best_arena = 0
        for key in _PLACEMENT_ORDERS:
            offsets = _first_fit(sorted(buffers, key=key))
            arena = max((offsets[b[0]] + b[1] for b in buffers), default=0)
            if best is None or arena < best_arena:
                best, best_arena = offsets, arena
        assert best is not None
        tensor_offsets = {names[t]: best[names[root[t]]] for t in range(len(names)) if size[t] > 0}
        sizes = {names[t]: size[t] for t in range(len(names)) if size[t] > 0}
        scratch = {names[j + 1]: (best[f"{names[j + 1]}:scratch"], self._align(extra))
                   for j, extra in scratch_need.items()}
        live = [0] * n
        for _key, nbytes, f, la in buffers:
            for p in range(f, la + 1):
                live[p] += nbytes
        return NativeLayout(order=tuple(g.ops[j].name for j in order), offsets=tensor_offsets, sizes=sizes,
                            inplace=inplace, scratch=scratch, arena_bytes=best_arena, live_bytes=tuple(live),
                            exact_order=exact, graph=g)


def _contract_requantise(graph: DeployGraph) -> tuple[DeployGraph, dict[str, str]]:
    """``graph`` without the in-place requantisations the lowered IR does not have (see the module docstring):
    every ``QUANTIZE`` -- and a ``RESHAPE`` read only by such a ``QUANTIZE`` -- whose input has no other
    reader, is not the network input and has its size; its readers read that input instead. Also returns
    hidden kernel -> the tensor whose buffer it writes over (the root of its chain)."""
    readers: dict[str, int] = {}
    for op in graph.ops:
        for t in op.inputs:
            readers[t] = readers.get(t, 0) + 1
    by_name = {op.name: op for op in graph.ops}

    def transparent(op: DeployOp) -> bool:
        return (len(op.inputs) == 1 and op.name != graph.output and op.inputs[0] != graph.input
                and readers.get(op.inputs[0], 0) == 1
                and graph.tensors[op.inputs[0]].nbytes == graph.tensors[op.name].nbytes)

    hide: set[str] = set()
    for op in graph.ops:
        if op.tflite == "QUANTIZE" and transparent(op):
            hide.add(op.name)
            src = by_name.get(op.inputs[0])
            while src is not None and src.tflite == "RESHAPE" and transparent(src):
                hide.add(src.name)
                src = by_name.get(src.inputs[0])
    if not hide:
        return graph, {}
    root: dict[str, str] = {}
    for op in graph.ops:  # topological: an input's root is known first
        if op.name in hide:
            root[op.name] = root.get(op.inputs[0], op.inputs[0])
    ops = tuple(op._replace(inputs=tuple(root.get(t, t) for t in op.inputs)) for op in graph.ops
                if op.name not in hide)
    tensors = {k: v for k, v in graph.tensors.items() if k not in hide}
    return replace(graph, ops=ops, tensors=tensors), root


def _expand(lay: NativeLayout, graph: DeployGraph, hidden: Mapping[str, str]) -> NativeLayout:
    """``lay`` (of the contracted graph) with the hidden kernels put back: each right after the kernel
    writing its root, in place over its input, at the root's offset."""
    after: dict[str, list[DeployOp]] = {}
    for op in graph.ops:
        if op.name in hidden:
            after.setdefault(hidden[op.name], []).append(op)
    order: list[str] = []
    live: list[int] = []
    offsets, sizes, inplace = dict(lay.offsets), dict(lay.sizes), dict(lay.inplace)
    for name, nbytes in zip(lay.order, lay.live_bytes, strict=True):
        order.append(name)
        live.append(nbytes)
        for op in after.get(name, ()):
            order.append(op.name)
            live.append(nbytes)
            offsets[op.name] = offsets[hidden[op.name]]
            sizes[op.name] = graph.tensors[op.name].nbytes
            inplace[op.name] = op.inputs[0]
    return replace(lay, order=tuple(order), offsets=offsets, sizes=sizes, inplace=inplace,
                   live_bytes=tuple(live), graph=canonical_graph(graph))


_Buffer = tuple[str, int, int, int]  # (key, bytes, first, last position)
_PLACEMENT_ORDERS: tuple = (  # orders in which buffers are placed; the smallest arena wins (ties: the first)
    lambda b: (-b[1], b[2], b[0]),  # largest first
    lambda b: (b[2] - b[3], -b[1], b[2], b[0]),  # longest-lived first
    lambda b: (b[2], -b[1], b[0]),  # first used first
    lambda b: (-b[1] * (b[3] - b[2] + 1), b[2], b[0]),  # largest bytes x lifetime first
)


def _first_fit(buffers: list[tuple[str, int, int, int]]) -> dict[str, int]:
    """Each buffer at the lowest offset not overlapping, in address and lifetime, one placed before it."""
    placed: list[tuple[int, int, int, int]] = []
    offsets: dict[str, int] = {}
    for key, nbytes, f, la in buffers:
        offset = 0
        for o, s in sorted((o, s) for o, s, f2, l2 in placed if f2 <= la and f <= l2):
            if offset + nbytes <= o:
                break
            offset = max(offset, o + s)
        placed.append((offset, nbytes, f, la))
        offsets[key] = offset
    return offsets


def _spans(lay: NativeLayout) -> dict[str, tuple[int, int, int]]:
    """tensor (and scratch) -> (first, last position, bytes), for the live-at-peak listing."""
    g = lay.graph
    pos = {name: p for p, name in enumerate(lay.order)}
    n = len(lay.order)
    out: dict[str, tuple[int, int, int]] = {}
    for t, nbytes in lay.sizes.items():
        f = pos.get(t, 0)
        readers = [pos[op.name] for op in g.ops if t in op.inputs]
        la = n - 1 if t == g.output else max(readers, default=f)
        if t in lay.inplace:  # shares the overwritten input's bytes while its kernel runs
            f += 1
        out[t] = (f, la, nbytes)
    for op, (_o, nbytes) in lay.scratch.items():
        out[f"{op}:scratch"] = (pos[op], pos[op], nbytes)
    return out
