"""A run database made by someone else: planted links, foreign schema objects (triggers, views), tampered rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tinyevo.errors import StorageError
from tinyevo.storage import RetrainedModel, SQLiteStorage, TrialRecord, new_meta
from tinyevo.strategies.base import Status, Trial


def _make_run(db: Path, trials: int = 2) -> None:
    with SQLiteStorage(db) as s:
        s.create(new_meta(1, {"seed": 1}))
        for n in range(trials):
            s.add(TrialRecord(trial=Trial(number=n, genome=f"g{n}", status=Status.OK, metrics={"val_acc": 0.5})))
        s.add_final(RetrainedModel(0, "g0", {"val_acc": 0.5}, "final/trial-0000/model.pt"))


def _sql(db: Path, *statements: str) -> None:
    con = sqlite3.connect(db)
    try:
        for st in statements:
            con.execute(st)
        con.commit()
    finally:
        con.close()


def _state(db: Path) -> dict[str, str]:
    con = sqlite3.connect(db)
    try:
        return dict(con.execute("SELECT key, value FROM state").fetchall())
    finally:
        con.close()


# --- planted links ---


def test_lock_file_link_does_not_truncate_its_target(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "trials.db.lock").symlink_to(victim)
    with pytest.raises(StorageError, match="symbolic link"):
        SQLiteStorage(run / "trials.db")
    assert victim.read_text() == "precious\n"
    assert not (run / "trials.db").exists()


@pytest.mark.parametrize("name", ["trials.db", "trials.db-wal", "trials.db-shm"])
def test_database_file_links_are_refused_for_writing_and_reading(tmp_path: Path, name: str) -> None:
    run = tmp_path / "run"
    _make_run(run / "trials.db")
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"x" * 100)
    target = run / name
    if target.exists():
        target.rename(tmp_path / "moved")
    if name == "trials.db":
        (tmp_path / "moved").rename(victim)  # a link to a (real) database elsewhere is refused too
    target.symlink_to(victim)
    before = victim.read_bytes()
    with pytest.raises(StorageError, match="symbolic link"):
        SQLiteStorage(run / "trials.db")
    with pytest.raises(StorageError, match="symbolic link"):
        SQLiteStorage(run / "trials.db", readonly=True)
    assert victim.read_bytes() == before


def test_lock_file_that_is_a_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    import os

    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(run / "trials.db.lock")
    with pytest.raises(StorageError, match="not a regular file"):
        SQLiteStorage(run / "trials.db")


def test_existing_lock_file_is_not_truncated_and_still_locks(tmp_path: Path) -> None:
    db = tmp_path / "trials.db"
    _make_run(db)
    (tmp_path / "trials.db.lock").write_bytes(b"keep")
    with SQLiteStorage(db):
        with pytest.raises(StorageError, match="being written by another"):
            SQLiteStorage(db)
    assert (tmp_path / "trials.db.lock").read_bytes() == b"keep"


# --- foreign schema ---


def test_trigger_is_refused_and_never_fires(tmp_path: Path) -> None:
    db = tmp_path / "trials.db"
    _make_run(db)
    _sql(db, "CREATE TRIGGER pwn AFTER INSERT ON trials BEGIN INSERT OR REPLACE INTO state VALUES ('pwned', '1'); END",
         "CREATE TRIGGER pwn2 AFTER INSERT ON state BEGIN INSERT OR REPLACE INTO state VALUES ('pwned', '2'); END")
    for readonly in (False, True):
        with pytest.raises(StorageError, match="trigger 'pwn"):
            SQLiteStorage(db, readonly=readonly)
    assert "pwned" not in _state(db)


def test_view_unknown_table_and_changed_table_are_refused(tmp_path: Path) -> None:
    cases = {
        "view": ["CREATE VIEW v AS SELECT * FROM trials"],
        "unknown table": ["CREATE TABLE extra (x)"],
        "unknown index": ["CREATE INDEX trials_status ON trials (status)"],
        # the same name, another definition (no CHECK on status): not tinyevo's table
        "defined": ["DROP TABLE trials", "CREATE TABLE trials (number INTEGER PRIMARY KEY, genome TEXT)"],
    }
    for i, (what, statements) in enumerate(cases.items()):
        db = tmp_path / f"r{i}" / "trials.db"
        _make_run(db)
        _sql(db, *statements)
        with pytest.raises(StorageError, match=what):
            SQLiteStorage(db)


def test_what_tinyevo_creates_is_accepted_also_with_tables_missing(tmp_path: Path) -> None:
    db = tmp_path / "trials.db"
    _make_run(db)
    with SQLiteStorage(db, readonly=True) as s:
        assert s.count() == 2
    _sql(db, "DROP TABLE final_models")  # (a run made before a table existed: the table is created on open)
    with SQLiteStorage(db) as s:
        assert s.finals() == [] and s.count() == 2
    _sql(db, "ANALYZE")  # SQLite's own statistics table is harmless
    with SQLiteStorage(db) as s:
        assert s.count() == 2


def test_expected_schema_is_derived_from_the_ddl(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tinyevo.storage import sqlite as mod

    extra = "\nCREATE TABLE IF NOT EXISTS derived (id INTEGER PRIMARY KEY, genome TEXT NOT NULL);\n"
    monkeypatch.setattr(mod, "_SCHEMA", mod._SCHEMA + extra)
    monkeypatch.setattr(mod, "_EXPECTED", None)
    db = tmp_path / "trials.db"
    _make_run(db)  # creates the extra table
    with SQLiteStorage(db) as s:
        assert s.count() == 2
    names = {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master")}
    assert "derived" in names


# --- tampered rows: one named error, no traceback ---


@pytest.mark.parametrize(
    ("statement", "what"),
    [
        ("UPDATE trials SET metrics = '{not json' WHERE number = 1", "trial 1"),
        ("UPDATE trials SET metrics = '[1, 2]' WHERE number = 1", "trial 1"),
        ("UPDATE trials SET parents = 'nope' WHERE number = 0", "trial 0"),
        ("UPDATE trials SET violation = 'abc' WHERE number = 0", "trial 0"),
        ("UPDATE final_models SET metrics = '{' WHERE trial = 0", "final model of trial 0"),
        ("UPDATE final_models SET weights = '../../../home/x/model.pt' WHERE trial = 0", "outside the run"),
        ("UPDATE final_models SET weights = '/etc/passwd' WHERE trial = 0", "outside the run"),
        ("UPDATE run SET config = '{bad' WHERE id = 1", "run record"),
        ("UPDATE run SET config = '[]' WHERE id = 1", "run record"),
    ],
)
def test_tampered_rows_give_a_storage_error(tmp_path: Path, statement: str, what: str) -> None:
    db = tmp_path / "trials.db"
    _make_run(db)
    _sql(db, statement)
    with SQLiteStorage(db, readonly=True) as s, pytest.raises(StorageError, match=what) as info:
        s.meta()
        s.records()
        s.finals()
    assert "\n" not in str(info.value) and "damaged" in str(info.value)


def test_unknown_status_gives_a_storage_error(tmp_path: Path) -> None:
    db = tmp_path / "trials.db"
    _make_run(db)
    # the CHECK constraint keeps tinyevo from writing it; someone else need not respect it
    _sql(db, "PRAGMA ignore_check_constraints = ON", "UPDATE trials SET status = 'evil' WHERE number = 1")
    with SQLiteStorage(db, readonly=True) as s, pytest.raises(StorageError, match="trial 1 cannot be read"):
        s.records()


def test_table_redefined_through_writable_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "trials.db"
    _make_run(db)
    _sql(db, "PRAGMA writable_schema = ON",
         "UPDATE sqlite_master SET sql = replace(sql, \"'failed'\", \"'failed', 'evil'\") WHERE name = 'trials'")
    with pytest.raises(StorageError, match="not defined as tinyevo defines it"):
        SQLiteStorage(db, readonly=True)
