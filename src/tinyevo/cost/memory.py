"""Activation memory (peak SRAM) of a deployed graph, by pluggable planners.

A planner takes a :class:`~tinyevo.cost.lowering.DeployGraph` and returns a :class:`MemoryPlan`: the execution
order, the peak, the tensors live at the peak and a per-kernel profile. Registered in :data:`PLANNERS`:

``tflm-mcu`` (default: the runtime tinyevo deploys with)
    The whole TFLite-Micro arena a 32-bit MCU needs: the ``tflm`` head below plus TFLM's persistent tail for
    4-byte pointers (or more, when a kernel's Prepare temporaries or the planning step need more room than the
    planned head: small models) (:mod:`tinyevo.cost.tflm_tail`, built from TFLM's data structures: interpreter and
    allocator objects, eval tensors, node structs, builtin options, kernel ``OpData`` and per-channel
    multiplier / shift arrays, the input / output tensors and their quantisation). ``peak_bytes`` is
    head + tail, ``persistent_bytes`` the tail. With 8-byte pointers the same tail model equals, byte for
    byte, what the 64-bit host's TFLM allocates (``benchmarks/tflm_tail_check.py``).
``optimal``
    The minimum over all valid execution orders of the DAG of the maximum total bytes of live activation
    tensors (no fragmentation: the number MCUNet reports). Exact: the graph is first cut at every tensor that
    is the only one alive between what comes before it and what comes after it (the order cannot mix across a
    cut, so the peak is the max over segments); a segment in which every kernel reads the one before has a
    single order; any other is solved by a memoised search over the sets of executed kernels (the downsets of
    the DAG) with exact pruning, cached by the segment's structure and relative tensor sizes (repeated cells
    and blocks are solved once). A segment whose search would visit more than ``max_states`` sets (or that has
    more than ``max_segment_ops`` kernels) falls back to a heuristic: the better of the given order and a
    greedy list schedule (always run the ready kernel that leaves the fewest live bytes), reported with
    ``exact=False`` and a proven ``lower_bound`` (the exact segments' optima and, for the others, the largest
    single-kernel footprint: inputs + output), so the optimum lies in ``[lower_bound, peak_bytes]``.
``sequential``
    Live bytes in the given (IR) order, without reordering: what a runtime executing the graph as written
    needs without fragmentation.
``tflm`` (reference kernels) and ``tflm-cmsis`` (CMSIS-NN kernels)
    TFLite Micro's ``GreedyMemoryPlanner`` in the given order (TFLM runs the ops as stored, no reordering).
    Buffers are added in tensor-index order, i.e. production order (the network input first), then each
    kernel's scratch buffers (alive only during that kernel); TFLM fills its sort array from the back and
    bubble-sorts it by size, largest first, so among equal (aligned) sizes the buffer added *later* is placed
    first. Each goes at the lowest arena offset that does not overlap, in address and lifetime, a buffer placed
    before; sizes are rounded up to 16 bytes (``kBufferAlignment``). Lifetimes run from the producing kernel
    to the last reader; the input lives from kernel 0, the output until the last kernel. The peak is the arena
    high-water mark (the "head" of the arena, i.e. activations and scratch, fragmentation included; the
    persistent tail is not part of it). Scratch depends on the kernels: the reference kernels (what the Python
    ``tflite-micro`` interpreter runs) only ask for it in int8 ``MEAN`` / ``SUM``; CMSIS-NN also in convs,
    depthwise convs and average pools (see :func:`~tinyevo.cost.lowering.scratch_buffers`). TFLM never writes
    in place, so the in-place option does not apply. Measured against the Python TFLM on 20 random networks
    (``benchmarks/tflm_vs_estimate.py``): the replay of this rule on the real flatbuffers equals TFLM's arena
    head for all 20.

Live-memory model shared by ``optimal`` and ``sequential``: while a kernel runs, every tensor produced and
still needed later is live, plus its inputs and its output. The network input is live from the start until its
last reader runs; the network output stays live to the end. ``count_input`` / ``count_output`` choose whether
those two buffers count: MCUNet (and the TFLM arena) count both, muNAS counts neither. With ``inplace`` a
depthwise conv or add may write its output over an input that dies at it and is at least as large, so the
output needs no new bytes (MCUNetV2 / TinyEngine in-place depthwise).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import NamedTuple, Protocol, runtime_checkable

from tinyevo.cost.lowering import KERNELS, DeployGraph, scratch_buffers
from tinyevo.errors import ConfigError
from tinyevo.registry import Registry


class OpMemory(NamedTuple):
    """Activation bytes live while one kernel runs."""

    op: str
    live_bytes: int


@dataclass(frozen=True)
class MemoryPlan:
    """A planner's result: peak bytes, the order, what is live at the peak and the per-kernel profile."""

    planner: str
    peak_bytes: int
    order: tuple[str, ...]  # kernel (= output tensor) names in execution order
    peak_op: str | None  # the kernel running at the peak (None for a graph without kernels)
    live_at_peak: tuple[tuple[str, int], ...]  # (tensor, counted bytes), largest first
    live_bytes: tuple[int, ...]  # bytes live while each kernel of ``order`` runs
    count_input: bool = True
    count_output: bool = True
    inplace: bool = False
    exact: bool = True  # peak_bytes is the optimum of this planner's objective
    lower_bound: int = 0  # a proven lower bound of the optimal live-bytes peak
    offsets: Mapping[str, int] | None = None  # arena offset of each buffer (arena planners only)
    persistent_bytes: int = 0  # the runtime's persistent arena part included in peak_bytes (tflm-mcu: the tail)

    @property
    def head_bytes(self) -> int:
        """The non-persistent part of ``peak_bytes``: the planned activations and scratch (for ``tflm-mcu`` the
        head side at its largest, which for small models is a kernel's Prepare or the planning step)."""
        return self.peak_bytes - self.persistent_bytes

    @property
    def profile(self) -> tuple[OpMemory, ...]:
        """Per-kernel memory profile: (kernel, live bytes while it runs), in execution order."""
        return tuple(OpMemory(op, b) for op, b in zip(self.order, self.live_bytes, strict=True))


