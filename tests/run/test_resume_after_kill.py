"""kill -9 of a running search at a random point, then resume: the trials equal those of an uninterrupted
run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import fake_search
import pytest
from run_fakes import trial_signature

from tinyevo.run.engine import start_run
from tinyevo.storage import DB_NAME, count_rows

SCRIPT = Path(__file__).resolve().parent / "fake_search.py"


def _run(mode: str, run_dir: Path, batch: int, sleep_s: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), mode, str(run_dir), str(batch), str(sleep_s)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.parametrize("batch", [1, 3])
def test_kill_9_then_resume_equals_uninterrupted(tmp_path: Path, batch: int) -> None:
    rng = random.Random()
    target = rng.randint(2, 20)  # commits to wait for before the kill
    extra_delay = rng.uniform(0.0, 0.03)  # then kill at a random moment (mid-evaluation, mid-commit, ...)
    note = f"batch={batch} target={target} delay={extra_delay:.3f}"

    full = tmp_path / "full"  # the uninterrupted reference, in-process with the same config and fakes
    config = fake_search.CONFIG(batch)
    start_run(config, run_dir=full, parts=fake_search.PARTS(config))

    killed = tmp_path / "killed"
    p = _run("start", killed, batch, 0.01)
    deadline = time.monotonic() + 60
    while count_rows(killed / DB_NAME) < target and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(extra_delay)
    finished_before_kill = p.poll() is not None
    os.kill(p.pid, signal.SIGKILL)
    p.communicate(timeout=1800)  # hang guards only, never a speed check
    assert finished_before_kill or p.returncode == -signal.SIGKILL, note
    partial = trial_signature(killed)
    assert partial == [s for s in trial_signature(full) if s[0] in {x[0] for x in partial}], note

    p = _run("resume", killed, batch, 0.0)
    out, err = p.communicate(timeout=1800)
    assert p.returncode == 0, f"{note}: {err.decode()}"
    assert trial_signature(killed) == trial_signature(full), note
