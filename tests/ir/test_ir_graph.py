"""ArchIR validation and GraphBuilder."""

from __future__ import annotations

import pytest

from tinyevo.errors import IRValidationError
from tinyevo.ir import (
    Add,
    ArchIR,
    Concat,
    Conv2d,
    Dense,
    GlobalPool,
    GraphBuilder,
    Identity,
    Input,
    Node,
    Pool2d,
)


def inp(shape: tuple[int, int, int] = (3, 8, 8)) -> Node:
    return Node("x", Input(shape))


def test_a_valid_graph_has_shapes_and_queries() -> None:
    ir = ArchIR(
        (
            inp(),
            Node("a", Conv2d(4, kernel=3, stride=2), ("x",)),
            Node("b", Conv2d(4, kernel=1), ("a",)),
            Node("s", Add(), ("a", "b")),
            Node("g", GlobalPool(), ("s",)),
            Node("fc", Dense(10), ("g",)),
        ),
        "fc",
    )
    assert ir.input_shape == (3, 8, 8) and ir.output_shape == (10, 1, 1)
    assert ir.shapes["a"] == (4, 4, 4) and ir.in_shapes(ir.node("s")) == ((4, 4, 4), (4, 4, 4))
    assert ir.consumers()["a"] == ("b", "s") and ir.consumers()["fc"] == ()
    assert len(ir) == 6 and [n.name for n in ir] == ["x", "a", "b", "s", "g", "fc"]
    assert "conv3x3/2 c4" in ir.summary()


def test_forward_reference_or_cycle_is_rejected() -> None:
    with pytest.raises(IRValidationError, match="not an earlier node"):
        ArchIR((inp(), Node("a", Conv2d(4), ("b",)), Node("b", Conv2d(4), ("a",))), "b")
    with pytest.raises(IRValidationError, match="not an earlier node"):
        ArchIR((inp(), Node("a", Add(), ("x", "a"))), "a")  # self loop


def test_duplicate_names_are_rejected() -> None:
    with pytest.raises(IRValidationError, match="duplicate node name 'a'"):
        ArchIR((inp(), Node("a", Conv2d(4), ("x",)), Node("a", Conv2d(4), ("a",))), "a")


def test_dead_nodes_are_rejected() -> None:
    with pytest.raises(IRValidationError, match="do not reach the output: dead"):
        ArchIR((inp(), Node("dead", Conv2d(4), ("x",)), Node("a", Conv2d(4), ("x",))), "a")


@pytest.mark.parametrize(
    ("nodes", "match"),
    [
        (
            (inp(), Node("a", Conv2d(4), ("x",)), Node("s", Add(), ("x", "a"))),
            "add needs inputs of one shape",
        ),
        (
            (inp(), Node("a", Conv2d(4, stride=2), ("x",)), Node("s", Concat(), ("x", "a"))),
            "concat needs inputs of one spatial size",
        ),
        ((inp(), Node("a", Conv2d(4, groups=2), ("x",))), "input channels 3 not divisible by groups 2"),
        ((inp(), Node("a", Add(), ("x",))), "at least two inputs"),
        ((inp(), Node("a", Conv2d(4), ("x", "x"))), "needs 1 input"),
        (
            (inp((3, 2, 2)), Node("a", Pool2d("max", kernel=3, padding="valid"), ("x",))),
            "larger than the input",
        ),
    ],
)
def test_shape_errors_name_the_node(nodes: tuple[Node, ...], match: str) -> None:
    with pytest.raises(IRValidationError, match=match) as info:
        ArchIR(nodes, nodes[-1].name)
    assert f"node {nodes[-1].name!r}" in str(info.value)


def test_group_divisibility_of_output_channels() -> None:
    with pytest.raises(IRValidationError, match="out_channels 6 not divisible by groups 4"):
        Conv2d(6, groups=4)
    ir = ArchIR((Node("x", Input((4, 8, 8))), Node("g", Conv2d(8, groups=4), ("x",))), "g")
    assert ir.shapes["g"] == (8, 8, 8)


def test_input_rules() -> None:
    with pytest.raises(IRValidationError, match="at least an input"):
        ArchIR((), "x")
    with pytest.raises(IRValidationError, match="first node must be the Input"):
        ArchIR((Node("a", Identity(), ()),), "a")
    with pytest.raises(IRValidationError, match="only one Input"):
        ArchIR((inp(), Node("y", Input((3, 8, 8)))), "y")
    with pytest.raises(IRValidationError, match="output 'nope' is not a node"):
        ArchIR((inp(),), "nope")
    with pytest.raises(IRValidationError, match=r"\(C, H, W\)"):
        Input((3, 8))  # type: ignore[arg-type]
    with pytest.raises(IRValidationError, match="positive"):
        Input((3, 0, 8))


def test_builder_names_checks_and_prunes() -> None:
    b = GraphBuilder((1, 28, 28))
    a = b.add(Conv2d(8, kernel=3, stride=2, act="relu"), b.input)
    unused = b.add(Conv2d(8, kernel=1), a)
    c = b.add(Conv2d(8, kernel=3), a)
    assert (a, unused, c) == ("conv2d_0", "conv2d_1", "conv2d_2")
    assert b.shape(a) == (8, 14, 14)
    x = b.add(GlobalPool(), c, name="gap")
    ir = b.build(b.add(Dense(10), x))
    assert [n.name for n in ir] == ["input", "conv2d_0", "conv2d_2", "gap", "dense_0"]  # conv2d_1 dropped
    with pytest.raises(IRValidationError, match="duplicate"):
        b.add(Conv2d(8), a, name="gap")
    with pytest.raises(IRValidationError, match="unknown node 'zzz'"):
        b.add(Conv2d(8), "zzz")
    with pytest.raises(IRValidationError, match="add needs inputs of one shape"):
        b.add(Add(), a, b.input)
    with pytest.raises(IRValidationError, match="is not a node"):
        b.build("zzz")


def test_ir_equality_ignores_derived_fields() -> None:
    def make() -> ArchIR:
        b = GraphBuilder((3, 8, 8))
        return b.build(b.add(Dense(2), b.add(GlobalPool(), b.input)))

    assert make() == make()
