"""Stopping a running `tinyevo search`: Ctrl-C (SIGINT) and SIGTERM stop it within seconds, its evaluation workers
are stopped with it, and `tinyevo resume` continues the run. SIGTERM also stops a search whose SIGINT is ignored (a
background job of a non-interactive shell inherits SIGINT ignored: what kept a benchmark's search running for
minutes after its SIGINT)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tinyevo.cli._signals import Terminated, sigterm_as_interrupt
from tinyevo.storage import DB_NAME, SQLiteStorage

BUDGET = 6
WIDE = {**os.environ, "COLUMNS": "500"}  # rich does not wrap the run directory's path


def _stored(db: Path) -> list[tuple[int, str, str]]:
    """(number, status, worker) of the trials committed so far (read-only; [] before the database exists)."""
    if not db.is_file():
        return []
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return list(con.execute("SELECT number, status, worker FROM trials ORDER BY number"))
        finally:
            con.close()
    except sqlite3.OperationalError:  # created but no table yet
        return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not reaped) is not running
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _default_sigint() -> None:
    """As at an interactive terminal: the test itself may run in a background job that inherited SIGINT ignored
    (a script's ``cmd &``), which the child would otherwise inherit too."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(("sig", "sigint_ignored", "code"), [
    (signal.SIGINT, False, 130),   # Ctrl-C
    (signal.SIGTERM, True, 143),   # `kill PID` of a background job whose SIGINT is ignored
])
def test_a_signal_stops_a_running_search_and_resume_continues_it(
    make_tiny_npz: Callable[..., Path], tmp_path: Path, sig: signal.Signals, sigint_ignored: bool, code: int
) -> None:
    data = make_tiny_npz(60, seed=0, n_test=15)
    run = tmp_path / "run"
    argv = [sys.executable, "-m", "tinyevo.cli.main", "search", "--data", str(data), "--budget", str(BUDGET),
            "--workers", "2", "--epochs", "30", "--strategy", "random", "--sram", "8KB", "--flash", "64KB",
            "--no-final", "--quiet", "--seed", "3", "--out", str(run)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=WIDE,
                            preexec_fn=_ignore_sigint if sigint_ignored else _default_sigint)
    try:
        deadline = time.monotonic() + 300  # start-up and the first trial, on a loaded machine
        while not any(s == "ok" for _, s, _ in _stored(run / DB_NAME)):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no trial within 300 s"
            time.sleep(0.05)
        before = _stored(run / DB_NAME)
        assert len(before) < BUDGET, "the search ended before it could be interrupted"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)  # generous: it takes well under a second
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code, err
    assert f"continue with: tinyevo resume {run}" in err
    workers = {int(w.rsplit(":", 1)[1]) for _, _, w in _stored(run / DB_NAME) if w}
    assert workers, "no trial recorded its worker"
    assert not [pid for pid in workers if _alive(pid)], "evaluation workers outlived the interrupted search"

    stopped = _stored(run / DB_NAME)
    resumed = subprocess.run([sys.executable, "-m", "tinyevo.cli.main", "resume", str(run), "--quiet"],
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    with SQLiteStorage(run / DB_NAME, readonly=True) as s:
        records = s.records()
        phase = s.get_state("phase")
    assert phase == "done"
    evaluated = [r for r in records if r.trial.status.value != "infeasible"]
    assert len(evaluated) == BUDGET
    # the trials stored before the signal are kept as they were
    after = {r.trial.number: (r.trial.status.value, r.worker) for r in records}
    assert {n: after[n] for n, _, _ in stopped} == {n: (s, w) for n, s, w in stopped}


def test_sigterm_raises_terminated_inside_and_the_handler_is_restored() -> None:
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    with pytest.raises(Terminated), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler runs at the next bytecode; never reached
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert issubclass(Terminated, KeyboardInterrupt)  # every `except KeyboardInterrupt` cleanup runs for it


def test_a_handler_the_caller_set_is_left_alone() -> None:
    seen: list[int] = []
    old = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, old)
