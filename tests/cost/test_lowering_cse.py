"""CSE of adds in the lowering: partial sums of n-ary adds and commuted binary adds are computed once, as the
export computes them (tinyevo.deploy.quantize.merge_duplicates); the TFLM-measured version of this is
tests/deploy/test_nb201_pool_arena.py."""

from __future__ import annotations

from tinyevo.cost import lower
from tinyevo.ir import Act, Add, Conv2d, GraphBuilder, Pool2d


def _pool() -> Pool2d:
    return Pool2d(mode="avg", kernel=3, stride=1, padding="same")


def test_partial_sum_equal_to_an_earlier_add_is_not_recomputed() -> None:
    b = GraphBuilder((4, 6, 6))
    x = b.add(Conv2d(out_channels=4, kernel=3, stride=1, padding="same"), b.input, name="x")
    p = b.add(_pool(), x, name="p")
    n2 = b.add(Add(), p, p, name="n2")  # p + p
    q = b.add(_pool(), n2, name="q")
    n3 = b.add(Add(), p, p, q, name="n3")  # (p + p) + q: the partial sum is n2
    ir = b.build(b.add(Act(fn="relu"), n3, name="out"))
    g = lower(ir)
    adds = [op for op in g.ops if op.tflite == "ADD"]
    assert [op.inputs for op in adds] == [("p", "p"), ("n2", "q")]  # written out by hand
    assert "n3#1" not in g.tensors


def test_commuted_add_and_commuted_final_add_are_aliases() -> None:
    b = GraphBuilder((4, 6, 6))
    x = b.add(Conv2d(out_channels=4, kernel=3, stride=1, padding="same"), b.input, name="x")
    p = b.add(_pool(), x, name="p")
    s = b.add(Add(), x, p, name="s")
    t = b.add(Add(), p, x, name="t")  # = s
    u = b.add(Add(), x, p, s, name="u")  # (x + p) + s
    v = b.add(Add(), s, s, name="v")  # = u's final add s + s
    ir = b.build(b.add(Add(), t, u, v, name="out"))
    g = lower(ir)
    assert g.tensor_of["t"] == "s"
    assert g.tensor_of["v"] == "u"
    adds = [op.inputs for op in g.ops if op.tflite == "ADD"]
    # s = x + p; u = s + s; out = (s + u) + u
    assert adds == [("x", "p"), ("s", "s"), ("s", "u"), ("out#1", "u")]


def test_a_shared_add_keeps_its_activation_separate() -> None:
    # n2 is reused as n3's partial sum, so its ReLU cannot fuse into it (n3 needs the value before the ReLU)
    b = GraphBuilder((4, 6, 6))
    x = b.add(Conv2d(out_channels=4, kernel=3, stride=1, padding="same"), b.input, name="x")
    p = b.add(_pool(), x, name="p")
    n2 = b.add(Add(), p, x, name="n2")
    n3 = b.add(Add(), p, x, p, name="n3")
    r = b.add(Act(fn="relu"), n2, name="r")
    ir = b.build(b.add(Add(), r, n3, name="out"))
    g = lower(ir)
    kernels = [(op.tflite, op.inputs, op.act) for op in g.ops if op.tflite in ("ADD", "RELU")]
    assert kernels == [("ADD", ("p", "x"), "none"), ("ADD", ("n2", "p"), "none"), ("RELU", ("n2",), "none"),
                       ("ADD", ("r", "n3"), "none")]
