"""strip_passthrough: the deployed graph computes the same function without Identity / Zero nodes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyevo.deploy.graph import strip_passthrough
from tinyevo.deploy.model import load_weights
from tinyevo.ir import Act, Add, Concat, Conv2d, Dense, GlobalPool, GraphBuilder, Identity, Zero
from tinyevo.nn import build_model
from tinyevo.spaces import create_space


def _same_function(ir, lean) -> None:  # type: ignore[no-untyped-def]
    full = build_model(ir, seed=1).eval()
    stripped = load_weights(lean, full.state_dict())
    x = torch.randn(3, *ir.input_shape)
    with torch.no_grad():
        assert torch.allclose(full(x), stripped(x), atol=1e-5)


def test_identity_and_zero_terms_disappear_and_relu_sum_becomes_act() -> None:
    b = GraphBuilder((2, 6, 6))
    c = b.add(Conv2d(4, kernel=3), b.input, name="c")
    i = b.add(Identity(), c, name="skip")
    z = b.add(Zero(), c, name="none")
    s = b.add(Add(act="relu"), i, z, name="sum")
    g = b.add(GlobalPool(), s, name="gap")
    ir = b.build(b.add(Dense(3), g, name="fc"))
    lean = strip_passthrough(ir)
    kinds = {n.name: type(n.op) for n in lean.nodes}
    assert "skip" not in kinds and "none" not in kinds
    assert kinds["sum"] is Act and lean.node("sum").inputs == ("c",)
    _same_function(ir, lean)


def test_zero_read_by_a_concat_is_kept_and_all_zero_sum_is_zero() -> None:
    b = GraphBuilder((2, 5, 5))
    c = b.add(Conv2d(3, kernel=1), b.input, name="c")
    z1 = b.add(Zero(), c, name="z1")
    z2 = b.add(Zero(), c, name="z2")
    s = b.add(Add(), z1, z2, name="zsum")
    cat = b.add(Concat(), c, s, name="cat")
    g = b.add(GlobalPool(), cat, name="gap")
    ir = b.build(b.add(Dense(2), g, name="fc"))
    lean = strip_passthrough(ir)
    assert isinstance(lean.node("zsum").op, Zero)
    assert lean.shapes["cat"] == ir.shapes["cat"]
    _same_function(ir, lean)


def test_weights_of_another_architecture_are_rejected() -> None:
    from tinyevo.deploy.errors import DeployError

    b = GraphBuilder((1, 4, 4))
    ir = b.build(b.add(Dense(3), b.add(Conv2d(2, kernel=1), b.input, name="c"), name="fc"))
    state = build_model(ir, seed=0).state_dict()
    state["layers.c.conv.weight"] = torch.zeros(5, 1, 1, 1)
    with pytest.raises(DeployError, match="do not belong"):
        load_weights(ir, state)
    del state["layers.c.conv.weight"]
    with pytest.raises(DeployError, match="missing"):
        load_weights(ir, state)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_nb201_cells_keep_their_function(seed: int) -> None:
    space = create_space("nb201", input_shape=(3, 8, 8), num_classes=3, channels=4, cells_per_stage=1)
    ir = space.decode(space.sample(np.random.default_rng(seed)))
    lean = strip_passthrough(ir)
    assert not any(isinstance(n.op, Identity) for n in lean.nodes)
    assert all(not isinstance(n.op, Zero) or lean.consumers()[n.name] for n in lean.nodes)
    _same_function(ir, lean)
