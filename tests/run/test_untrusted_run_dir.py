"""Resuming, retraining and reporting a run directory someone else made: real attacks, none may succeed."""

from __future__ import annotations

import pickle
import socket
import sqlite3
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from run_fakes import fake_config, fake_parts

from tinyevo.errors import StorageError
from tinyevo.run.config import ExecutorConfig
from tinyevo.run.engine import resume_run
from tinyevo.storage import DB_NAME, RetrainedModel, SQLiteStorage, TrialRecord, new_meta
from tinyevo.strategies.base import Status, Trial


def _new_run(run_dir: Path, cfg, *, trials: int = 0) -> None:  # type: ignore[no-untyped-def]
    """A stored run (made directly, without the engine) with ``trials`` fake stored trials."""
    with SQLiteStorage(run_dir / DB_NAME) as s:
        s.create(new_meta(cfg.seed, cfg.to_json()))
        for n in range(trials):
            s.add(TrialRecord(trial=Trial(number=n, genome=f"g{n}", status=Status.OK, metrics={"val_acc": 0.5})))


class _Listener:
    """A TCP port on 127.0.0.1 that records every connection made to it (an attacker's 'Dask scheduler')."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = "tcp://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def test_resume_never_connects_to_a_scheduler_stored_in_the_run(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    listener = _Listener()
    try:
        cfg = fake_config(budget=2)
        stored = replace(cfg, executor=ExecutorConfig(name="dask", workers=1, scheduler=listener.address,
                                                      batch_size=1))
        _new_run(tmp_path / "r", stored)
        res = resume_run(tmp_path / "r", parts=fake_parts(cfg))  # a local cluster instead
        assert res.stopped == "budget" and len([t for t in res.trials if t.status is Status.OK]) >= 1
    finally:
        listener.close()
    assert listener.connections == 0


def test_resume_joins_a_scheduler_only_when_the_caller_names_it(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    from tinyevo.errors import ConfigError

    listener = _Listener()
    try:
        cfg = fake_config(budget=2)
        _new_run(tmp_path / "r", cfg)
        named = ExecutorConfig(name="dask", workers=1, scheduler=listener.address)
        with pytest.raises(ConfigError, match="Dask scheduler"):  # (our listener speaks no Dask)
            resume_run(tmp_path / "r", parts=fake_parts(cfg), executor_config=named)
    finally:
        listener.close()
    assert listener.connections >= 1  # the oracle: an address the user passes is used


def test_resume_refuses_a_database_with_a_trigger_and_the_trigger_never_fires(tmp_path: Path) -> None:
    cfg = fake_config(budget=3)
    _new_run(tmp_path / "r", cfg)
    db = tmp_path / "r" / DB_NAME
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    con.execute("CREATE TRIGGER pwn AFTER INSERT ON state BEGIN "
                "INSERT INTO trials SELECT 99, 'pwned', 'ok', '{}', '{}', 0, NULL, '[]', '[]', 0, 'x', 0, NULL, "
                "0, 0, 0, 'x'; END")
    con.commit()
    con.close()
    with pytest.raises(StorageError, match="trigger 'pwn'"):
        resume_run(tmp_path / "r", parts=fake_parts(cfg))
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*) FROM trials WHERE genome = 'pwned'").fetchone()[0] == 0
    con.close()


def test_resume_does_not_truncate_the_target_of_a_planted_lock_link(tmp_path: Path) -> None:
    cfg = fake_config(budget=2)
    _new_run(tmp_path / "r", cfg)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "r" / "trials.db.lock").unlink()  # (left by _new_run; the attacker ships a link instead)
    (tmp_path / "r" / "trials.db.lock").symlink_to(victim)
    with pytest.raises(StorageError, match="symbolic link"):
        resume_run(tmp_path / "r", parts=fake_parts(cfg))
    assert victim.read_text() == "precious\n"


def test_retraining_does_not_write_through_a_planted_final_link(tmp_path: Path) -> None:
    from tinyevo.run.retraining import retrain

    cfg = fake_config()
    parts = fake_parts(cfg)
    run = tmp_path / "r"
    run.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run / "final").symlink_to(elsewhere)
    genome = str(parts.space.sample(__import__("numpy").random.default_rng(0)))
    trial = Trial(number=0, genome=genome, status=Status.OK, metrics={"val_acc": 0.5})
    with pytest.raises(StorageError, match="symbolic link"):
        retrain(trial, space=parts.space, data=parts.data, train_config=None, seed=0, run_dir=run, cost={},
                trainer=parts.trainer)
    assert list(elsewhere.iterdir()) == []


def test_retraining_replaces_planted_file_links_instead_of_writing_through_them(tmp_path: Path) -> None:
    from tinyevo.run.retraining import model_dir, retrain

    cfg = fake_config()
    parts = fake_parts(cfg)
    run = tmp_path / "r"
    out = model_dir(run, 0)
    out.mkdir(parents=True)
    victims = {}
    for name in ("model.pt", "genome.txt", "metrics.json", "history.json", "model.pt.tmp", "genome.txt.tmp"):
        victims[name] = tmp_path / f"victim-{name}"
        victims[name].write_text("precious\n")
        (out / name).symlink_to(victims[name])
    genome = str(parts.space.sample(__import__("numpy").random.default_rng(0)))
    trial = Trial(number=0, genome=genome, status=Status.OK, metrics={"val_acc": 0.5})
    retrain(trial, space=parts.space, data=parts.data, train_config=None, seed=0, run_dir=run, cost={},
            trainer=parts.trainer)
    assert all(v.read_text() == "precious\n" for v in victims.values())
    assert not (out / "model.pt").is_symlink() and set(torch.load(out / "model.pt", weights_only=True)) == {
        "weight", "bias"}
    assert (out / "genome.txt").read_text() == genome + "\n"


class _Payload:
    """Unpickling this would run ``exec`` in the loading process."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_a_pickled_model_file_is_refused_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tinyevo.run.retraining import load_weights

    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "model.pt"
    torch.save({"weight": _Payload()}, evil)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a zip file at all")
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(_Payload()))
    for path in (evil, garbage, raw):
        with pytest.raises(StorageError, match="not a plain weights file") as info:
            load_weights(path)
        assert "\n" not in str(info.value)
    assert not (tmp_path / "PWNED").exists()
    torch.save({"w": torch.zeros(2)}, tmp_path / "ok.pt")
    assert set(load_weights(tmp_path / "ok.pt")) == {"w"}


def test_report_does_not_write_through_planted_links(tmp_path: Path) -> None:
    from tinyevo.run.report import write_report

    cfg = fake_config(budget=2)
    run = tmp_path / "r"
    _new_run(run, cfg)
    with SQLiteStorage(run / DB_NAME) as s:
        s.add_final(RetrainedModel(0, "g0", {"val_acc": 0.5}, "final/trial-0000/model.pt"))
    (run / "report").mkdir()
    victim = tmp_path / "victim.html"
    victim.write_text("precious\n")
    (run / "report" / "report.html").symlink_to(victim)
    try:
        files = write_report(run)
    except StorageError:
        pytest.fail("the report refused a run with a link inside report/ instead of replacing the link")
    assert victim.read_text() == "precious\n"
    assert not files.html.is_symlink() and "tinyevo run report" in files.html.read_text()
    # a linked report directory is refused outright
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for p in (run / "report").iterdir():
        p.unlink()
    (run / "report").rmdir()
    (run / "report").symlink_to(elsewhere)
    with pytest.raises(StorageError, match="symbolic link"):
        write_report(run)
    assert list(elsewhere.iterdir()) == []
