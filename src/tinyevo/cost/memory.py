"""Activation memory (peak SRAM) of a deployed graph, by pluggable planners.

A planner takes a :class:`~tinyevo.cost.lowering.DeployGraph` and returns a :class:`MemoryPlan`: the execution
order, the peak, the tensors live at the peak and a per-kernel profile. Three are registered in :data:`PLANNERS`:

``optimal`` (default)
    The minimum over all valid execution orders of the DAG of the maximum total bytes of live activation
    tensors (no fragmentation: the number MCUNet reports). Exact: the graph is first cut at every tensor that is
    the only one alive between what comes before it and what comes after it (the order cannot mix across a cut,
    so the peak is the max over segments); each segment is then solved by a memoised search over the sets of
    executed kernels (the downsets of the DAG) with exact pruning. A segment whose search would visit more than
    ``max_states`` sets (or that has more than ``max_segment_ops`` kernels) falls back to a heuristic: the better
    of the given order and a greedy list schedule (always run the ready kernel with the smallest footprint),
    reported with ``exact=False`` and a proven ``lower_bound`` (the largest single-kernel footprint: inputs +
    output), so the optimum lies in ``[lower_bound, peak_bytes]``.
``sequential``
    Live bytes in the given (IR) order, without reordering: what a runtime executing the graph as written needs
    without fragmentation.
``tflm``
    TFLite Micro's ``GreedyMemoryPlanner`` in the given order: buffers (tensors, and each kernel's CMSIS-NN
    scratch buffer, alive only during that kernel) sorted by size, largest first, each placed at the lowest
    arena offset that does not overlap, in address and lifetime, a buffer placed before; sizes rounded up to 16
    bytes (``kBufferAlignment``). The peak is the arena high-water mark, which includes fragmentation. TFLM never
    writes in place, so the in-place option does not apply.

Live-memory model shared by ``optimal`` and ``sequential``: while a kernel runs, every tensor produced and still
needed later is live, plus its inputs and its output. The network input is live from the start until its last
reader runs; the network output stays live to the end. ``count_input`` / ``count_output`` choose whether those
two buffers count: MCUNet (and the TFLM arena) count both, muNAS counts neither. With ``inplace`` a depthwise
conv or add may write its output over an input that dies at it and is at least as large, so the output needs no
new bytes (MCUNetV2 / TinyEngine in-place depthwise).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from tinyevo.cost.lowering import DeployGraph
from tinyevo.registry import Registry


@dataclass(frozen=True)
class OpMemory:
    """Activation bytes live while one kernel runs, and which tensors they are."""

    op: str
    live_bytes: int
    tensors: tuple[str, ...]


@dataclass(frozen=True)
class MemoryPlan:
    """The outcome of a planner: peak bytes, the order, what is live at the peak and the per-kernel profile."""

    planner: str
    peak_bytes: int
    order: tuple[str, ...]  # kernel (= output tensor) names in execution order
    peak_op: str | None  # the kernel running at the peak (None for a graph without kernels)
    live_at_peak: tuple[tuple[str, int], ...]  # (tensor, counted bytes), largest first
    profile: tuple[OpMemory, ...]  # one entry per kernel, in execution order
    count_input: bool = True
    count_output: bool = True
    inplace: bool = False
    exact: bool = True  # peak_bytes is the optimum of this planner's objective
    lower_bound: int = 0  # a proven lower bound of the optimal live-bytes peak
    offsets: Mapping[str, int] | None = None  # arena offset of each buffer (arena planners only)


@runtime_checkable
class Planner(Protocol):
    """Plans activation memory for a deployed graph."""

    name: str

    def plan(self, graph: DeployGraph, *, count_input: bool = True, count_output: bool = True,
             inplace: bool = False) -> MemoryPlan:
        ...


PLANNERS: Registry[Planner] = Registry("memory planner")


class _Problem:
    """Integer-indexed view of a deploy graph for the live-memory model."""

    def __init__(self, graph: DeployGraph, *, count_input: bool, count_output: bool, inplace: bool) -> None:
        self.graph = graph
        names = [graph.input] + [op.name for op in graph.ops]
        self.tensor_names = names
        tid = {n: i for i, n in enumerate(names)}
        self.size = [graph.tensors[n].nbytes for n in names]
        if not count_input:
            self.size[0] = 0
        self.out_t = tid[graph.output]
        if not count_output:
            self.size[self.out_t] = 0
        self.n = len(graph.ops)
        # op j produces tensor j + 1; its distinct input tensors:
        self.ins = [tuple(dict.fromkeys(tid[t] for t in op.inputs)) for op in graph.ops]
        self.consumers: list[list[int]] = [[] for _ in names]
        for j, ins in enumerate(self.ins):
            for t in ins:
                self.consumers[t].append(j)
        self.inplace = [inplace and op.inplace_capable for op in graph.ops]

    def step(self, live_t: set[int], done: set[int], j: int) -> tuple[int, int, list[int], int]:
        """(bytes while op j runs, bytes after it, tensors that die at it, in-place target or -1)."""
        cur = sum(self.size[t] for t in live_t)
        out = self.size[j + 1]
        dying = [t for t in self.ins[j] if t != self.out_t and all(c in done or c == j for c in self.consumers[t])]
        target = self._inplace_target(j, dying)
        during = cur + (max(0, out - self.size[target]) if target >= 0 else out)
        after = cur + out - sum(self.size[t] for t in dying)
        return during, after, dying, target

    def _inplace_target(self, j: int, dying: Sequence[int]) -> int:
        if not self.inplace[j]:
            return -1
        out = self.size[j + 1]
        best = -1
        for t in dying:
            if self.size[t] >= out and (best < 0 or self.size[t] > self.size[best]):
                best = t
        return best

    def simulate(self, order: Sequence[int]) -> tuple[int, list[tuple[int, list[int], int]]]:
        """Peak and per-op (bytes, live tensors, in-place target or -1) of executing ops in ``order``."""
        live_t = {0}
        done: set[int] = set()
        profile: list[tuple[int, list[int], int]] = []
        peak = self.size[0]
        for j in order:
            during, _after, dying, target = self.step(live_t, done, j)
            profile.append((during, sorted(live_t | {j + 1}), target))
            peak = max(peak, during)
            live_t.difference_update(dying)
            live_t.add(j + 1)
            done.add(j)
        return peak, profile

    def footprint_bound(self, ops: Sequence[int]) -> int:
        """Largest bytes any single op needs on its own (inputs + output, in place where allowed)."""
        best = 0
        for j in ops:
            ins = sum(self.size[t] for t in self.ins[j])
            out = self.size[j + 1]
            if self.inplace[j] and any(self.size[t] >= out for t in self.ins[j] if t != self.out_t):
                out = 0
            best = max(best, ins + out)
        return best


def _make_plan(name: str, prob: _Problem, order: Sequence[int], *, exact: bool, lower_bound: int,
               count_input: bool, count_output: bool, inplace: bool) -> MemoryPlan:
    peak, profile = prob.simulate(order)
    names = prob.tensor_names
    ops = prob.graph.ops
    entries = tuple(
        OpMemory(ops[j].name, b, tuple(names[t] for t in ts if prob.size[t]))
        for j, (b, ts, _tgt) in zip(order, profile, strict=True)
    )
    peak_op = None
    live: tuple[tuple[str, int], ...] = ((names[0], prob.size[0]),) if prob.size[0] else ()
    if order:
        k = max(range(len(entries)), key=lambda i: entries[i].live_bytes)
        peak_op = entries[k].op
        j = order[k]
        _b, ts, target = profile[k]
        counted = {t: prob.size[t] for t in ts}
        if target >= 0:  # the output shares the overwritten input's bytes
            counted[j + 1] = max(0, prob.size[j + 1] - prob.size[target])
        live = tuple(sorted(((names[t], b) for t, b in counted.items() if prob.size[t]), key=lambda x: -x[1]))
    return MemoryPlan(
        planner=name, peak_bytes=peak, order=tuple(ops[j].name for j in order), peak_op=peak_op,
        live_at_peak=live, profile=entries, count_input=count_input, count_output=count_output,
        inplace=inplace, exact=exact, lower_bound=lower_bound,
    )


@PLANNERS.register("sequential", help="live bytes in the IR's order (no reordering, no fragmentation)")
class SequentialPlanner:
    """Live activation bytes when kernels run in the graph's given order."""

    name = "sequential"

    def plan(self, graph: DeployGraph, *, count_input: bool = True, count_output: bool = True,
             inplace: bool = False) -> MemoryPlan:
        prob = _Problem(graph, count_input=count_input, count_output=count_output, inplace=inplace)
        order = list(range(prob.n))
        return _make_plan(self.name, prob, order, exact=True, lower_bound=prob.footprint_bound(order),
                          count_input=count_input, count_output=count_output, inplace=inplace)


