"""The CLI on a run directory someone else tampered with: one line on stderr, exit code 2, nothing executed."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tinyevo.cli.main import main
from tinyevo.storage import DB_NAME, SQLiteStorage


@pytest.fixture(scope="module")
def retrained_run(make_tiny_npz: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = make_tiny_npz(45, seed=0, n_test=9)
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(["search", "--data", str(data), "--budget", "2", "--epochs", "1", "--final-epochs", "1",
                 "--strategy", "random", "--quiet", "--out", str(out), "--seed", "1"]) == 0
    return out


def _copy(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(run, dst, ignore=shutil.ignore_patterns("*.lock"))
    return dst


class _Payload:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def _one_line_error(capsys: pytest.CaptureFixture[str], *words: str) -> None:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err


def test_pickled_model_file_gives_one_line_and_exit_2(retrained_run: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    run = _copy(retrained_run, tmp_path)
    with SQLiteStorage(run / DB_NAME, readonly=True) as s:
        weights = run / s.finals()[0].weights
    state = torch.load(weights, weights_only=True)
    torch.save({**state, "evil": _Payload()}, weights)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["export", str(run), "--format", "onnx", "--out", str(tmp_path / "exp")]) == 2
    _one_line_error(capsys, "not a plain weights file")
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE trials SET metrics = '{oops' WHERE number = 0",
        "UPDATE trials SET status = 'evil' WHERE number = 0",
        "UPDATE final_models SET weights = '/etc/passwd'",
    ],
)
def test_tampered_database_gives_one_line_and_exit_2(retrained_run: Path, tmp_path: Path, statement: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    run = _copy(retrained_run, tmp_path)
    con = sqlite3.connect(run / DB_NAME)
    con.execute("PRAGMA ignore_check_constraints = ON")
    con.execute(statement)
    con.commit()
    con.close()
    capsys.readouterr()
    assert main(["show", str(run)]) == 2
    _one_line_error(capsys, "damaged")


def test_database_with_a_trigger_gives_one_line_and_exit_2(retrained_run: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    run = _copy(retrained_run, tmp_path)
    con = sqlite3.connect(run / DB_NAME)
    con.execute("CREATE TRIGGER t AFTER INSERT ON state BEGIN DELETE FROM trials; END")
    con.commit()
    con.close()
    capsys.readouterr()
    assert main(["resume", str(run), "--quiet"]) == 2
    _one_line_error(capsys, "trigger 't'")
    assert sqlite3.connect(run / DB_NAME).execute("SELECT COUNT(*) FROM trials").fetchone()[0] >= 2


def test_resume_help_says_a_stored_scheduler_is_not_used(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["resume", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "never connected to" in out and "--scheduler again" in out


@pytest.mark.parametrize("planted", ["export", "out"])
def test_export_does_not_write_through_a_planted_folder_link(retrained_run: Path, tmp_path: Path, planted: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    run = _copy(retrained_run, tmp_path)
    with SQLiteStorage(run / DB_NAME, readonly=True) as s:
        number = s.finals()[0].trial
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "model.onnx").write_text("precious\n")
    if planted == "export":
        (run / "export").symlink_to(victim)
    else:
        (run / "export").mkdir(exist_ok=True)
        (run / "export" / f"trial-{number:04d}-onnx").symlink_to(victim)
    capsys.readouterr()
    assert main(["export", str(run), "--trial", str(number), "--format", "onnx"]) == 2
    _one_line_error(capsys, "symbolic link")
    assert sorted(p.name for p in victim.iterdir()) == ["model.onnx"]
    assert (victim / "model.onnx").read_text() == "precious\n"


def test_resume_runs_locally_instead_of_joining_the_stored_scheduler(retrained_run: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import json
    import socket

    pytest.importorskip("distributed")
    run = _copy(retrained_run, tmp_path)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    address = "tcp://127.0.0.1:%d" % listener.getsockname()[1]
    try:
        con = sqlite3.connect(run / DB_NAME)
        config = json.loads(con.execute("SELECT config FROM run").fetchone()[0])
        config["executor"].update(name="dask", scheduler=address)
        con.execute("UPDATE run SET config = ?", (json.dumps(config),))
        con.commit()
        con.close()
        capsys.readouterr()
        assert main(["resume", str(run), "--quiet"]) == 0
        err = capsys.readouterr().err
        with pytest.raises(BlockingIOError):  # nobody knocked
            listener.accept()
    finally:
        listener.close()
    assert "local cluster" in " ".join(err.split()) and address in err
