"""Export never crashes on TFLite-Micro's arena bisection, writes its folder completely or not at all, keeps its
files inside the output folder and keeps third-party output off the terminal.

These tests need the optional ``tinyevo[deploy]`` extra and skip without it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torchao", reason="needs the tinyevo[deploy] extra (torchao)")
pytest.importorskip("litert_torch", reason="needs the tinyevo[deploy] extra (litert-torch)")
pytest.importorskip("tflite_micro", reason="needs the tinyevo[deploy] extra (tflite-micro)")

from conftest import Trained, train_chain  # noqa: E402

import tinyevo.deploy.carray as carray  # noqa: E402
from tinyevo.cli.main import main  # noqa: E402
from tinyevo.data import Dataset  # noqa: E402
from tinyevo.deploy import DeployError, ExportOptions, QuantConfig, export_model  # noqa: E402
from tinyevo.deploy.tflm import probe_arena  # noqa: E402
from tinyevo.errors import ConfigError  # noqa: E402
from tinyevo.run.config import DataConfig, FinalConfig, LimitsConfig, RunConfig, SpaceConfig  # noqa: E402
from tinyevo.run.export import find_trial  # noqa: E402
from tinyevo.storage import DB_NAME, SQLiteStorage, TrialRecord, new_meta  # noqa: E402
from tinyevo.strategies.base import Status, Trial  # noqa: E402

FAST = QuantConfig(calibration_samples=128, qat_mode="never")
MLP = "flat-dense_c32-dense_c64"  # the default digits search's best model: TFLM crashed on its arena bisection


@pytest.fixture(scope="module")
def mlp(digits: Dataset) -> Trained:
    return train_chain(digits, MLP, epochs=3)


@pytest.mark.parametrize("fmt", ["tflite", "c"])
def test_the_default_runs_mlp_exports_with_an_arena_confirmed_on_tflm(tmp_path: Path, mlp: Trained,
                                                                      fmt: str) -> None:
    out = tmp_path / "out"
    report = export_model(mlp.ir, mlp.state, mlp.data, fmt=fmt, out_dir=out,  # type: ignore[arg-type]
                          options=ExportOptions(quant=FAST, test_samples=64))
    model = (out / "model.tflite").read_bytes()
    required = report.arena_bytes
    assert required is not None and report.int8_accuracy_tflm is not None and report.int8_accuracy_tflm > 0.5
    # independent re-check in fresh child processes: the model runs with `required` bytes and not with one less
    assert probe_arena(model, lower=required, upper=required).required == required
    assert probe_arena(model, lower=required - 1, upper=required - 1).required is None
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["model.tflite", "report.json"] + (["model.h", "model_arena.json"] if fmt == "c" else []))
    assert [Path(f) for f in report.files][0] == out / "model.tflite"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folder left beside it


def test_a_failure_mid_export_leaves_no_folder(tmp_path: Path, trained: Trained,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(out_dir: Path, model: bytes, **kw: object) -> None:
        (out_dir / "model.h").write_text("/* half */")
        raise DeployError("disk full (simulated)")

    monkeypatch.setattr(carray, "write_c_files", failing)
    out = tmp_path / "a" / "b" / "out"
    with pytest.raises(DeployError, match="simulated"):
        export_model(trained.ir, trained.state, trained.data, fmt="c", out_dir=out,
                     options=ExportOptions(quant=FAST, test_samples=16))
    assert list(tmp_path.iterdir()) == []  # neither the folder nor the parents created for it

    # an existing folder is left as it was: nothing replaced, nothing added
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "model.tflite").write_bytes(b"old")
    (existing / "notes.txt").write_text("mine")
    with pytest.raises(DeployError, match="simulated"):
        export_model(trained.ir, trained.state, trained.data, fmt="c", out_dir=existing,
                     options=ExportOptions(quant=FAST, test_samples=16))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing"]
    assert sorted(p.name for p in existing.iterdir()) == ["model.tflite", "notes.txt"]
    assert (existing / "model.tflite").read_bytes() == b"old"


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", ".", "", "a\\b"])
def test_names_that_leave_the_output_folder_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="plain file name"):
        ExportOptions(name=name)


def test_cli_refuses_a_name_with_a_path_in_one_line(run_dir: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o" / "p"
    code = main(["export", str(run_dir), "--name", "../../x", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "plain file name" in err
    assert list(tmp_path.iterdir()) == []
    code = main(["export", str(run_dir), "--format", "c", "--name", "my-net", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "C identifier" in err and list(tmp_path.iterdir()) == []


def _run_without_finals(root: Path, phase: str) -> Path:
    cfg = RunConfig(data=DataConfig(spec="digits"), space=SpaceConfig(name="chain"),
                    limits=LimitsConfig(device=None), final=FinalConfig(enabled=False), seed=0)
    with SQLiteStorage(root / DB_NAME) as s:
        s.create(new_meta(cfg.seed, cfg.to_json()))
        s.add(TrialRecord(Trial(0, "conv_k3_s1_c8-gap", Status.OK, {"val_acc": 0.9}), finished_at=time.time()))
        s.set_state("phase", phase)
    return root


def test_a_run_without_retrained_models_points_to_retrain(tmp_path: Path) -> None:
    done = _run_without_finals(tmp_path / "done", "done")
    with pytest.raises(DeployError, match="tinyevo retrain .*done"):
        find_trial(done)
    unfinished = _run_without_finals(tmp_path / "unfinished", "final")
    with pytest.raises(DeployError, match="tinyevo resume .*unfinished"):
        find_trial(unfinished)


def test_cli_export_output_is_clean_without_verbose(run_dir: Path, tmp_path: Path) -> None:
    """A fresh process, as the user runs it: third-party import-time and converter output would show there."""
    out = tmp_path / "out"
    env = dict(os.environ, COLUMNS="200")
    proc = subprocess.run([sys.executable, "-m", "tinyevo.cli.main", "export", str(run_dir), "--out", str(out),
                           "--test-samples", "32", "--calibration-samples", "64", "--qat", "never"],
                          capture_output=True, text=True, env=env, timeout=1800)  # a hang guard only
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "TFLite-Micro" in proc.stdout and f"wrote {out}" in proc.stdout.replace("\n", "")
    assert json.loads((out / "report.json").read_text())["test_samples"] == 32
