"""`tinyevo retrain RUN` on a finished tiny search (real estimator and training, 1 epoch).

(Named test_retrain_command.py: tests/run/test_retrain.py has the basename test_retrain, and two test modules
of one basename cannot be collected without __init__.py files.)
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tinyevo.cli.main import main
from tinyevo.cli.retrain import _parse_set
from tinyevo.errors import ConfigError
from tinyevo.run.retraining import best_retrained
from tinyevo.storage import DB_NAME, RetrainedModel, SQLiteStorage


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished search without final retraining (at least three feasible trials)."""
    rng = np.random.default_rng(0)
    n, k = 60, 3
    y = np.arange(n) % k
    x = rng.normal(size=(n, 6, 6)).astype(np.float32) + y[:, None, None]
    root = tmp_path_factory.mktemp("retrain")
    np.savez(root / "tiny.npz", x_train=x, y_train=y, x_test=x[:15], y_test=y[:15])
    out = root / "run"
    argv = ["search", "--data", str(root / "tiny.npz"), "--budget", "4", "--sram", "2KB", "--flash", "16KB",
            "--out", str(out), "--seed", "1", "--epochs", "1", "--strategy", "random", "--no-final", "--quiet"]
    assert main(argv) == 0
    with SQLiteStorage(out / DB_NAME, readonly=True) as s:
        assert s.finals() == [] and s.get_state("phase") == "done"
        assert sum(r.trial.ok for r in s.records()) >= 3
    return out


@pytest.fixture
def run_dir(searched: Path, tmp_path: Path) -> Path:
    """A private copy of the finished search."""
    return Path(shutil.copytree(searched, tmp_path / "run"))


def _finals(run_dir: Path) -> dict[int, RetrainedModel]:
    with SQLiteStorage(run_dir / DB_NAME, readonly=True) as s:
        return {f.trial: f for f in s.finals()}


def _starred(out: str) -> list[int]:
    """Trial numbers marked with '*' in the finals table."""
    return [int(cell.strip()[:-1]) for line in out.splitlines() for cell in line.split("│")[1:2]
            if cell.strip().endswith("*") and cell.strip()[:-1].isdigit()]


def test_retrain_top_2_prints_the_table_and_marks_the_run_model(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["retrain", str(run_dir), "--top-k", "2", "--final-epochs", "1", "--threads", "1"]) == 0
    cap = capsys.readouterr()
    finals = _finals(run_dir)
    assert len(finals) == 2
    chosen = best_retrained(list(finals.values()))
    assert chosen is not None
    assert "Retrained models" in cap.out and "* = the run's model" in cap.out
    assert _starred(cap.out) == [chosen.trial]
    assert f"run model (best final val_acc): trial {chosen.trial}" in cap.out
    assert "retraining 2 model(s) ..." in cap.err and cap.err.count("retrained trial") == 2
    for f in finals.values():
        assert f.metrics["epochs_configured"] == 1.0
        state = torch.load(run_dir / f.weights, weights_only=True)
        assert state and all(isinstance(v, torch.Tensor) for v in state.values())


def test_quiet_set_and_keep_done(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["retrain", str(run_dir), "-q", "--set", "lr=0.05", "--set", 'augment=["flip"]',
                 "--set", "optimizer=sgd", "--set", "label-smoothing=0.1", "--set", "restore_best=true"]) == 0
    cap = capsys.readouterr()
    assert cap.err == "" and "run model" not in cap.out  # one model: nothing to choose between
    (only,) = _finals(run_dir).values()
    doc = json.loads((run_dir / only.weights).with_name("metrics.json").read_text())
    cfg = doc["train_config"]
    assert cfg["lr"] == 0.05 and cfg["augment"] == ["flip"] and cfg["optimizer"] == "sgd"
    assert cfg["label_smoothing"] == 0.1 and cfg["restore_best"] is True
    history = json.loads((run_dir / only.weights).with_name("history.json").read_text())
    assert doc["final"]["epoch_restored"] in [h["epoch"] for h in history]

    assert main(["retrain", str(run_dir), "-q", "--top-k", "2", "--keep-done"]) == 0
    after = _finals(run_dir)
    assert len(after) == 2 and after[only.trial] == only  # kept, not retrained


