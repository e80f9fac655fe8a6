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
from tinyevo.run.assembly import make_space
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
    assert main(["retrain", str(out), "--trial", "0", "--final-epochs", "3", "--threads", "1", "--quiet"]) == 0
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


def test_deepened_model_computes_what_the_parent_did_and_is_a_derived_model(run_dir: Path) -> None:
    parent_metrics = json.loads((run_dir / "final" / "trial-0000" / "metrics.json").read_text())["final"]
    limit = open_run(run_dir).config.budget.trial_limit  # 20 for this budget-1 run
    r = deepen_trial(run_dir, trial=0, position=1, layer="conv_k5_s1_c4_r", seed=3)
    assert r.number == limit == 20 and r.parent == 0
    assert r.genome == "conv_k3_s1_c4-conv_k5_s1_c4_r-conv_k3_s1_c8-gap"
    assert r.max_logit_diff == 0.0
    assert (r.val_acc, r.test_acc) == (parent_metrics["val_acc"], parent_metrics["test_acc"])

    parent, child = _model(run_dir, 0), _model(run_dir, r.number)
    x = torch.randn(16, 1, 6, 6).abs()
    with torch.no_grad():
        torch.testing.assert_close(child(x), parent(x), rtol=0, atol=1e-6)
    p, c = parent.state_dict(), child.state_dict()
    torch.testing.assert_close(c["layers.l2_conv.conv.weight"], p["layers.l1_conv.conv.weight"])
    assert c["layers.l1_conv.conv.weight"].shape == (4, 4, 5, 5)  # the new layer: fresh, nonzero weights
    assert c["layers.l1_conv.conv.weight"].abs().sum() > 0

    with SQLiteStorage(run_dir / DB_NAME, readonly=True) as s:
        assert [rec.number for rec in s.records()] == [0]  # not a search trial
        (d,) = s.derived()
    assert d.number == r.number and d.origin == ORIGIN and d.parent == 0 and d.genome == r.genome
    assert d.info["layer"] == "conv_k5_s1_c4_r" and d.info["position"] == 1
    assert (run_dir / d.weights).is_file() and d.cost["params"] > open_run(run_dir).trials[0].metrics["params"]

    # deepening the derived model again: the next number, its parent the derived model
    r2 = deepen_trial(run_dir, trial=r.number, position=1, layer="conv_k3_s1_c4_r")
    assert (r2.number, r2.parent) == (limit + 1, limit)
    assert r2.genome == "conv_k3_s1_c4-conv_k3_s1_c4_r-conv_k5_s1_c4_r-conv_k3_s1_c8-gap"


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
    assert "derived model 20: conv_k3_s1_c4-conv_k3_s1_c8-conv_k3_s1_c8_r-gap" in out
    assert f"tinyevo retrain {run_dir} --trial 20 --continue" in out
    assert main(["retrain", str(run_dir), "--trial", "20", "--continue", "--final-epochs", "1", "--threads", "1",
                 "--quiet"]) == 0
    doc = json.loads((run_dir / "final" / "trial-0020" / "metrics.json").read_text())
    parent_total = json.loads((run_dir / "final" / "trial-0000" / "metrics.json").read_text())["final"]["epochs"]
    assert doc["final"]["epochs_total"] == parent_total + 1
    assert main(["deepen", str(run_dir), "--insert", "nonsense"]) == 2


