"""IR -> torch builder: TF SAME numerics, BatchNorm placement, seeding, and every op type."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from tinyevo.ir import (
    OP_TYPES,
    Act,
    Add,
    ArchIR,
    Concat,
    Conv2d,
    Dense,
    DepthwiseConv2d,
    GlobalPool,
    GraphBuilder,
    Identity,
    Pool2d,
    Zero,
)
from tinyevo.nn import build_model
from tinyevo.spaces import SPACES, create_space


def single(op: object, shape: tuple[int, int, int]) -> ArchIR:
    b = GraphBuilder(shape)
    return b.build(b.add(op, b.input, name="op"))  # type: ignore[arg-type]


def conv_reference(
    layer: nn.Module, x: torch.Tensor, pads: tuple[int, int, int, int], stride: int
) -> torch.Tensor:
    """Explicit zero padding (left, right, top, bottom) + an unpadded conv + the layer's BN."""
    conv = layer.conv
    y = F.conv2d(F.pad(x, pads), conv.weight, None, stride, 0, 1, conv.groups)
    return layer.bn(y)


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "pads"),
    [
        ((8, 8), 3, 2, (0, 1, 0, 1)),  # TF pads the extra row/column at the bottom/right
        ((7, 8), 3, 2, (0, 1, 1, 1)),
        ((6, 6), 4, 1, (1, 2, 1, 2)),
        ((5, 5), 3, 1, (1, 1, 1, 1)),
        ((9, 9), 5, 2, (2, 2, 2, 2)),
    ],
)
@pytest.mark.parametrize("depthwise", [False, True])
def test_same_padding_equals_explicitly_padded_conv(
    size: tuple[int, int], kernel: int, stride: int, pads: tuple[int, int, int, int], depthwise: bool
) -> None:
    op = DepthwiseConv2d(kernel, stride=stride) if depthwise else Conv2d(5, kernel=kernel, stride=stride)
    ir = single(op, (3, *size))
    model = build_model(ir, seed=0).eval()
    layer = model.layers["op"]
    with torch.no_grad():
        layer.bn.running_mean.uniform_(-1, 1)
        layer.bn.running_var.uniform_(0.5, 2)
        x = torch.randn(2, 3, *size)
        out = model(x)
        ref = conv_reference(layer, x, pads, stride)
    assert ref.shape[1:] == ir.output_shape
    torch.testing.assert_close(out, ref.flatten(1))


def test_same_padding_is_not_symmetric_torch_padding() -> None:
    """The test above can fail: symmetric padding=1 gives different numbers for a stride-2 conv on 8x8."""
    model = build_model(single(Conv2d(4, kernel=3, stride=2), (2, 8, 8)), seed=0).eval()
    layer = model.layers["op"]
    x = torch.randn(1, 2, 8, 8)
    with torch.no_grad():
        symmetric = layer.bn(F.conv2d(x, layer.conv.weight, None, 2, 1))
        assert not torch.allclose(model(x), symmetric.flatten(1))


def test_max_pool_pads_with_minus_infinity_and_avg_pool_excludes_padding() -> None:
    x = -torch.rand(1, 2, 5, 5) - 1.0  # all values < -1: a zero pad would win the max
    maxp = build_model(single(Pool2d("max", kernel=2, stride=2, padding="same"), (2, 5, 5)))
    with torch.no_grad():
        out = maxp(x).reshape(1, 2, 3, 3)
    assert (out < -1).all()
    assert torch.equal(out[..., :2, :2], F.max_pool2d(x[..., :4, :4], 2, 2))
    avgp = build_model(single(Pool2d("avg", kernel=3, stride=2, padding="same"), (2, 6, 6)))
    with torch.no_grad():
        assert torch.allclose(avgp(torch.ones(1, 2, 6, 6)), torch.ones(1, 2 * 3 * 3))


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    kernel=st.integers(1, 5),
    stride=st.integers(1, 3),
    kind=st.sampled_from(["conv", "dw", "maxpool", "avgpool"]),
    padding=st.sampled_from(["same", "valid"]),
)
def test_torch_shapes_equal_ir_shapes(
    h: int, w: int, kernel: int, stride: int, kind: str, padding: str
) -> None:
    if padding == "valid" and min(h, w) < kernel:
        return
    op = {
        "conv": Conv2d(4, kernel=kernel, stride=stride, padding=padding),
        "dw": DepthwiseConv2d(kernel, stride=stride, padding=padding),
        "maxpool": Pool2d("max", kernel=kernel, stride=stride, padding=padding),
        "avgpool": Pool2d("avg", kernel=kernel, stride=stride, padding=padding),
    }[kind]
    ir = single(op, (2, h, w))
    with torch.no_grad():
        out = build_model(ir, seed=0).eval().layers["op"](torch.randn(1, 2, h, w))
    assert tuple(out.shape[1:]) == ir.output_shape


