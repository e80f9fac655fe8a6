"""Peak SRAM planners on hand-computed graphs, and the optimal planner against brute force."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyevo.cost import (
    PLANNERS,
    CostModel,
    MCUCostModel,
    OptimalPlanner,
    Planner,
    SequentialPlanner,
    TFLMPlanner,
    clear_caches,
    estimate_cost,
    lower,
)
from tinyevo.cost.memory import _Problem
from tinyevo.errors import ConfigError
from tinyevo.ir import Add, ArchIR, Concat, Conv2d, Dense, DepthwiseConv2d, GlobalPool, GraphBuilder, Pool2d


def chain3() -> ArchIR:
    """input 1x8x8 (64 B) -> conv c4 (256 B) -> conv c8 /2 (128 B) -> global pool (8 B) -> dense 10 (10 B)."""
    b = GraphBuilder((1, 8, 8))
    x = b.add(Conv2d(4, kernel=3), b.input, name="c1")
    x = b.add(Conv2d(8, kernel=3, stride=2), x, name="c2")
    x = b.add(GlobalPool(), x, name="gp")
    return b.build(b.add(Dense(10), x, name="fc"))


def residual(*, skip_last: bool) -> ArchIR:
    """x (4x8x8 = 256 B) -> A, B (256 B each) -> C /2 (64 B); skip S = avgpool /2 (64 B); add (64 B).

    Built with the skip after the main branch (``skip_last``) or before it; the IR order is the naive order.
    """
    b = GraphBuilder((4, 8, 8))
    if not skip_last:
        s = b.add(Pool2d("avg", kernel=2, stride=2), b.input, name="S")
    a = b.add(Conv2d(4, kernel=3), b.input, name="A")
    bb = b.add(Conv2d(4, kernel=3), a, name="B")
    c = b.add(Conv2d(4, kernel=3, stride=2), bb, name="C")
    if skip_last:
        s = b.add(Pool2d("avg", kernel=2, stride=2), b.input, name="S")
    return b.build(b.add(Add(), c, s, name="add"))


def two_branch() -> ArchIR:
    """x (1x8x8 = 64 B) -> P1, P2 (8x8x8 = 512 B each) -> Q1, Q2 (4x4x4 = 64 B each) -> concat (128 B).

    The IR lists both big convs first (breadth-first), the naive order.
    """
    b = GraphBuilder((1, 8, 8))
    p1 = b.add(Conv2d(8, kernel=3), b.input, name="P1")
    p2 = b.add(Conv2d(8, kernel=3), b.input, name="P2")
    q1 = b.add(Conv2d(4, kernel=3, stride=2), p1, name="Q1")
    q2 = b.add(Conv2d(4, kernel=3, stride=2), p2, name="Q2")
    return b.build(b.add(Concat(), q1, q2, name="cat"))


def test_chain_peak_both_conventions() -> None:
    ir = chain3()
    # while c2 runs: c1 (256) + c2 (128) = 384; while c1 runs: input 64 + c1 256 = 320
    plan = OptimalPlanner().plan(lower(ir))
    assert plan.peak_bytes == 384
    assert plan.peak_op == "c2"
    assert dict(plan.live_at_peak) == {"c1": 256, "c2": 128}
    assert [m.live_bytes for m in plan.profile] == [320, 384, 136, 18]
    assert plan.exact
    big = GraphBuilder((3, 16, 16))  # 768 B input, conv c4 (1024 B), conv c8 /2 (512 B), global pool (8 B)
    x = big.add(Conv2d(4, kernel=3), big.input, name="c1")
    x = big.add(Conv2d(8, kernel=3, stride=2), x, name="c2")
    ir2 = big.build(big.add(GlobalPool(), x, name="gp"))
    # the activation planners (the default, tflm-mcu, adds TFLM's persistent tail: test_tflm_tail.py)
    assert estimate_cost(ir2, planner="optimal").peak_sram_bytes == 768 + 1024  # MCUNet: input counted
    assert estimate_cost(ir2, planner="optimal", count_input=False,
                         count_output=False).peak_sram_bytes == 1024 + 512  # muNAS
    assert estimate_cost(ir2, planner="optimal", count_input=True,
                         count_output=False).peak_sram_bytes == 768 + 1024


def test_residual_order_changes_peak() -> None:
    naive = residual(skip_last=True)
    # IR order A, B, C, S: while B runs x + A + B = 768 B are live
    assert SequentialPlanner().plan(lower(naive)).peak_bytes == 768
    # computing the skip first frees x early: max(x + S + A, S + A + B) = 576
    plan = OptimalPlanner().plan(lower(naive))
    assert plan.peak_bytes == 576
    assert plan.order.index("S") < plan.order.index("B")  # x must die before B runs
    good = residual(skip_last=False)
    assert SequentialPlanner().plan(lower(good)).peak_bytes == 576


def test_two_branch_optimal_beats_naive() -> None:
    ir = two_branch()
    seq = SequentialPlanner().plan(lower(ir))
    opt = OptimalPlanner().plan(lower(ir))
    assert seq.peak_bytes == 64 + 512 + 512  # while P2 runs: x, P1, P2
    assert opt.peak_bytes == 64 + 512 + 64  # depth first: x + P1 + Q1, then x + Q1 + P2, then Q1 + P2 + Q2
    assert opt.order.index("Q1") < opt.order.index("P2") or opt.order.index("Q2") < opt.order.index("P1")
    assert estimate_cost(ir, planner="optimal").peak_sram_bytes == opt.peak_bytes


def test_inplace_depthwise() -> None:
    b = GraphBuilder((8, 8, 8))  # 512 B
    x = b.add(DepthwiseConv2d(kernel=3), b.input, name="dw")  # 512 B
    ir = b.build(b.add(Conv2d(2, kernel=1), x, name="pw"))  # 128 B
    assert estimate_cost(ir, planner="optimal").peak_sram_bytes == 1024
    # in place the depthwise output overwrites the input: 512, then dw + pw = 640
    assert estimate_cost(ir, planner="optimal", inplace=True).peak_sram_bytes == 640
    assert estimate_cost(ir, inplace=True, planner="sequential").peak_sram_bytes == 640


def test_tflm_arena_hand_computed() -> None:
    graph = lower(chain3())
    plan = TFLMPlanner(scratch=False).plan(graph)
    # sizes (16-byte aligned) and lifetimes:
    # c1 256 [0,1], c2 128 [1,2], input 64 [0,0], gp 16 [2,3], fc 16 [3,3]; added in tensor order (input, c1,
    # c2, gp, fc); equal sizes: the later one first (TFLM's reversed bubble sort), so fc goes at 0 before gp,
    # which then overlaps c2 [256, 384) and fc [0, 16) in time -> 16
    assert plan.offsets == {"c1": 0, "c2": 256, "input": 256, "gp": 16, "fc": 0}
    assert plan.peak_bytes == 384
    reference = TFLMPlanner().plan(graph)
    # reference kernels: only MEAN asks for scratch (align16(4 x 8) = 32, 16, 16 during op 2): placed at 0, 32,
    # 48 (alive with c2 only); gp then overlaps c2 and the scratch -> 64
    assert reference.offsets is not None and reference.offsets["gp"] == 64
    assert reference.offsets["gp:scratch"] == 0 and reference.peak_bytes == 384
    assert estimate_cost(chain3(), planner="tflm").peak_sram_bytes == 384
    cmsis = TFLMPlanner(kernels="cmsis-nn").plan(graph)
    # CMSIS-NN scratch: c1 2*9*2 = 36 -> 48, c2 2*36*2 = 144, gp 4*8 = 32; c2:scratch (alive with c1 at op 1)
    # goes above c1, c2 above both: 256 + 144 + 128 = 528
    assert cmsis.offsets is not None and cmsis.offsets["c2:scratch"] == 256 and cmsis.offsets["c2"] == 400
    assert cmsis.peak_bytes == 528
    assert estimate_cost(chain3(), planner="tflm-cmsis").peak_sram_bytes == 528
    with pytest.raises(ConfigError):
        TFLMPlanner(kernels="fast")


def test_tflm_fragmentation_is_at_least_live_bytes() -> None:
    for ir in (residual(skip_last=True), two_branch(), chain3()):
        graph = lower(ir)
        seq = SequentialPlanner().plan(graph)
        arena = TFLMPlanner(scratch=False, alignment=1).plan(graph)
        assert arena.peak_bytes >= seq.peak_bytes


def test_heuristic_fallback_reports_bounds() -> None:
    ir = residual(skip_last=True)
    plan = OptimalPlanner(max_states=1).plan(lower(ir))
    assert not plan.exact
    assert plan.lower_bound <= 576 <= plan.peak_bytes
    assert plan.peak_bytes <= 768  # never worse than the given order


def test_registry_has_the_planners() -> None:
    assert {"optimal", "sequential", "tflm", "tflm-cmsis"} <= set(PLANNERS.names())


# --- property: the optimal planner equals brute force over every topological order --------------------------

@st.composite
def small_dags(draw: st.DrawFn) -> ArchIR:
    b = GraphBuilder((draw(st.integers(1, 4)), 4, 4))
    names = [b.input]
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["conv", "conv", "dw", "add", "concat"]))
        src = draw(st.sampled_from(names))
        if kind == "conv":
            names.append(b.add(Conv2d(draw(st.integers(1, 6)), kernel=1), src))
        elif kind == "dw":
            names.append(b.add(DepthwiseConv2d(kernel=3), src))
        else:
            same = [n for n in names if b.shape(n) == b.shape(src) and n != src]
            if kind == "concat":
                same = [n for n in names if n != src]
            if not same:
                continue
            other = draw(st.sampled_from(same))
            names.append(b.add(Add() if kind == "add" else Concat(), src, other))
    sinks = [n for n in names[1:]] or [b.input]
    if len(sinks) == 1:
        return b.build(b.add(Conv2d(1, kernel=1), sinks[0]))
    return b.build(b.add(Concat(), *sinks))


def brute_force_peak(ir: ArchIR, *, inplace: bool, count_io: bool) -> int:
    graph = lower(ir)
    prob = _Problem(graph, count_input=count_io, count_output=count_io, inplace=inplace)
    best = None
    for perm in itertools.permutations(range(prob.n)):
        pos = {j: i for i, j in enumerate(perm)}
        if any(pos[t - 1] > pos[j] for j in perm for t in prob.ins[j] if t > 0):
            continue
        peak = prob.simulate(perm)[0]
        best = peak if best is None else min(best, peak)
    assert best is not None
    return best


@settings(max_examples=40, deadline=None)
@given(small_dags(), st.booleans(), st.booleans())
def test_optimal_equals_brute_force(ir: ArchIR, inplace: bool, count_io: bool) -> None:
    if len(lower(ir).ops) > 8:
        return
    plan = OptimalPlanner().plan(lower(ir), count_input=count_io, count_output=count_io, inplace=inplace)
    assert plan.exact
    assert plan.peak_bytes == brute_force_peak(ir, inplace=inplace, count_io=count_io)
    seq = SequentialPlanner().plan(lower(ir), count_input=count_io, count_output=count_io, inplace=inplace)
    assert plan.peak_bytes <= seq.peak_bytes
    # the reported order is a valid schedule achieving the peak
    assert sorted(plan.order) == sorted(op.name for op in lower(ir).ops)
    assert max(m.live_bytes for m in plan.profile) == plan.peak_bytes
    # a starved search falls back to the heuristic, whose bounds bracket the optimum
    rough = OptimalPlanner(max_states=2).plan(lower(ir), count_input=count_io, count_output=count_io,
                                              inplace=inplace)
    assert rough.lower_bound <= plan.peak_bytes <= rough.peak_bytes


@pytest.mark.parametrize("name", ["optimal", "sequential", "tflm"])
def test_profile_covers_every_kernel(name: str) -> None:
    graph = lower(two_branch())
    plan = PLANNERS.create(name).plan(graph)
    assert [m.op for m in plan.profile] == list(plan.order)
    assert set(plan.order) == {op.name for op in graph.ops}


@pytest.mark.parametrize("name", ["optimal", "sequential", "tflm"])
def test_planners_follow_the_protocol(name: str) -> None:
    assert isinstance(PLANNERS.create(name), Planner)


def test_cached_segments_scale_correctly() -> None:
    """Two cells with the same structure but different sizes share one cached solution; both peaks are right."""

    def cell(b: GraphBuilder, x: str, c: int, tag: str) -> str:
        p1 = b.add(Conv2d(8 * c, kernel=3), x, name=f"{tag}P1")
        p2 = b.add(Conv2d(8 * c, kernel=3), x, name=f"{tag}P2")
        q1 = b.add(Conv2d(c, kernel=3), p1, name=f"{tag}Q1")
        q2 = b.add(Conv2d(c, kernel=3), p2, name=f"{tag}Q2")
        return b.add(Add(), q1, q2, name=f"{tag}add")

    b = GraphBuilder((1, 8, 8))
    x = cell(b, b.input, 1, "a")  # 64-byte units: x 1, P 8, Q 1
    x = b.add(Conv2d(2, kernel=1), x, name="widen")
    ir = b.build(cell(b, x, 2, "b"))  # the same cell at twice the size
    clear_caches()
    plan = OptimalPlanner().plan(lower(ir))
    # cell a: x + P1 + Q1 then x + Q1 + P2 ... = 1 + 8 + 1 = 10 units; cell b: 2 + 16 + 2 = 20 units of 64 B
    assert plan.peak_bytes == 20 * 64
    assert plan.peak_op.startswith("b")  # type: ignore[union-attr]
    from tinyevo.cost.memory import _solve_canonical

    assert _solve_canonical.cache_info().hits >= 1  # the second cell reused the first one's solution


def test_cost_model_follows_the_protocol() -> None:
    assert isinstance(MCUCostModel(), CostModel)


def test_tflm_persistent_bytes_counts_the_flatbuffer() -> None:
    from tinyevo.cost import tflm_persistent_bytes
    from tinyevo.cost.flash import tensor_counts

    graph = lower(chain3())
    # 5 activation + 3 weight + 3 bias tensors + MEAN's axis; weight channels c1 4 + c2 8 + fc 10 (per channel)
    assert tensor_counts(graph) == (12, 22)
    # the structural tail model on the kernels the flatbuffer has: the 1-channel-input conv becomes a depthwise
    # conv (4 channels), a conv (8), MEAN (three scratch buffers), a per-channel dense layer (10)
    from tinyevo.cost.tflm_tail import TailOp, TailSpec, tflm_tail_bytes

    spec = TailSpec(ops=(TailOp("DEPTHWISE_CONV_2D", 4), TailOp("CONV_2D", 8), TailOp("MEAN"),
                         TailOp("FULLY_CONNECTED", 10)), tensors=12)
    assert tflm_persistent_bytes(graph) == tflm_tail_bytes(spec, pointer_size=4)
    host = {"pointer_size": 8, "recording": True, "compression": True}
    assert tflm_persistent_bytes(graph, **host) == tflm_tail_bytes(spec, **host)