def test_the_run_model_line_agrees_with_the_table_and_export(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Models retrained earlier stay in the run; the '*' row, the 'run model' line and export's default agree."""
    from tinyevo.run.export import find_trial

    assert main(["retrain", str(run_dir), "-q", "--top-k", "3"]) == 0
    finals = _finals(run_dir)
    assert len(finals) == 3
    stale = max(finals)  # one of the three, made the best on validation
    with SQLiteStorage(run_dir / DB_NAME) as s:
        s.add_final(replace(finals[stale], metrics={**finals[stale].metrics, "val_acc": 1.01}))
    capsys.readouterr()
    # retrain the two others (e.g. longer): the third keeps its earlier model, still the best on validation
    argv = ["retrain", str(run_dir), "-q", *(a for n in finals if n != stale for a in ("--trial", str(n)))]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert _starred(out) == [stale]
    assert f"run model (best final val_acc): trial {stale}" in out
    assert find_trial(run_dir)[1].number == stale


def test_retrain_a_chosen_trial(run_dir: Path) -> None:
    with SQLiteStorage(run_dir / DB_NAME, readonly=True) as s:
        ok = [r.number for r in s.records() if r.trial.ok]
    assert main(["retrain", str(run_dir), "-q", "--trial", str(ok[-1])]) == 0
    assert list(_finals(run_dir)) == [ok[-1]]


def test_a_final_cycle_on_train_and_val_keeps_the_held_out_val_acc(run_dir: Path) -> None:
    assert main(["retrain", str(run_dir), "-q", "--final-epochs", "1"]) == 0
    (first,) = _finals(run_dir).values()
    assert main(["retrain", str(run_dir), "-q", "--continue", "--keep-best", "--final-epochs", "1",
                 "--set", "train_on_val=true"]) == 0
    (last,) = _finals(run_dir).values()
    doc = json.loads((run_dir / last.weights).with_name("metrics.json").read_text())
    assert doc["train_config"]["train_on_val"] is True and doc["final"]["epochs_total"] == 2.0
    # no held-out estimate of its own: it keeps the one of the model it continued from, and is not rejected
    assert last.metrics["val_acc"] == first.metrics["val_acc"] and last.metrics["val_acc_inherited"] == 1.0
    assert 0.0 <= last.metrics["val_acc_seen"] <= 1.0
    assert not (run_dir / last.weights).with_name("rejected").exists()


def _one_line_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0, err
    return err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "foo=1"], "unknown training option(s) in [final]: foo"),
        (["--set", "noequals"], "--set needs KEY=VALUE"),
        (["--set", "=3"], "--set needs KEY=VALUE"),
        (["--set", "prune_ratio=0.5"], "prune_ratio in [final] is not supported"),
        (["--set", "epochs=0"], "final.epochs must be >= 1, got 0"),
        (["--torch-device", "gpu"], "unknown training device 'gpu'"),
        (["--device", "cuda"], "the PyTorch device is --torch-device"),
        (["--top-k", "0"], "final top_k must be an integer >= 1"),
        (["--final-workers", "0"], "final workers must be an integer >= 1"),
        (["--workers", "2"], "retraining is the final training, so it takes --final-workers"),  # one meaning
        (["--epochs", "5"], "retraining is the final training, so it takes --final-epochs"),
        (["--time-limit", "soon"], "duration"),
        (["--top-k", "two"], "invalid int"),
        (["--trial", "999"], "trial 999 cannot be retrained"),
        (["--set", "train_on_val=true", "--set", "restore_best=true"], "restore_best"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(
    run_dir: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _one_line_exit_2(["retrain", str(run_dir), *extra], capsys)
    assert message in err
    assert _finals(run_dir) == {} and not (run_dir / "final").exists()


def test_a_missing_run_dir_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "not a tinyevo run directory" in _one_line_exit_2(["retrain", str(tmp_path / "nope")], capsys)


def test_an_unfinished_search_is_exit_2(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with SQLiteStorage(run_dir / DB_NAME) as s:
        s.set_state("phase", "search")
    assert "has not finished" in _one_line_exit_2(["retrain", str(run_dir)], capsys)
    assert _finals(run_dir) == {}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour on a machine without a CUDA GPU")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_a_gpu_is_exit_2_before_training(
    run_dir: Path, device: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tinyevo.run import engine

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("no data may be loaded, nothing built or trained")

    monkeypatch.setattr(engine, "assemble_run", no_work)
    err = _one_line_exit_2(["retrain", str(run_dir), "--torch-device", device, "--top-k", "2"], capsys)
    assert "sees no CUDA GPU" in err
    assert _finals(run_dir) == {}
    with SQLiteStorage(run_dir / DB_NAME, readonly=True) as s:
        assert s.get_state("phase") == "done"


def test_parse_set_reads_toml_values() -> None:
    assert _parse_set(None) == {}
    assert _parse_set(["lr=0.05", "augment=['flip', 'shift']", "optimizer=sgd", "label-smoothing = 0.1",
                       "epochs=3", "grad_clip=1e3", 'schedule="constant"']) == {
        "lr": 0.05, "augment": ["flip", "shift"], "optimizer": "sgd", "label_smoothing": 0.1, "epochs": 3,
        "grad_clip": 1000.0, "schedule": "constant"}
    assert _parse_set(["device=cuda:0"]) == {"device": "cuda:0"}  # not TOML: taken as the bare string
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        _parse_set(["lr"])


def test_retrain_with_a_teacher_distils_from_it(run_dir: Path, tmp_path: Path) -> None:
    teacher_run = Path(shutil.copytree(run_dir, tmp_path / "teacher"))
    with SQLiteStorage(run_dir / DB_NAME, readonly=True) as s:
        ok = [r.number for r in s.records() if r.trial.ok]
    assert main(["retrain", str(teacher_run), "-q", "--trial", str(ok[0]), "--final-epochs", "2"]) == 0
    plain = Path(shutil.copytree(run_dir, tmp_path / "plain"))
    argv = ["-q", "--trial", str(ok[-1]), "--final-epochs", "1", "--set", "distill_alpha=0.7"]
    assert main(["retrain", str(plain), *argv]) == 0
    assert main(["retrain", str(run_dir), *argv, "--teacher", f"{teacher_run}:{ok[0]}"]) == 0
    doc = json.loads((run_dir / "final" / f"trial-{ok[-1]:04d}" / "metrics.json").read_text())
    assert doc["teacher"] == f"{teacher_run}:{ok[0]}" and doc["train_config"]["distill_alpha"] == 0.7
    weights = f"final/trial-{ok[-1]:04d}/model.pt"
    taught, alone = (torch.load(d / weights, weights_only=True) for d in (run_dir, plain))
    assert any(not torch.equal(taught[k], alone[k]) for k in alone)  # the same training but for the teacher
    # the teacher may also be given as the run alone (its run's model)
    again = Path(shutil.copytree(plain, tmp_path / "again"))
    assert main(["retrain", str(again), *argv, "--teacher", str(teacher_run)]) == 0
    by_run = torch.load(again / weights, weights_only=True)
    assert all(torch.equal(by_run[k], taught[k]) for k in taught)  # the same teacher, so the same training
    # a repeated --teacher is an ensemble, the mean of their logits: of one model twice, that model's logits
    twice = Path(shutil.copytree(plain, tmp_path / "twice"))
    assert main(["retrain", str(twice), *argv, "--teacher", str(teacher_run), "--teacher", str(teacher_run)]) == 0
    assert json.loads((twice / weights).with_name("metrics.json").read_text())["teacher"] == [str(teacher_run)] * 2
    by_twice = torch.load(twice / weights, weights_only=True)
    assert all(torch.equal(by_twice[k], taught[k]) for k in taught)
    # ... and of two different models, another training
    pair = Path(shutil.copytree(plain, tmp_path / "pair"))
    assert main(["retrain", str(pair), *argv, "--teacher", str(teacher_run), "--teacher", f"{plain}:{ok[-1]}"]) == 0
    by_pair = torch.load(pair / weights, weights_only=True)
    assert any(not torch.equal(by_pair[k], taught[k]) for k in taught)


@pytest.mark.parametrize(
    ("teacher", "message"),
    [("{tmp}/nope", "not a tinyevo run directory"), ("{run}", "has no retrained model"),
     ("{run}:999", "has no trial 999")],
)
def test_a_bad_teacher_is_one_line_exit_2_before_anything_changes(
    run_dir: Path, tmp_path: Path, teacher: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = teacher.format(tmp=tmp_path, run=run_dir)
    err = _one_line_exit_2(["retrain", str(run_dir), "--teacher", spec], capsys)
    assert message in err and f"teacher {spec!r}" in err
    assert _finals(run_dir) == {}
    with SQLiteStorage(run_dir / DB_NAME, readonly=True) as s:
        assert s.get_state("phase") == "done"