def test_batchnorm_after_every_conv_and_nowhere_else() -> None:
    b = GraphBuilder((4, 8, 8))
    x = b.add(Conv2d(8, kernel=3, act="relu"), b.input, name="c")
    x = b.add(DepthwiseConv2d(3, act="relu6"), x, name="d")
    x = b.add(Conv2d(8, kernel=1, groups=2), x, name="g")
    x = b.add(GlobalPool(), x, name="gap")
    ir = b.build(b.add(Dense(3), x, name="fc"))
    model = build_model(ir, seed=0)
    for name, act in (("c", nn.ReLU), ("d", nn.ReLU6), ("g", nn.Identity)):
        layer = model.layers[name]
        assert layer.conv.bias is None
        assert isinstance(layer.bn, nn.BatchNorm2d) and layer.bn.num_features == layer.conv.out_channels
        assert isinstance(layer.act, act)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 3
    assert model.layers["fc"].linear.bias is not None
    # order: conv -> BN -> activation
    layer = model.layers["c"].eval()
    z = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        assert torch.equal(layer(z), torch.relu(layer.bn(layer.conv(layer.pad(z)))))


def test_seeded_builds_are_reproducible_and_leave_the_global_rng_alone() -> None:
    ir = create_space("chain").decode(
        create_space("chain").parse("conv_k3_s2_c8-dsc_k3_s1_c8_r-gap-dense_c16")
    )
    state = torch.random.get_rng_state()
    a, b, c = build_model(ir, seed=7), build_model(ir, seed=7), build_model(ir, seed=8)
    assert torch.equal(torch.random.get_rng_state(), state)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


def every_op_ir() -> ArchIR:
    b = GraphBuilder((4, 9, 9))
    x = b.add(Conv2d(8, kernel=3, stride=2, act="relu"), b.input)
    y = b.add(DepthwiseConv2d(3, act="relu6"), x)
    g = b.add(Conv2d(8, kernel=1, groups=4), y)
    s = b.add(Add(act="relu"), x, g, b.add(Identity(), x))
    z = b.add(Zero(), s)
    c = b.add(Concat(), s, z)
    a = b.add(Act("relu6"), c)
    m = b.add(Pool2d("max", kernel=2, stride=2, padding="same"), a)
    p = b.add(Pool2d("avg", kernel=3, stride=1, padding="valid"), m)
    q = b.add(Concat(), b.add(GlobalPool("avg"), p), b.add(GlobalPool("max"), p))
    h = b.add(Dense(6, act="relu"), q)
    return b.build(b.add(Dense(3), h))


def test_every_op_type_builds_and_runs() -> None:
    ir = every_op_ir()
    assert {type(n.op) for n in ir.nodes} == set(OP_TYPES)  # a new op type must be added here
    model = build_model(ir, seed=0).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 4, 9, 9))
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    model.train()
    model(torch.randn(2, 4, 9, 9)).square().sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_elementwise_op_semantics() -> None:
    x = torch.randn(2, 3, 4, 4) * 10
    with torch.no_grad():
        assert torch.equal(build_model(single(Identity(), (3, 4, 4)))(x), x.flatten(1))
        assert torch.equal(build_model(single(Zero(), (3, 4, 4)))(x), torch.zeros(2, 48))
        assert torch.equal(build_model(single(Act("relu6"), (3, 4, 4)))(x), x.clamp(0, 6).flatten(1))
        gmax = build_model(single(GlobalPool("max"), (3, 4, 4)))(x)
        assert torch.equal(gmax, x.amax(dim=(2, 3)))


def test_dense_flattens_channel_major() -> None:
    model = build_model(single(Dense(5), (3, 2, 2)), seed=0)
    x = torch.randn(4, 3, 2, 2)
    lin = model.layers["op"].linear
    with torch.no_grad():
        torch.testing.assert_close(model(x), lin(x.reshape(4, 12)))


def test_intermediate_tensors_are_freed_but_results_are_unchanged() -> None:
    """Executing node by node (with frees) equals evaluating every node and keeping all tensors."""
    ir = every_op_ir()
    model = build_model(ir, seed=1).eval()
    x = torch.randn(1, 4, 9, 9)
    env = {ir.input_name: x}
    with torch.no_grad():
        for node in ir.nodes[1:]:
            env[node.name] = model.layers[node.name](*(env[s] for s in node.inputs))
            assert tuple(env[node.name].shape[1:]) == ir.shapes[node.name]
        assert torch.equal(model(x), env[ir.output].flatten(1))


@pytest.mark.parametrize("name", SPACES.names())
def test_default_space_networks_build_on_the_meta_device(name: str) -> None:
    """Full-size default networks of every space build (parameter shapes only, no memory, no compute)."""
    space = create_space(name)
    ir = space.decode(space.sample(np.random.default_rng(0)))
    with torch.device("meta"):
        model = build_model(ir)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_an_ensemble_is_the_mean_of_its_members_logits_each_at_its_own_resolution() -> None:
    from tinyevo.nn import Ensemble

    def net(size: int) -> ArchIR:
        b = GraphBuilder((1, size, size))
        x = b.add(Conv2d(4, kernel=3), b.input)
        return b.build(b.add(Dense(3), b.add(GlobalPool("avg"), x)))

    small, big = build_model(net(8), seed=0).eval(), build_model(net(12), seed=1).eval()
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        both = Ensemble([small, big])(x)
        want = (small(x) + big(F.interpolate(x, size=(12, 12), mode="bilinear", align_corners=False))) / 2
        assert torch.allclose(both, want)
        assert not torch.allclose(both, (small(x) + big(x)) / 2)  # the big member did not see the 8x8 input
        assert torch.equal(Ensemble([small])(x), small(x))
    with pytest.raises(ValueError, match="at least one member"):
        Ensemble([])