@runtime_checkable
class Planner(Protocol):
    """Plans activation memory for a deployed graph."""

    name: str

    def plan(self, graph: DeployGraph, *, count_input: bool = True, count_output: bool = True,
             inplace: bool = False) -> MemoryPlan:
        ...


PLANNERS: Registry[Planner] = Registry("memory planner")


class _Problem:
    """Integer-indexed view of a deploy graph for the live-memory model.

    Tensor 0 is the network input, tensor ``j + 1`` the output of op ``j``.
    """

    def __init__(self, graph: DeployGraph, *, count_input: bool, count_output: bool, inplace: bool) -> None:
        self.graph = graph
        ops = graph.ops
        names = [graph.input]
        names.extend(op.name for op in ops)
        self.tensor_names = names
        tid = {n: i for i, n in enumerate(names)}
        tensors = graph.tensors
        self.size = [tensors[n].nbytes for n in names]
        if not count_input:
            self.size[0] = 0
        self.out_t = tid[graph.output]
        if not count_output:
            self.size[self.out_t] = 0
        self.n = len(ops)
        self.ins: list[tuple[int, ...]] = []
        consumers: list[list[int]] = [[] for _ in names]
        for j, op in enumerate(ops):
            if len(op.inputs) == 1:
                ins: tuple[int, ...] = (tid[op.inputs[0]],)
            else:
                ins = tuple(dict.fromkeys(tid[t] for t in op.inputs))
            self.ins.append(ins)
            for t in ins:
                consumers[t].append(j)
        self.consumers = consumers
        self.inplace = [inplace and op.inplace_capable for op in ops]

    def step(self, live_t: set[int], done: set[int], j: int) -> tuple[int, int, list[int], int]:
        """(bytes while op j runs, bytes after it, tensors that die at it, in-place target or -1)."""
        cur = sum(self.size[t] for t in live_t)
        out = self.size[j + 1]
        dying = [
            t for t in self.ins[j]
            if t != self.out_t and all(c in done or c == j for c in self.consumers[t])
        ]
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

    def simulate(self, order: Sequence[int]) -> tuple[int, list[int], int, dict[int, int]]:
        """Execute ops in ``order``.

        Returns the peak, the bytes while each op runs, the position of the peak op and the counted bytes of
        each tensor live at the peak.
        """
        size = self.size
        out_t = self.out_t
        inplace = self.inplace
        remaining = [len(c) for c in self.consumers]
        live_t = {0}
        cur = size[0]
        peak = -1
        peak_pos = -1
        peak_live: dict[int, int] = {0: size[0]}
        during_all: list[int] = []
        for pos, j in enumerate(order):
            out = size[j + 1]
            dying = []
            for t in self.ins[j]:
                remaining[t] -= 1
                if remaining[t] == 0 and t != out_t:
                    dying.append(t)
            target = self._inplace_target(j, dying) if inplace[j] else -1
            during = cur + (max(0, out - size[target]) if target >= 0 else out)
            during_all.append(during)
            live_t.add(j + 1)
            if during > peak:
                peak, peak_pos = during, pos
                peak_live = {t: size[t] for t in live_t}
                if target >= 0:  # the output shares the overwritten input's bytes
                    peak_live[j + 1] = max(0, out - size[target])
            for t in dying:
                live_t.discard(t)
                cur -= size[t]
            cur += out
        if not order:
            peak = size[0]
        return peak, during_all, peak_pos, peak_live

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