class _TooManyStates(Exception):
    pass


@PLANNERS.register("optimal", help="minimum peak over all execution orders (exact search; MCUNet's number)")
class OptimalPlanner:
    """Minimum over execution orders of the peak live activation bytes (see the module docstring)."""

    name = "optimal"

    def __init__(self, *, max_states: int = 200_000, max_segment_ops: int = 400) -> None:
        self.max_states = max_states
        self.max_segment_ops = max_segment_ops

    def plan(self, graph: DeployGraph, *, count_input: bool = True, count_output: bool = True,
             inplace: bool = False) -> MemoryPlan:
        prob = _Problem(graph, count_input=count_input, count_output=count_output, inplace=inplace)
        order: list[int] = []
        exact = True
        bound = 0
        for seg in _segments(prob):
            seg_order = None
            if len(seg) <= self.max_segment_ops:
                try:
                    seg_order = _solve_segment(prob, seg, self.max_states)
                except _TooManyStates:
                    seg_order = None
            if seg_order is None:
                exact = False
                seg_order = _heuristic_segment(prob, seg)
                bound = max(bound, prob.footprint_bound(seg))
            order.extend(seg_order)
        if exact:
            bound = prob.simulate(order)[0]
        return _make_plan(self.name, prob, order, exact=exact, lower_bound=bound,
                          count_input=count_input, count_output=count_output, inplace=inplace)


