"""Deepening a retrained chain model by an identity-initialised residual layer (tinyevo.run.deepen, `tinyevo
deepen`)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tinyevo.cli.main import main
from tinyevo.errors import ConfigError
from tinyevo.nn import build_model
from tinyevo.run.components import make_space
from tinyevo.run.deepen import ORIGIN, deepen_trial, parse_insert, shift_layer_keys
from tinyevo.run.view import open_run
from tinyevo.storage import DB_NAME, SQLiteStorage

PARENT = "conv_k3_s1_c4-conv_k3_s1_c8-gap"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny search whose trial 0 (PARENT) has a retrained model."""
    rng = np.random.default_rng(0)
    n, k = 60, 3
    y = np.arange(n) % k
    x = rng.normal(size=(n, 6, 6)).astype(np.float32) + y[:, None, None]
    root = tmp_path_factory.mktemp("deepen")
    np.savez(root / "tiny.npz", x_train=x, y_train=y, x_test=x[:15], y_test=y[:15])
    out = root / "run"
    argv = ["search", "--data", str(root / "tiny.npz"), "--budget", "1", "--device", "none", "--init", PARENT,
            "--out", str(out), "--seed", "1", "--epochs", "1", "--strategy", "random", "--no-final", "--quiet"]
    assert main(argv) == 0
    assert main(["retrain", str(out), "--trial", "0", "--epochs", "3", "--threads", "1", "--quiet"]) == 0
    assert open_run(out).trials[0].genome == PARENT
    return out


@pytest.fixture
def run_dir(trained: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "run"))


def _model(run_dir: Path, trial: int) -> torch.nn.Module:
    view = open_run(run_dir)
    space = make_space(view.config.space, input_shape=(1, 6, 6), num_classes=3)  # the tiny data's shape
    (final,) = [f for f in view.finals if f.trial == trial]
    model = build_model(space.decode(space.parse(final.genome)), seed=0)
    model.load_state_dict(torch.load(run_dir / final.weights, weights_only=True))
    return model.eval()


def test_parse_insert_and_its_errors() -> None:
    assert parse_insert("4:dsc_k5_s1_c64_r") == (4, "dsc_k5_s1_c64_r")
    for bad in ("dsc_k5_s1_c64_r", "x:dsc_k5_s1_c64_r", "3:"):
        with pytest.raises(ConfigError, match="POS:LAYER"):
            parse_insert(bad)


def test_shift_layer_keys_moves_layers_at_and_after_the_position() -> None:
    t = torch.zeros(1)
    state = {"layers.l0_conv.conv.weight": t, "layers.l1_conv.bn.bias": t, "layers.l12_pw.conv.weight": t,
             "classifier.fc.weight": t}
    assert set(shift_layer_keys(state, 1)) == {"layers.l0_conv.conv.weight", "layers.l2_conv.bn.bias",
                                               "layers.l13_pw.conv.weight", "classifier.fc.weight"}


def test_deepened_model_computes_what_the_parent_did_and_is_a_new_trial(run_dir: Path) -> None:
    parent_metrics = json.loads((run_dir / "final" / "trial-0000" / "metrics.json").read_text())["final"]
    r = deepen_trial(run_dir, trial=0, position=1, layer="conv_k5_s1_c4_r", seed=3)
    assert r.trial == 1 and r.parent == 0
    assert r.genome == "conv_k3_s1_c4-conv_k5_s1_c4_r-conv_k3_s1_c8-gap"
    assert r.max_logit_diff == 0.0
    assert (r.val_acc, r.test_acc) == (parent_metrics["val_acc"], parent_metrics["test_acc"])

    parent, child = _model(run_dir, 0), _model(run_dir, 1)
    x = torch.randn(16, 1, 6, 6).abs()
    with torch.no_grad():
        torch.testing.assert_close(child(x), parent(x), rtol=0, atol=1e-6)
    p, c = parent.state_dict(), child.state_dict()
    torch.testing.assert_close(c["layers.l2_conv.conv.weight"], p["layers.l1_conv.conv.weight"])
    assert c["layers.l1_conv.conv.weight"].shape == (4, 4, 5, 5)  # the new layer: fresh, nonzero weights
    assert c["layers.l1_conv.conv.weight"].abs().sum() > 0

    with SQLiteStorage(run_dir / DB_NAME, readonly=True) as s:
        rec = s.records()[-1]
    assert rec.number == 1 and rec.trial.origin == ORIGIN and rec.parent_ids == (0,)
    assert rec.trial.parents == (PARENT,) and rec.trial.ok and rec.cost["params"] > 0
    assert rec.trial.metrics["params"] > open_run(run_dir).trials[0].metrics["params"]


@pytest.mark.parametrize(("position", "layer", "match"), [
    (1, "conv_k3_s1_c4", "residual"),
    (1, "conv_k3_s1_c4_r-conv_k3_s1_c4_r", "--insert layer"),
    (1, "bogus", "malformed chain layer"),
    (1, "conv_k3_s2_c4_r", "stride 1"),
    (0, "conv_k3_s1_c1_r", "position 0"),
    (1, "conv_k3_s1_c8_r", "has 8 channels but its input at position 1 has 4"),
    (2, "dsc_k7_s1_c8_r", "is not one of"),  # the space's choices are checked too
])
def test_layers_that_cannot_start_as_the_identity_are_refused(
    run_dir: Path, position: int, layer: str, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        deepen_trial(run_dir, trial=0, position=position, layer=layer)
    assert len(open_run(run_dir).trials) == 1


def test_cli_deepen_then_retrain_continues_from_the_morphed_weights(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["deepen", str(run_dir), "--trial", "0", "--insert", "2:conv_k3_s1_c8_r"]) == 0
    out = capsys.readouterr().out
    assert "trial 1: conv_k3_s1_c4-conv_k3_s1_c8-conv_k3_s1_c8_r-gap" in out
    assert f"tinyevo retrain {run_dir} --trial 1 --continue" in out
    assert main(["retrain", str(run_dir), "--trial", "1", "--continue", "--epochs", "1", "--threads", "1",
                 "--quiet"]) == 0
    doc = json.loads((run_dir / "final" / "trial-0001" / "metrics.json").read_text())
    parent_total = json.loads((run_dir / "final" / "trial-0000" / "metrics.json").read_text())["final"]["epochs"]
    assert doc["final"]["epochs_total"] == parent_total + 1
    assert main(["deepen", str(run_dir), "--insert", "nonsense"]) == 2


def test_a_deeper_net_over_the_hard_limits_is_refused(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tinyevo.run import engine
    from tinyevo.strategies.base import Constraint

    parent_params = open_run(run_dir).trials[0].metrics["params"]
    real = engine.build_parts

    def limited(config: object) -> engine.RunParts:
        parts = real(config)
        problem = replace(parts.problem, constraints=(Constraint("params", upper=parent_params),))
        return replace(parts, problem=problem)

    monkeypatch.setattr(engine, "build_parts", limited)
    with pytest.raises(ConfigError, match="violates the run's hard limits"):
        deepen_trial(run_dir, trial=0, position=1, layer="conv_k3_s1_c4_r")
    assert len(open_run(run_dir).trials) == 1
