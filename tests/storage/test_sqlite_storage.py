from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyevo.errors import StorageError
from tinyevo.storage import RetrainedModel, SQLiteStorage, Storage, TrialRecord, new_meta
from tinyevo.strategies.base import Status, Trial


def _record(n: int, *, status: Status = Status.OK, metrics: dict[str, float] | None = None) -> TrialRecord:
    trial = Trial(
        number=n,
        genome=f"g{n}",
        status=status,
        metrics=metrics or {"val_acc": 0.5, "macs": 100.0},
        violation=0.0 if status is not Status.INFEASIBLE else 0.25,
        parents=("g0",) if n else (),
        generation=n // 2,
        origin="mutation" if n else "random",
        error="ValueError: boom" if status is Status.FAILED else None,
    )
    return TrialRecord(
        trial=trial,
        cost={"macs": 100.0},
        parent_ids=(0,) if n else (),
        batch=n,
        eval_seed=7 + n,
        started_at=1.0,
        finished_at=2.5,
        duration_s=1.5,
        worker="w0",
    )


def test_is_a_storage(tmp_path: Path) -> None:
    with SQLiteStorage(tmp_path / "t.db") as s:
        assert isinstance(s, Storage)


def test_meta_stored_once_and_round_trips(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    with SQLiteStorage(db) as s:
        assert not s.has_run()
        s.create(new_meta(42, {"space": {"name": "chain"}, "budget": 3}))
        with pytest.raises(StorageError, match="already holds a run"):
            s.create(new_meta(1, {}))
    with SQLiteStorage(db, readonly=True) as s:
        meta = s.meta()
    assert meta.seed == 42 and meta.config == {"space": {"name": "chain"}, "budget": 3}


def test_trials_round_trip_in_number_order(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    recs = [_record(2, status=Status.FAILED), _record(0), _record(1, status=Status.INFEASIBLE)]
    with SQLiteStorage(db) as s:
        for r in recs:
            s.add(r)
    with SQLiteStorage(db) as s:
        got = s.records()
        assert s.count() == 3
        assert s.numbers_of(("g1", "nope", "g0")) == (1, 0)
    assert [r.number for r in got] == [0, 1, 2]
    assert got == sorted(recs, key=lambda r: r.number)
    assert got[2].trial.error == "ValueError: boom" and got[2].trial.status is Status.FAILED
    assert got[1].candidate.genome == "g1" and got[1].candidate.parents == ("g0",)


def test_duplicate_trial_number_is_refused(tmp_path: Path) -> None:
    with SQLiteStorage(tmp_path / "t.db") as s:
        s.add(_record(0))
        with pytest.raises(StorageError, match="already stored"):
            s.add(_record(0))


def test_committed_trial_visible_to_second_connection_without_close(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    writer = SQLiteStorage(db)
    writer.add(_record(0))
    # a reader (tinyevo show while a run is going) sees the committed trial; WAL mode
    raw = sqlite3.connect(db)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 1
    raw.close()
    writer.close()


def test_readonly_refuses_writes_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no run database"):
        SQLiteStorage(tmp_path / "missing.db", readonly=True)
    db = tmp_path / "t.db"
    SQLiteStorage(db).close()
    with SQLiteStorage(db, readonly=True) as s, pytest.raises(sqlite3.OperationalError):
        s.add(_record(0))


def test_not_a_database(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_text("this is not sqlite" * 100)
    with pytest.raises(StorageError, match="not a tinyevo run database"):
        SQLiteStorage(bad)


def test_final_models_and_state(tmp_path: Path) -> None:
    with SQLiteStorage(tmp_path / "t.db") as s:
        assert s.get_state("phase") is None
        s.set_state("phase", "search")
        s.set_state("phase", "done")
        assert s.get_state("phase") == "done"
        s.add_final(RetrainedModel(3, "g3", {"test_acc": 0.9}, "final/trial3/model.pt"))
        s.add_final(RetrainedModel(3, "g3", {"test_acc": 0.95}, "final/trial3/model.pt"))
        assert [(f.trial, f.metrics["test_acc"]) for f in s.finals()] == [(3, 0.95)]


_floats = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=30, deadline=None)
@given(metrics=st.dictionaries(st.text(min_size=1, max_size=8), _floats, max_size=5))
def test_metrics_round_trip_exactly(
    tmp_path_factory: pytest.TempPathFactory, metrics: dict[str, float]
) -> None:
    db = tmp_path_factory.mktemp("h") / "t.db"
    rec = _record(0, metrics=metrics) if metrics else _record(0)
    with SQLiteStorage(db) as s:
        s.add(rec)
        back = s.records()[0].trial.metrics
    want = rec.trial.metrics
    assert set(back) == set(want)
    for k, v in want.items():
        assert (math.isnan(v) and math.isnan(back[k])) or back[k] == v


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    first = SQLiteStorage(db)
    with pytest.raises(StorageError, match="another tinyevo process"):
        SQLiteStorage(db)
    with SQLiteStorage(db, readonly=True) as reader:  # readers are never blocked
        assert reader.count() == 0
    first.close()
    SQLiteStorage(db).close()


def test_count_rows_while_a_writer_holds_the_run(tmp_path: Path) -> None:
    from tinyevo.storage import count_rows

    db = tmp_path / "t.db"
    assert count_rows(db) == 0  # not created yet
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 10)
    assert count_rows(tmp_path / "junk.db") == 0
    writer = SQLiteStorage(db)  # holds the writer's lock; count_rows reads beside it
    try:
        for n in range(3):
            writer.add(_record(n))
            assert count_rows(db) == n + 1
        assert count_rows(db, "final_models") == 0
    finally:
        writer.close()
    with pytest.raises(ValueError, match="trials or final_models"):
        count_rows(db, "run; DROP TABLE trials")
