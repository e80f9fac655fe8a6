from __future__ import annotations

from pathlib import Path

import torch
from estimator_helpers import conv_net

from tinyevo.estimators import WeightStore, inherit_weights
from tinyevo.ir import Conv2d, Dense, GlobalPool, GraphBuilder
from tinyevo.nn import build_model


def _child() -> object:
    """Same first conv as conv_net(8); a wider second conv; same classifier name but another input width."""
    b = GraphBuilder((1, 6, 6))
    x = b.add(Conv2d(8, kernel=3, act="relu"), b.input, name="conv1")
    x = b.add(Conv2d(24, kernel=3, stride=2, act="relu"), x, name="conv2")
    x = b.add(GlobalPool(), x, name="gap")
    return b.build(b.add(Dense(2), x, name="fc"))


def test_copies_exactly_the_matching_weights() -> None:
    parent = build_model(conv_net(8), seed=1)
    with torch.no_grad():
        for p in parent.parameters():
            p.add_(1.0)  # "trained" weights differ from any fresh initialisation
    child = build_model(_child(), seed=2)
    fresh = {k: v.clone() for k, v in child.state_dict().items()}
    report = inherit_weights(child, parent.state_dict())
    state, pstate = child.state_dict(), parent.state_dict()
    for key, value in state.items():
        if key.startswith("layers.conv1.") or key == "layers.fc.linear.bias":
            assert torch.equal(value, pstate[key]), key
        elif key.startswith(("layers.conv2.", "layers.fc.linear.weight")):
            assert torch.equal(value, fresh[key]), key
    assert 0 < report.fraction < 1 and report.copied_tensors < report.total_tensors
    same = build_model(conv_net(8), seed=3)
    assert inherit_weights(same, pstate).fraction == 1.0


def test_weight_store_memory_lru_and_directory(tmp_path: Path) -> None:
    state = build_model(conv_net(4), seed=0).state_dict()
    store = WeightStore(max_items=1)
    store.put("a", state)
    store.put("b", state)
    assert store.get("a") is None and "b" in store and len(store) == 1
    disk = WeightStore(tmp_path / "w", max_items=1)
    disk.put("conv_k3-gap", state)
    disk.put("other", state)
    again = WeightStore(tmp_path / "w")  # e.g. another process or a resumed run
    loaded = again.get("conv_k3-gap")
    assert loaded is not None and all(torch.equal(loaded[k], v) for k, v in state.items())
    assert len(again) == 2 and "missing" not in again and again.get("missing") is None
    files = list((tmp_path / "w").glob("*.pt"))
    assert len(files) == 2 and isinstance(torch.load(files[0], weights_only=True), dict)
