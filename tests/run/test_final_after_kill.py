"""kill -9 during the final retraining (of a search, or of ``tinyevo retrain``) at a random moment, then the same
command again: files and database agree, and the run equals an uninterrupted one (issue 17)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import fake_final
from run_fakes import trial_signature

from tinyevo.run.engine import start_run
from tinyevo.storage import DB_NAME, SQLiteStorage, count_rows

SCRIPT = Path(__file__).resolve().parent / "fake_final.py"


def _run(mode: str, run_dir: Path, sleep_s: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(SCRIPT), mode, str(run_dir), str(sleep_s)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finals(run: Path) -> dict[int, tuple[float, str]]:
    """trial -> (val_acc, weights sha256), checking that every final model's files agree with the database."""
    out = {}
    with SQLiteStorage(run / DB_NAME, readonly=True) as s:
        for f in s.finals():
            weights = run / f.weights
            sha = hashlib.sha256(weights.read_bytes()).hexdigest()
            assert s.get_state(f"final_sha256:{f.trial}") == sha, f
            doc = json.loads(weights.with_name("metrics.json").read_text())
            assert doc["final"]["val_acc"] == f.metrics["val_acc"], f
            out[f.trial] = (f.metrics["val_acc"], sha)
    assert not list(run.glob("final/*/.incoming"))
    return out


def _phase(db: Path) -> str | None:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            row = con.execute("SELECT value FROM state WHERE key = 'phase'").fetchone()
            return None if row is None else str(row[0])
        finally:
            con.close()
    except sqlite3.Error:
        return None


def _kill_after(p: subprocess.Popen[bytes], db: Path, finals: int, delay: float, *, phase: str | None = None) -> None:
    deadline = time.monotonic() + 120
    while (count_rows(db, "final_models") < finals or (phase is not None and _phase(db) != phase)) and p.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(delay)
    if p.poll() is None:
        os.kill(p.pid, signal.SIGKILL)
    p.communicate(timeout=600)  # hang guard only


def test_kill_9_during_final_retraining_then_resume(tmp_path: Path) -> None:
    rng = random.Random()
    config = fake_final.CONFIG()
    full = tmp_path / "full"
    start_run(config, run_dir=full, parts=fake_final.PARTS(config))
    want = _finals(full)
    assert len(want) >= 2
    target, delay = rng.randrange(len(want)), rng.uniform(0.0, 0.06)
    note = f"target={target} delay={delay:.3f}"
    killed = tmp_path / "killed"
    _kill_after(_run("start", killed, 0.03), killed / DB_NAME, target, delay, phase="final")
    p = _run("resume", killed, 0.0)
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, f"{note}: {err.decode()}"
    assert trial_signature(killed) == trial_signature(full), note
    assert _finals(killed) == want, note


def test_kill_9_during_retrain_then_retrain_again(tmp_path: Path) -> None:
    rng = random.Random()
    config = fake_final.CONFIG()
    run = tmp_path / "run"
    start_run(config, run_dir=run, parts=fake_final.PARTS(config))
    before = _finals(run)
    reference = tmp_path / "reference"  # what an uninterrupted retrain gives
    start_run(config, run_dir=reference, parts=fake_final.PARTS(config))
    p = _run("retrain", reference, 0.0)
    assert p.communicate(timeout=600) and p.returncode == 0
    want = _finals(reference)
    assert {v for v, _ in want.values()} != {v for v, _ in before.values()}
    target, delay = rng.randrange(len(before)), rng.uniform(0.0, 0.06)
    note = f"target={target} delay={delay:.3f}"
    # (the retraining replaces models already stored: wait until it sets the phase, then a random moment)
    p = _run("retrain", run, 0.03)
    _kill_after(p, run / DB_NAME, 0, 0.03 * target + delay, phase="final")
    # (a kill between a model's commit and the move of its files leaves them for the next command to finish)
    p = _run("retrain", run, 0.0)
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, f"{note}: {err.decode()}"
    assert _finals(run) == want, note
    assert trial_signature(run) == trial_signature(reference), note