def test_a_deeper_net_over_the_hard_limits_is_refused(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tinyevo.run import engine
    from tinyevo.strategies.base import Constraint

    parent_params = open_run(run_dir).trials[0].metrics["params"]
    real = engine.assemble_run

    def limited(config: object) -> engine.RunAssembly:
        parts = real(config)
        problem = replace(parts.problem, constraints=(Constraint("params", upper=parent_params),))
        return replace(parts, problem=problem)

    monkeypatch.setattr(engine, "assemble_run", limited)
    with pytest.raises(ConfigError, match="violates the run's hard limits"):
        deepen_trial(run_dir, trial=0, position=1, layer="conv_k3_s1_c4_r")
    assert len(open_run(run_dir).trials) == 1


def _search_signature(run_dir: Path) -> list[tuple[object, ...]]:
    """What a resumed search must reproduce: every stored search trial (timings aside)."""
    with SQLiteStorage(run_dir / DB_NAME, readonly=True) as s:
        return [(r.number, r.trial.genome, r.trial.status.value, r.trial.metrics.get("val_acc"),
                 r.trial.metrics.get("params"), r.trial.parents, r.trial.origin, r.batch, r.eval_seed)
                for r in s.records()]


def test_deepen_then_resume_replays_the_search_and_keeps_the_derived_model(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A search stopped early (e.g. by --time), retrained and deepened, then resumed: the resumed search's
    trials equal those of the uninterrupted search, and the deeper model stays addressable by its number."""
    data = trained.parent / "tiny.npz"
    full = tmp_path / "full"
    argv = ["search", "--data", str(data), "--budget", "3", "--device", "none", "--init", PARENT, "--out",
            str(full), "--seed", "1", "--epochs", "1", "--strategy", "random", "--no-final", "--quiet"]
    assert main(argv) == 0
    reference = _search_signature(full)
    assert len(reference) == 3

    stopped = tmp_path / "stopped"  # the same run, stopped after its first trial (its final phase done)
    stopped.mkdir()
    with SQLiteStorage(full / DB_NAME, readonly=True) as src, SQLiteStorage(stopped / DB_NAME) as dst:
        dst.create(src.meta())
        dst.add(src.records()[0])
        dst.set_state("phase", "done")
    assert main(["retrain", str(stopped), "--trial", "0", "--final-epochs", "1", "--threads", "1", "--quiet"]) == 0
    assert main(["deepen", str(stopped), "--trial", "0", "--insert", "1:conv_k3_s1_c4_r"]) == 0
    number = int(capsys.readouterr().out.split("derived model ")[1].split(":")[0])
    assert number not in range(open_run(stopped).config.budget.trial_limit)  # never a search trial's number

    assert main(["resume", str(stopped), "--quiet"]) == 0
    assert _search_signature(stopped) == reference
    view = open_run(stopped)
    assert [d.number for d in view.derived] == [number] and view.derived[0].parent == 0
    assert {f.trial for f in view.finals} == {0, number}
    from tinyevo.run.export import find_trial  # what export --trial and deepen --trial use

    _, found, weights = find_trial(stopped, trial=number)
    assert found.genome == view.derived[0].genome and weights == stopped / view.derived[0].weights
    capsys.readouterr()
    assert main(["show", str(stopped)]) == 0
    assert f"derived model {number} (deepen of trial 0)" in capsys.readouterr().out
    assert main(["retrain", str(stopped), "--trial", str(number), "--continue", "--final-epochs", "1", "--threads", "1",
                 "--quiet"]) == 0
    assert main(["resume", str(stopped), "--quiet"]) == 0  # and again, after retraining the derived model
    assert _search_signature(stopped) == reference


def test_a_run_with_a_deepen_trial_stored_the_old_way_still_resumes(tmp_path: Path) -> None:
    """Before derived models had their own table, deepen stored a search trial (origin "deepen"): opening the run
    for writing moves it to the derived models (same number), and the resumed search replays as it should."""
    from run_fakes import fake_config, fake_parts, trial_signature

    from tinyevo.run.engine import resume_run, start_run
    from tinyevo.storage import RetrainedModel, TrialRecord
    from tinyevo.strategies.base import Status, Trial

    cfg = fake_config(budget=6)
    start_run(cfg, run_dir=tmp_path / "full", parts=fake_parts(cfg))
    reference = trial_signature(tmp_path / "full")
    old = tmp_path / "old"
    old.mkdir()
    with SQLiteStorage(tmp_path / "full" / DB_NAME, readonly=True) as src, SQLiteStorage(old / DB_NAME) as dst:
        dst.create(src.meta())
        first = src.records()[:2]
        for r in first:
            dst.add(r)
        g = first[1].trial.genome  # the old deepen: a trial numbered after the stored ones
        legacy = Trial(number=2, genome=g, status=Status.OK, metrics={"val_acc": 0.5}, parents=(g,), origin=ORIGIN)
        dst.add(TrialRecord(trial=legacy, cost={"macs": 1.0}, parent_ids=(1,), finished_at=7.0, worker=ORIGIN))
        dst.add_final(RetrainedModel(trial=2, genome=g, metrics={"val_acc": 0.5}, weights="final/trial-0002/model.pt"))
    resume_run(old, parts=fake_parts(cfg))
    assert trial_signature(old) == reference
    with SQLiteStorage(old / DB_NAME, readonly=True) as s:
        (d,) = s.derived()
    assert (d.number, d.genome, d.parent, d.origin, dict(d.cost)) == (2, g, 1, ORIGIN, {"macs": 1.0})
    assert d.weights == "final/trial-0002/model.pt"
