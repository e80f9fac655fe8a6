"""Structured channel pruning: valid smaller IRs whose weights compute what the masked original computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyevo.deploy.errors import DeployError
from tinyevo.deploy.model import load_weights
from tinyevo.deploy.prune import prune_channels
from tinyevo.ir import Add, ArchIR, Concat, Conv2d, Dense, DepthwiseConv2d, GlobalPool, GraphBuilder, Pool2d
from tinyevo.nn import build_model
from tinyevo.spaces import create_space


def _randomise_bn(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data = torch.randn(m.num_features, generator=g)
            m.bias.data = torch.randn(m.num_features, generator=g)
            m.running_mean.data = torch.randn(m.num_features, generator=g)
            m.running_var.data = torch.rand(m.num_features, generator=g) + 0.5


def _masked(model: torch.nn.Module, ir: ArchIR, kept: dict[str, tuple[int, ...]]) -> torch.nn.Module:
    """The original network with every removed channel forced to zero (BN scale and shift of 0)."""
    out = build_model(ir)
    out.load_state_dict(model.state_dict())
    for node in ir.nodes:
        if isinstance(node.op, (Conv2d, DepthwiseConv2d)):
            bn = out.layers[node.name.replace(".", "_")].bn
            drop = [i for i in range(ir.shapes[node.name][0]) if i not in kept[node.name]]
            bn.weight.data[drop] = 0.0
            bn.bias.data[drop] = 0.0
    return out.eval()


def _check_equivalent(ir: ArchIR, fraction: float, seed: int) -> None:
    model = build_model(ir, seed=seed)
    _randomise_bn(model, seed)
    model.eval()
    pruned = prune_channels(ir, model.state_dict(), fraction)
    small = load_weights(pruned.ir, pruned.state_dict)
    x = torch.randn(4, *ir.input_shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        assert torch.allclose(small(x), _masked(model, ir, pruned.kept)(x), atol=1e-4)
    assert pruned.channels_after <= pruned.channels_before
    assert sum(p.numel() for p in small.parameters()) <= sum(p.numel() for p in model.parameters())


def _residual_net() -> ArchIR:
    b = GraphBuilder((3, 9, 9))
    stem = b.add(Conv2d(8, kernel=3, stride=2, act="relu"), b.input, name="stem")
    dw = b.add(DepthwiseConv2d(3, act="relu6"), stem, name="dw")
    pw = b.add(Conv2d(8, kernel=1), dw, name="pw")
    s = b.add(Add(act="relu"), stem, pw, name="sum")
    p = b.add(Pool2d("max", kernel=3, stride=2, padding="same"), s, name="pool")
    side = b.add(Conv2d(4, kernel=1, act="relu"), p, name="side")
    cat = b.add(Concat(), p, side, name="cat")
    hidden = b.add(Dense(6, act="relu"), cat, name="hidden")  # reads a 3x3 feature map
    return b.build(b.add(Dense(3), hidden, name="fc"))


def test_pruned_residual_network_equals_the_masked_original() -> None:
    ir = _residual_net()
    _check_equivalent(ir, 0.5, seed=0)
    pruned = prune_channels(ir, build_model(ir, seed=0).state_dict(), 0.5)
    # the add ties stem and pw: they keep the same channels
    assert pruned.ir.shapes["stem"][0] == pruned.ir.shapes["pw"][0] == 4
    assert pruned.kept["stem"] == pruned.kept["pw"] == pruned.kept["dw"]
    assert pruned.ir.shapes["side"][0] == 2
    assert pruned.removed_fraction == pytest.approx(1 - 6 / 12)


def test_zero_fraction_is_the_identity_and_bad_fractions_are_rejected() -> None:
    ir = _residual_net()
    state = build_model(ir, seed=0).state_dict()
    pruned = prune_channels(ir, state, 0.0)
    assert pruned.ir == ir and pruned.removed == ()
    assert all(torch.equal(pruned.state_dict[k], v) for k, v in state.items())
    with pytest.raises(DeployError, match="fraction"):
        prune_channels(ir, state, 1.0)


def test_least_important_channels_go_first() -> None:
    b = GraphBuilder((1, 4, 4))
    c = b.add(Conv2d(4, kernel=1), b.input, name="c")
    ir = b.build(b.add(Dense(2), b.add(GlobalPool(), c, name="g"), name="fc"))
    model = build_model(ir, seed=0)
    with torch.no_grad():
        model.layers["c"].conv.weight.copy_(torch.tensor([3.0, -0.1, 2.0, 0.2]).reshape(4, 1, 1, 1))
        model.layers["c"].bn.weight.fill_(1.0)
    pruned = prune_channels(ir, model.state_dict(), 0.5)
    assert pruned.kept["c"] == (0, 2)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), fraction=st.sampled_from([0.25, 0.5, 0.75]),
       space=st.sampled_from(["chain", "nb201"]))
def test_random_space_architectures_prune_equivalently(seed: int, fraction: float, space: str) -> None:
    options = {"chain": {"input_shape": (1, 10, 10), "num_classes": 3, "max_layers": 4},
               "nb201": {"input_shape": (3, 8, 8), "num_classes": 3, "channels": 4, "cells_per_stage": 1}}[space]
    sp = create_space(space, **options)
    ir = sp.decode(sp.sample(np.random.default_rng(seed)))
    _check_equivalent(ir, fraction, seed)


def test_a_conv_classifier_keeps_its_output_channels() -> None:
    b = GraphBuilder((1, 6, 6))
    c = b.add(Conv2d(8, kernel=3, act="relu"), b.input, name="c")
    cls = b.add(Conv2d(4, kernel=1), c, name="cls")
    ir = b.build(b.add(GlobalPool(), cls, name="g"))
    pruned = prune_channels(ir, build_model(ir, seed=0).state_dict(), 0.5)
    assert pruned.ir.output_shape == ir.output_shape == (4, 1, 1)
    assert pruned.ir.shapes["c"][0] == 4


@pytest.mark.parametrize("genome", ["conv_k3_s1_c8-gap", "conv_k3_s1_c8-flat"])
def test_dense_bias_compensation_keeps_the_mean_output(genome: str) -> None:
    """One conv (its input is the image, so pruning leaves the kept channels' values as they were) read by a Dense
    layer: with the lost features' mean folded into the bias, the mean logits over the measured rows are unchanged;
    without it they move."""
    from tinyevo.deploy.prune import compensate_dense_bias

    space = create_space("chain", input_shape=(1, 6, 6), num_classes=3)
    ir = space.decode(space.parse(genome))
    model = build_model(ir, seed=1).eval()
    x = np.random.default_rng(0).normal(size=(64, 1, 6, 6)).astype(np.float32)
    pruned = prune_channels(ir, model.state_dict(), 0.5)
    assert pruned.channels_after < pruned.channels_before
    with torch.no_grad():
        want = model(torch.from_numpy(x)).double().mean(0)
        fixed = compensate_dense_bias(model, ir, pruned, x, rows=64)
        got = load_weights(pruned.ir, fixed).eval()(torch.from_numpy(x)).double().mean(0)
        raw = load_weights(pruned.ir, pruned.state_dict).eval()(torch.from_numpy(x)).double().mean(0)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    assert (raw - want).abs().max() > 1e-3
    changed = [k for k in fixed if not torch.equal(fixed[k], pruned.state_dict[k])]
    assert changed and all(k.endswith("linear.bias") for k in changed)


def test_dense_bias_compensation_without_pruned_inputs_changes_nothing() -> None:
    from tinyevo.deploy.prune import compensate_dense_bias

    space = create_space("chain", input_shape=(1, 6, 6), num_classes=3)
    ir = space.decode(space.parse("conv_k3_s1_c8-gap"))
    model = build_model(ir, seed=1).eval()
    pruned = prune_channels(ir, model.state_dict(), 0.0)
    fixed = compensate_dense_bias(model, ir, pruned, np.zeros((4, 1, 6, 6), np.float32))
    assert all(torch.equal(fixed[k], v) for k, v in pruned.state_dict.items())