def _make_plan(name: str, prob: _Problem, order: Sequence[int], *, exact: bool, lower_bound: int | None,
               count_input: bool, count_output: bool, inplace: bool) -> MemoryPlan:
    peak, during, pos, peak_live = prob.simulate(order)
    names = prob.tensor_names
    ops = prob.graph.ops
    live = tuple(sorted(((names[t], b) for t, b in peak_live.items() if b), key=lambda x: -x[1]))
    return MemoryPlan(
        planner=name, peak_bytes=peak, order=tuple(ops[j].name for j in order),
        peak_op=ops[order[pos]].name if order else None, live_at_peak=live,
        live_bytes=tuple(during),
        count_input=count_input, count_output=count_output, inplace=inplace, exact=exact,
        lower_bound=peak if lower_bound is None else lower_bound,
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
    """Minimum over execution orders of the peak live activation bytes (see the module docstring).

    Solved segments are cached by their structure and relative tensor sizes, so repeated cells and blocks
    (within one network and across the networks of a search) are solved once.
    """

    name = "optimal"

    def __init__(self, *, max_states: int = 200_000, max_segment_ops: int = 400) -> None:
        self.max_states = max_states
        self.max_segment_ops = max_segment_ops

    def plan(self, graph: DeployGraph, *, count_input: bool = True, count_output: bool = True,
             inplace: bool = False) -> MemoryPlan:
        prob = _Problem(graph, count_input=count_input, count_output=count_output, inplace=inplace)
        order: list[int] = []
        solved: list[tuple[list[int], bool]] = []
        for seg in _segments(prob):
            seg_order = None
            if all(prev + 1 in prob.ins[j] for prev, j in zip(seg, seg[1:])):
                seg_order = list(seg)  # each op reads the one before: the only valid order
            elif len(seg) <= self.max_segment_ops:
                seg_order = _solve_segment(prob, seg, self.max_states)
            solved.append((seg_order or _heuristic_segment(prob, seg), seg_order is not None))
            order.extend(solved[-1][0])
        exact = all(ok for _o, ok in solved)
        bound = None
        if not exact:  # optimum >= each exact segment's optimum and each op's own footprint
            bound = max(_segment_peak(prob, o) if ok else prob.footprint_bound(o) for o, ok in solved)
        return _make_plan(self.name, prob, order, exact=exact, lower_bound=bound,
                          count_input=count_input, count_output=count_output, inplace=inplace)


def _segments(prob: _Problem) -> list[list[int]]:
    """Split the op sequence after every op whose output is the only tensor crossing the prefix boundary."""
    remaining = [len(c) for c in prob.consumers]
    out_t = prob.out_t
    open_count = 1  # tensors produced and still awaited (the input at first)
    segs: list[list[int]] = []
    cur: list[int] = []
    for j in range(prob.n):
        cur.append(j)
        for t in prob.ins[j]:
            remaining[t] -= 1
            if remaining[t] == 0 and t != out_t:
                open_count -= 1
        if remaining[j + 1] or j + 1 == out_t:
            open_count += 1
            if open_count == 1:
                segs.append(cur)
                cur = []
    if cur:
        segs.append(cur)
    return segs


def _solve_segment(prob: _Problem, seg: Sequence[int], max_states: int) -> list[int] | None:
    """Exact minimum-peak order of one segment, or ``None`` when the search is too large.

    A segment is a run of ops ``a .. b-1`` after a cut: everything it reads from before is the one cut tensor
    ``a``. It is described by a canonical key (inputs in local numbering, tensor sizes divided by their gcd,
    which outputs stay live after the segment, in-place flags) and solved by :func:`_solve_canonical`, which
    is cached: repeated cells and blocks are solved once.
    """
    a, b = seg[0], seg[-1] + 1
    ins_local = tuple(tuple(t - a for t in prob.ins[j]) for j in range(a, b))
    if any(t < 0 for row in ins_local for t in row):  # pragma: no cover - segments are cut at single tensors
        return None
    sizes = prob.size[a:b + 1]
    g = math.gcd(*sizes) or 1
    out_t = prob.out_t
    consumers = prob.consumers
    pinned = tuple(t == out_t or bool(consumers[t]) and consumers[t][-1] >= b for t in range(a + 1, b + 1))
    key = (ins_local, tuple(x // g for x in sizes), pinned, tuple(prob.inplace[a:b]), max_states)
    found = _solve_canonical(key)
    return None if found is None else [a + i for i in found]


@lru_cache(maxsize=8192)
def _solve_canonical(key: tuple) -> tuple[int, ...] | None:  # type: ignore[type-arg]
    """Memoised search over executed-op sets (bitmasks) of a canonical segment (see :func:`_solve_segment`).

    Tensor 0 is the cut tensor live at the start, tensor ``i + 1`` the output of op ``i``. Exact: a branch is
    skipped only when its op alone already needs at least the best peak found from the same state.
    """
    ins_local, sizes, pinned, inplace, max_states = key
    m = len(ins_local)
    pred = [0] * m
    readers: dict[int, int] = {}
    for i, row in enumerate(ins_local):
        for t in row:
            if t > 0:
                pred[i] |= 1 << (t - 1)
            readers[t] = readers.get(t, 0) | (1 << i)
    # per op: (size, readers mask, may die here) of each input
    inputs = [tuple((sizes[t], readers[t], not (t > 0 and pinned[t - 1])) for t in row) for row in ins_local]
    out_size = sizes[1:]
    full = (1 << m) - 1
    memo: dict[int, int] = {}  # done-mask -> best peak * 1024 + choice (ints: no garbage-collector traffic)
    bits = [1 << i for i in range(m)]

    def best(done: int, cur: int) -> int:
        if done == full:
            return 0
        hit = memo.get(done)
        if hit is not None:
            return hit >> 10
        if len(memo) >= max_states:
            raise _TooManyStates
        res = 1 << 62
        choice = -1
        for i in range(m):
            bit = bits[i]
            if done & bit or pred[i] & ~done:
                continue
            after_done = done | bit
            freed = 0
            tgt = 0
            for sz, rmask, can_die in inputs[i]:
                if can_die and rmask & ~after_done == 0:
                    freed += sz
                    if sz > tgt:
                        tgt = sz
            out = out_size[i]
            # in place, the output is written over a dying input at least as large: no new bytes
            during = cur if inplace[i] and tgt >= out else cur + out
            if during >= res:
                continue
            sub = best(after_done, cur + out - freed)
            val = during if during > sub else sub
            if val < res:
                res, choice = val, i
        memo[done] = (res << 10) | choice
        return res

    if m >= 1024:  # pragma: no cover - callers cap segments at far fewer ops
        return None
    try:
        best(0, sizes[0])
    except _TooManyStates:
        return None
    order: list[int] = []
    done = 0
    while done != full:
        i = memo[done] & 1023
        order.append(i)
        done |= bits[i]
    return tuple(order)


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


@PLANNERS.register("tflm", help="TFLite Micro's greedy arena planner in the IR's order, reference kernels")
class TFLMPlanner:
    """TFLite Micro's greedy arena planner (see the module docstring).

    ``kernels`` selects the scratch buffers: ``"reference"`` (TFLM's reference kernels, as in the Python
    interpreter) or ``"cmsis-nn"`` (the optimised Arm kernels of a Cortex-M build). ``scratch=False`` drops
    scratch buffers altogether.
    """

    name = "tflm"

    def __init__(self, *, alignment: int = 16, scratch: bool = True, kernels: str = "reference") -> None:
        if kernels not in KERNELS:
            raise ConfigError(f"unknown kernels {kernels!r}; expected one of {', '.join(KERNELS)}")
        self.alignment = alignment
        self.scratch = scratch
        self.kernels = kernels

    def plan(self, graph: DeployGraph, *, count_input: bool = True, count_output: bool = True,
             inplace: bool = False) -> MemoryPlan:
        prob = _Problem(graph, count_input=count_input, count_output=count_output, inplace=False)
        n = prob.n
        last_op = max(n - 1, 0)
        # buffers in the order TFLM adds them: (name, size, first op, last op)
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
                for k, size in enumerate(scratch_buffers(graph, op, kernels=self.kernels)):
                    buffers.append((f"{op.name}:scratch{k or ''}", self._align(size), j, j))
        placed: list[tuple[int, int, int, int]] = []  # (offset, size, first, last)
        offsets: dict[str, int] = {}
        # largest first; equal sizes: the buffer added later first (TFLM's reversed, bubble-sorted array)
        by_size = sorted(range(len(buffers)), key=lambda i: (-buffers[i][1], -i))
        for name, size, first, last in (buffers[i] for i in by_size):
            overlapping = sorted((o, s) for o, s, f, la in placed if f <= last and first <= la)
            offset = 0
            for o, s in overlapping:
                if offset + size <= o:
                    break
                offset = max(offset, o + s)
            placed.append((offset, size, first, last))
            offsets[name] = offset
        arena = max((o + s for o, s, _f, _l in placed), default=0)
        # per-op profile: bytes of the buffers alive during each op
        live_bytes = [sum(b[1] for b in buffers if b[2] <= j <= b[3]) for j in range(n)]
        peak_op = None
        live: tuple[tuple[str, int], ...] = ()
        if live_bytes:
            k = max(range(n), key=lambda i: live_bytes[i])
            peak_op = graph.ops[k].name
            live = tuple(sorted(((b[0], b[1]) for b in buffers if b[2] <= k <= b[3]), key=lambda x: -x[1]))
        return MemoryPlan(
            planner=self.name, peak_bytes=arena, order=tuple(op.name for op in graph.ops), peak_op=peak_op,
            live_at_peak=live, live_bytes=tuple(live_bytes), count_input=count_input,
            count_output=count_output, inplace=False, exact=True, lower_bound=max(live_bytes, default=arena),
            offsets=offsets,
        )

    def _align(self, n: int) -> int:
        a = self.alignment
        return -(-n // a) * a if a > 1 else n


@PLANNERS.register("tflm-cmsis", help="TFLite Micro's greedy arena planner with CMSIS-NN kernel scratch")
class TFLMCmsisPlanner(TFLMPlanner):
    """:class:`TFLMPlanner` with the CMSIS-NN kernels' scratch buffers (a Cortex-M build of TFLM)."""

    name = "tflm-cmsis"

    def __init__(self, *, alignment: int = 16, scratch: bool = True) -> None:
        super().__init__(alignment=alignment, scratch=scratch, kernels="cmsis-nn")


@PLANNERS.register("tflm-mcu", help="the whole TFLite Micro arena on a 32-bit MCU: greedy head + persistent tail")
class TFLMArenaPlanner(TFLMPlanner):
    """The whole TFLite Micro arena: :class:`TFLMPlanner`'s head plus the persistent tail of
    :mod:`tinyevo.cost.tflm_tail` for ``pointer_size``-byte pointers (4: a Cortex-M, the default; 8: a 64-bit
    host), or more when the kernels' ``Prepare`` temporaries or the planning step need more room than the
    planned head (:func:`~tinyevo.cost.tflm_tail.tflm_arena_required`: small models). ``persistent_bytes`` is
    the tail. ``recording`` / ``compression`` select the host Python interpreter's allocator and build (see
    :func:`~tinyevo.cost.tflm_tail.tflm_tail`); an MCU build has neither.
    """

    name = "tflm-mcu"

    def __init__(self, *, alignment: int = 16, scratch: bool = True, kernels: str = "reference",
                 pointer_size: int = 4, recording: bool = False, compression: bool = False) -> None:
        super().__init__(alignment=alignment, scratch=scratch, kernels=kernels)
        self.pointer_size = pointer_size
        self.recording = recording
        self.compression = compression

    def plan(self, graph: DeployGraph, *, count_input: bool = True, count_output: bool = True,
             inplace: bool = False) -> MemoryPlan:
        from tinyevo.cost.tflm_tail import tail_spec_from_graph, tflm_arena_required, tflm_tail_bytes

        head = super().plan(graph, count_input=count_input, count_output=count_output, inplace=inplace)
        spec = tail_spec_from_graph(graph)
        options = {"pointer_size": self.pointer_size, "recording": self.recording, "compression": self.compression}
        tail = tflm_tail_bytes(spec, **options)
        # head + tail, or more when a kernel's Prepare or the planning step needs more room on the head side
        arena = tflm_arena_required(spec, head.peak_bytes, **options)
        return replace(head, planner=self.name, peak_bytes=arena, persistent_bytes=tail)


def default_planner(sram_convention: str) -> str:
    """The planner of a new run: ``tflm-mcu`` (the whole 32-bit TFLite-Micro arena), or ``optimal`` under the
    ``munas`` convention, which is an activations-only measure (μNAS's peak memory without the network input and
    output buffers) that no runtime's arena realises."""
    return "optimal" if sram_convention == "munas" else "tflm-mcu"


def check_planner_convention(planner: str, sram_convention: str) -> None:
    """``tflm-mcu`` prices a whole TFLM arena, which always holds the input and output tensors: it cannot leave
    them out, so the ``munas`` convention does not apply to it."""
    if planner == "tflm-mcu" and sram_convention == "munas":
        raise ConfigError("--sram-convention munas (activations without the network input and output) does not "
                          "apply to the tflm-mcu arena, which always holds them; use --planner optimal (the "
                          "default with munas), sequential or tflm")


PLANNER_CAPTIONS: dict[str, str] = {
    "tflm-mcu": "TFLM arena, 32-bit",
    "tflm": "TFLM head: activations + scratch",
    "tflm-cmsis": "TFLM head, CMSIS-NN: activations + scratch",
    "optimal": "activations, optimal order",
    "sequential": "activations, IR order",
    "native": "native C runtime arena",
}
"""What a planner's ``peak_bytes`` is, for captions and column headers ("SRAM (TFLM arena, 32-bit)")."""


def sram_caption(planner: str | Planner) -> str:
    """``"SRAM (<what the planner prices>)"``, e.g. ``"SRAM (TFLM arena, 32-bit)"`` for ``tflm-mcu``."""
    name = planner if isinstance(planner, str) else getattr(planner, "name", str(planner))
    if isinstance(planner, TFLMArenaPlanner) and planner.pointer_size != 4:
        return f"SRAM (TFLM arena, {8 * planner.pointer_size}-bit)"
    return f"SRAM ({PLANNER_CAPTIONS.get(name, name)})"


def tflm_persistent_bytes(graph: DeployGraph, *, pointer_size: int = 4, recording: bool = False,
                          compression: bool = False) -> int:
    """TFLM's persistent ("tail") arena part for ``graph``, from TFLM's data structures
    (:func:`tinyevo.cost.tflm_tail.tflm_tail` on :func:`~tinyevo.cost.tflm_tail.tail_spec_from_graph`):
    ``pointer_size=4`` for a 32-bit MCU; ``pointer_size=8, recording=True, compression=True`` for the Python
    ``tflite-micro`` interpreter on a 64-bit host. Exact when the lowered graph has the exported flatbuffer's
    kernels and tensor count (the model on the real flatbuffer is exact: ``benchmarks/tflm_tail_check.py``).
    """
    from tinyevo.cost.tflm_tail import tail_spec_from_graph, tflm_tail_bytes

    return tflm_tail_bytes(tail_spec_from_graph(graph), pointer_size=pointer_size, recording=recording,
                           compression=compression)


def get_planner(planner: str | Planner) -> Planner:
    """A planner instance from a registered name (or the planner itself)."""
    if isinstance(planner, str):
        return PLANNERS.create(planner)
    return planner