def _segments(prob: _Problem) -> list[list[int]]:
    """Split the op sequence after every op whose output is the only tensor crossing the prefix boundary."""
    remaining = [len(c) for c in prob.consumers]
    open_count = 1  # tensors produced and still awaited (the input at first)
    segs: list[list[int]] = []
    cur: list[int] = []
    for j in range(prob.n):
        cur.append(j)
        for t in prob.ins[j]:
            remaining[t] -= 1
            if remaining[t] == 0 and t != prob.out_t:
                open_count -= 1
        if prob.consumers[j + 1] or j + 1 == prob.out_t:
            open_count += 1
        if open_count == 1 and (prob.consumers[j + 1] or j + 1 == prob.out_t):
            segs.append(cur)
            cur = []
    if cur:
        segs.append(cur)
    return segs


def _solve_segment(prob: _Problem, seg: Sequence[int], max_states: int) -> list[int]:
    """Exact minimum-peak order of one segment (memoised search over executed-op sets, as bitmasks)."""
    m = len(seg)
    local = {j: i for i, j in enumerate(seg)}
    size = prob.size
    out_size = [size[j + 1] for j in seg]
    pred = [0] * m
    for i, j in enumerate(seg):
        for t in prob.ins[j]:
            if t - 1 in local:
                pred[i] |= 1 << local[t - 1]
    # For every input tensor of every op: the bitmask of its readers inside the segment; tensors read after the
    # segment (the next cut) or the network output never die here.
    readers: dict[int, int] = {}
    pinned: set[int] = {prob.out_t}
    for t in {t for j in seg for t in prob.ins[j]} | {j + 1 for j in seg}:
        mask = 0
        for c in prob.consumers[t]:
            if c in local:
                mask |= 1 << local[c]
            else:
                pinned.add(t)
        readers[t] = mask
    ins = [prob.ins[j] for j in seg]
    inplace = prob.inplace
    full = (1 << m) - 1
    memo: dict[int, tuple[int, int]] = {}

    def best(done: int, cur: int) -> int:
        if done == full:
            return 0
        hit = memo.get(done)
        if hit is not None:
            return hit[0]
        if len(memo) >= max_states:
            raise _TooManyStates
        res = 1 << 62
        choice = -1
        for i in range(m):
            bit = 1 << i
            if done & bit or pred[i] & ~done:
                continue
            after_done = done | bit
            freed = 0
            tgt = 0
            j = seg[i]
            for t in ins[i]:
                if t not in pinned and readers[t] & ~after_done == 0:
                    freed += size[t]
                    if inplace[j] and size[t] >= out_size[i] and size[t] > tgt:
                        tgt = size[t]
            during = cur + (max(0, out_size[i] - tgt) if inplace[j] and tgt else out_size[i])
            if during >= res:
                continue
            sub = best(after_done, cur + out_size[i] - freed)
            val = during if during > sub else sub
            if val < res:
                res, choice = val, i
        memo[done] = (res, choice)
        return res

    start = sum(size[t] for t in _live_before(prob, seg))
    best(0, start)
    order: list[int] = []
    done = 0
    while done != full:
        i = memo[done][1]
        order.append(seg[i])
        done |= 1 << i
    return order


def _live_before(prob: _Problem, seg: Sequence[int]) -> set[int]:
    """Tensors live when the segment starts: produced before it and read inside it (or the output)."""
    first = seg[0]
    return {t for j in seg for t in prob.ins[j] if t <= first}


def _heuristic_segment(prob: _Problem, seg: Sequence[int]) -> list[int]:
    """The better of the given order and a greedy smallest-footprint-first list schedule."""
    given = list(seg)
    greedy = _greedy_order(prob, seg)
    return greedy if _segment_peak(prob, greedy) < _segment_peak(prob, given) else given


