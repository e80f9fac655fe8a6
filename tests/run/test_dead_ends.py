"""No run directory may become a dead end: an interrupted creation, an interrupted retraining commit, a failed
resume and a missing teacher all leave a run that ``search`` / ``resume`` / ``retrain`` can carry on (fast fakes)."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from run_fakes import fake_config, fake_parts, trial_signature

import tinyevo.run.engine as engine_mod
import tinyevo.run.retraining as final_mod
from tinyevo.errors import ConfigError, StorageError
from tinyevo.run.engine import resume_run, retrain_run, start_run
from tinyevo.storage import DB_NAME, SQLiteStorage
from tinyevo.storage.sqlite import _SCHEMA


class _Killed(BaseException):
    """Stands for a kill -9 at that point (a BaseException, so nothing on the way cleans up)."""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- run creation -----------------------------------------------------------------------------------------


def test_a_kill_while_the_run_is_created_leaves_a_directory_search_can_use(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    config = fake_config(executor="inprocess", budget=4)
    run = tmp_path / "run"

    def killed(self: Any, meta: Any) -> None:
        raise _Killed

    with monkeypatch.context() as m:
        m.setattr(SQLiteStorage, "create", killed)
        with pytest.raises(_Killed):
            start_run(config, run_dir=run, parts=fake_parts(config))
    assert not (run / DB_NAME).exists()  # no database that holds no run
    start_run(config, run_dir=run, parts=fake_parts(config))  # the same command again works
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE((run / DB_NAME).stat().st_mode) == 0o644 & ~umask  # not mkstemp's 0600
    full = tmp_path / "full"
    start_run(config, run_dir=full, parts=fake_parts(config))
    assert trial_signature(run) == trial_signature(full)


def test_a_database_left_by_an_interrupted_creation_is_replaced(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    con = sqlite3.connect(run / DB_NAME)  # what an older tinyevo left: the schema, no run record
    con.executescript(_SCHEMA)
    con.close()
    with pytest.raises(StorageError, match="holds no run.*tinyevo search"):
        resume_run(run, parts=fake_parts(fake_config(executor="inprocess")))
    config = fake_config(executor="inprocess", budget=3)
    start_run(config, run_dir=run, parts=fake_parts(config))
    assert len(trial_signature(run)) == 3


def test_a_database_holding_a_run_is_never_replaced(tmp_path: Path) -> None:
    config = fake_config(executor="inprocess", budget=2)
    run = tmp_path / "run"
    start_run(config, run_dir=run, parts=fake_parts(config))
    before = trial_signature(run)
    with pytest.raises(StorageError, match="already holds a run"):
        start_run(config, run_dir=run, parts=fake_parts(config))
    assert trial_signature(run) == before


def test_a_seed_beyond_64_bits_is_one_error_before_anything_exists(tmp_path: Path) -> None:
    config = replace(fake_config(executor="inprocess"), seed=2**70)
    with pytest.raises(ConfigError, match=r"--seed must be at most 2\*\*63-1"):
        start_run(config, run_dir=tmp_path / "run", parts=fake_parts(fake_config(executor="inprocess")))
    assert not (tmp_path / "run").exists()


# --- final retraining: commit order and repair --------------------------------------------------------------


def _other_trainer(ir: Any, data: Any, *, config: Any, seed: int, **_: Any) -> Any:
    import torch

    torch.manual_seed(seed + 1000)
    return SimpleNamespace(model=torch.nn.Linear(3, 2), history=(), metrics={"val_acc": 0.25, "test_acc": 0.5})


def _finished(tmp_path: Path) -> tuple[Path, Any]:
    config = fake_config(executor="inprocess", budget=6, final=True)
    run = tmp_path / "run"
    start_run(config, run_dir=run, parts=fake_parts(config))
    return run, config


def _agree(run: Path) -> list[int]:
    """The final models whose files agree with the database (weights and val_acc)."""
    out = []
    with SQLiteStorage(run / DB_NAME, readonly=True) as s:
        for f in s.finals():
            doc = json.loads((run / f.weights).with_name("metrics.json").read_text())
            assert doc["final"]["val_acc"] == f.metrics["val_acc"], f
            assert s.get_state(f"final_sha256:{f.trial}") == _sha(run / f.weights)
            out.append(f.trial)
    return out


def test_a_kill_between_retraining_and_commit_leaves_files_and_database_agreeing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run, config = _finished(tmp_path)
    chosen = _agree(run)
    assert chosen
    parts = fake_parts(config)
    parts.trainer = _other_trainer

    def killed(*args: Any, **kwargs: Any) -> None:
        raise _Killed

    with monkeypatch.context() as m:
        m.setattr(SQLiteStorage, "add_final_checked", killed)
        m.setattr(SQLiteStorage, "add_final", killed)
        with pytest.raises(_Killed):
            retrain_run(run, parts=parts)
    assert _agree(run) == chosen  # the earlier models, files and rows, as they were
    resume_run(run, parts=fake_parts(config))  # and a resume accepts them
    assert _agree(run) == chosen
    retrain_run(run, parts=parts)  # the retraining itself, done again, replaces them
    with SQLiteStorage(run / DB_NAME, readonly=True) as s:
        assert {f.metrics["val_acc"] for f in s.finals()} == {0.25}
    assert _agree(run) == chosen
    assert not list(run.glob("final/*/.incoming"))


def test_a_kill_after_the_commit_is_finished_by_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run, config = _finished(tmp_path)
    parts = fake_parts(config)
    parts.trainer = _other_trainer

    def killed(*args: Any, **kwargs: Any) -> None:
        raise _Killed

    with monkeypatch.context() as m:
        m.setattr(final_mod, "_promote", killed)  # killed after the database commit, before the files move
        with pytest.raises(_Killed):
            retrain_run(run, parts=parts)
    resume_run(run, parts=fake_parts(config))
    with SQLiteStorage(run / DB_NAME, readonly=True) as s:
        assert {f.metrics["val_acc"] for f in s.finals()} == {0.25}  # the committed model, not retrained again
    _agree(run)
    assert not list(run.glob("final/*/.incoming"))


def test_resume_repairs_files_that_disagree_with_the_database(tmp_path: Path) -> None:
    run, config = _finished(tmp_path)
    chosen = _agree(run)
    # what the old commit order left after a kill: new files, the old database row
    weights = run / f"final/trial-{chosen[0]:04d}/model.pt"
    import torch

    torch.save({"weight": torch.zeros(2, 3), "bias": torch.zeros(2)}, weights)
    doc = json.loads(weights.with_name("metrics.json").read_text())
    doc["final"]["val_acc"] = 0.125
    weights.with_name("metrics.json").write_text(json.dumps(doc))
    resume_run(run, parts=fake_parts(config))
    assert _agree(run) == chosen  # retrained: files and database agree again


def test_a_legacy_final_without_fingerprint_is_checked_by_its_metrics(tmp_path: Path) -> None:
    run, config = _finished(tmp_path)
    chosen = _agree(run)
    with sqlite3.connect(run / DB_NAME) as con:  # a run stored before fingerprints
        con.execute("DELETE FROM state WHERE key LIKE 'final_sha256:%'")
        con.execute("UPDATE final_models SET metrics = ?", (json.dumps({"val_acc": 0.125}),))
    con.close()
    resume_run(run, parts=fake_parts(config))
    assert _agree(run) == chosen


# --- phase and teacher --------------------------------------------------------------------------------------


def test_a_failed_resume_keeps_a_finished_run_finished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run, config = _finished(tmp_path)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ConfigError("boom")

    with monkeypatch.context() as m:
        m.setattr(engine_mod, "repair_finals", broken)
        with pytest.raises(ConfigError, match="boom"):
            resume_run(run, parts=fake_parts(config))
    with SQLiteStorage(run / DB_NAME, readonly=True) as s:
        assert s.get_state("phase") == "done"
    retrain_run(run, parts=fake_parts(config))  # not refused as an unfinished search


def test_a_missing_final_teacher_fails_before_the_search(tmp_path: Path) -> None:
    config = fake_config(executor="inprocess", budget=4, final=True)
    config = replace(config, final=replace(config.final, teacher=str(tmp_path / "no-such-run")))
    calls: list[int] = []

    def evaluate(task: Any) -> dict[str, float]:
        calls.append(task.number)
        return {"val_acc": 0.5}

    parts = fake_parts(config)
    parts.evaluate = evaluate
    with pytest.raises(ConfigError, match="teacher"):
        start_run(config, run_dir=tmp_path / "run", parts=parts, executor=_inprocess())
    assert calls == []
    assert not (tmp_path / "run" / DB_NAME).exists()


def _inprocess() -> Any:
    from tinyevo.executors import create_executor

    return create_executor("inprocess", workers=1)


def test_a_teacher_lost_after_the_search_can_be_replaced_by_retrain(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    config = fake_config(executor="inprocess", budget=4, final=True)
    config = replace(config, final=replace(config.final, teacher="gone"))
    available = {"gone"}

    def load_teacher(spec: Any) -> Any:  # a Teacher record or its one spec string
        if str(spec) not in available:
            raise ConfigError(f"teacher {spec!r}: no such run")
        return SimpleNamespace(name=str(spec))

    monkeypatch.setattr(engine_mod, "load_teacher", load_teacher)
    monkeypatch.setattr(final_mod, "load_teacher", load_teacher)
    seen: list[str] = []

    def trainer(ir: Any, data: Any, *, config: Any, seed: int, teacher: Any = None) -> Any:
        if teacher is None or teacher.name not in available:
            raise ConfigError("teacher vanished")
        seen.append(teacher.name)
        return _other_trainer(ir, data, config=config, seed=seed)

    parts = fake_parts(config)
    parts.trainer = trainer

    def check(cfg: Any) -> None:  # the teacher is there when the search starts, gone when it ends
        load_teacher(cfg.final.teacher)
        available.discard("gone")

    monkeypatch.setattr(engine_mod, "check_final_teacher", check)
    run = tmp_path / "run"
    with pytest.raises(ConfigError, match="teacher"):
        start_run(config, run_dir=run, parts=parts)
    with pytest.raises(ConfigError, match="teacher"):
        resume_run(run, parts=parts)
    with SQLiteStorage(run / DB_NAME, readonly=True) as s:
        assert s.get_state("phase") == "final"
    available.add("other")
    other = replace(config, final=replace(config.final, teacher="other"))
    finals = retrain_run(run, config=other, parts=parts)
    assert finals and seen == ["other"] * len(finals)


def test_evaluations_get_the_run_weight_store(tmp_path: Path) -> None:
    """Every evaluation of a run is told the run's weight store (the ``inherit`` estimator keeps its weights
    there), so a resumed run and every worker see the same weights."""
    config = fake_config(executor="inprocess", budget=3)
    seen: list[str | None] = []

    def evaluate(task: Any) -> dict[str, float]:
        seen.append(task.store_dir)
        return {"val_acc": 0.5}

    parts = fake_parts(config)
    parts.evaluate = evaluate
    start_run(config, run_dir=tmp_path / "run", parts=parts)
    assert seen and set(seen) == {str(tmp_path / "run" / "weights")}