def _segment_peak(prob: _Problem, order: Sequence[int]) -> int:
    live = _live_before(prob, order)
    done = set(range(order[0])) if order else set()
    peak = 0
    for j in order:
        during, _after, dying, target = prob.step(live, done, j)
        peak = max(peak, during)
        live.difference_update(dying)
        live.add(j + 1)
        if target >= 0:
            live.discard(target)
        done.add(j)
    return peak


def _greedy_order(prob: _Problem, seg: Sequence[int]) -> list[int]:
    in_seg = set(seg)
    waiting = {j: sum(1 for t in prob.ins[j] if t - 1 in in_seg) for j in seg}
    ready = [j for j in seg if waiting[j] == 0]
    live = _live_before(prob, seg)
    done = set(range(seg[0]))
    order: list[int] = []
    while ready:
        scored = []
        for j in ready:
            during, after, _d, _t = prob.step(live, done, j)
            scored.append((after, during, j))
        _a, _d, j = min(scored)
        ready.remove(j)
        _during, _after, dying, target = prob.step(live, done, j)
        live.difference_update(dying)
        live.add(j + 1)
        if target >= 0:
            live.discard(target)
        done.add(j)
        order.append(j)
        for c in prob.consumers[j + 1]:
            if c in in_seg:
                waiting[c] -= 1
                if waiting[c] == 0:
                    ready.append(c)
    return order


@PLANNERS.register("tflm", help="TFLite Micro GreedyMemoryPlanner arena in the IR's order (with fragmentation)")
class TFLMPlanner:
    """TFLite Micro's greedy arena planner (see the module docstring)."""

    name = "tflm"

    def __init__(self, *, alignment: int = 16, scratch: bool = True) -> None:
        self.alignment = alignment
        self.scratch = scratch

    def plan(self, graph: DeployGraph, *, count_input: bool = True, count_output: bool = True,
             inplace: bool = False) -> MemoryPlan:
        prob = _Problem(graph, count_input=count_input, count_output=count_output, inplace=False)
        n = prob.n
        last_op = max(n - 1, 0)
        # buffers: (name, size, first op, last op)
        buffers: list[tuple[str, int, int, int]] = []
        for t, name in enumerate(prob.tensor_names):
            if prob.size[t] == 0:
                continue
            first = 0 if t == 0 else t - 1
            readers = prob.consumers[t]
            last = last_op if t == prob.out_t else max(readers, default=first)
            buffers.append((name, self._align(prob.size[t]), first, last))
        if self.scratch:
            for j, op in enumerate(graph.ops):
                if op.scratch_bytes:
                    buffers.append((f"{op.name}:scratch", self._align(op.scratch_bytes), j, j))
        placed: list[tuple[int, int, int, int]] = []  # (offset, size, first, last)
        offsets: dict[str, int] = {}
        for name, size, first, last in sorted(buffers, key=lambda b: -b[1]):  # stable: ties keep tensor order
            overlapping = sorted((o, s) for o, s, f, la in placed if f <= last and first <= la)
            offset = 0
            for o, s in overlapping:
                if offset + size <= o:
                    break
                offset = max(offset, o + s)
            placed.append((offset, size, first, last))
            offsets[name] = offset
        arena = max((o + s for o, s, _f, _l in placed), default=0)
        # per-op profile: buffers alive during each op
        profile: list[OpMemory] = []
        for j, op in enumerate(graph.ops):
            alive = [(b[0], b[1]) for b in buffers if b[2] <= j <= b[3]]
            profile.append(OpMemory(op.name, sum(s for _n, s in alive), tuple(nm for nm, _s in alive)))
        peak_op = None
        live: tuple[tuple[str, int], ...] = ()
        if profile:
            k = max(range(len(profile)), key=lambda i: profile[i].live_bytes)
            peak_op = profile[k].op
            live = tuple(sorted(((b[0], b[1]) for b in buffers if b[2] <= k <= b[3]), key=lambda x: -x[1]))
        return MemoryPlan(
            planner=self.name, peak_bytes=arena, order=tuple(op.name for op in graph.ops), peak_op=peak_op,
            live_at_peak=live, profile=tuple(profile), count_input=count_input, count_output=count_output,
            inplace=False, exact=True, lower_bound=max((p.live_bytes for p in profile), default=arena),
            offsets=offsets,
        )

    def _align(self, n: int) -> int:
        a = self.alignment
        return -(-n // a) * a if a > 1 else n


def get_planner(planner: str | Planner) -> Planner:
    """A planner instance from a registered name (or the planner itself)."""
    if isinstance(planner, str):
        return PLANNERS.create(planner)
    return planner
