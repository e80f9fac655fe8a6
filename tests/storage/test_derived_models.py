"""Derived models (tinyevo deepen's results) in the SQLite store: kept apart from the search trials."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tinyevo.errors import StorageError
from tinyevo.storage import DerivedModel, SQLiteStorage, TrialRecord, new_meta
from tinyevo.strategies.base import Status, Trial


def _derived(n: int, parent: int = 0) -> DerivedModel:
    return DerivedModel(number=n, genome=f"deeper{n}", parent=parent, origin="deepen", cost={"params": 12.0},
                        weights=f"final/trial-{n:04d}/model.pt", info={"layer": "conv_k3_s1_c4_r", "position": 1},
                        created_at=3.5)


def test_derived_models_round_trip_and_are_not_trials(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    with SQLiteStorage(db) as s:
        s.create(new_meta(1, {}))
        s.add(TrialRecord(trial=Trial(number=0, genome="g0", status=Status.OK, metrics={"val_acc": 0.5})))
        s.add_derived(_derived(21, parent=20))
        s.add_derived(_derived(20))
        with pytest.raises(StorageError, match="derived model 20 is already stored"):
            s.add_derived(_derived(20))
    with SQLiteStorage(db, readonly=True) as s:
        assert [r.number for r in s.records()] == [0]
        assert s.derived() == [_derived(20), _derived(21, parent=20)]
    t = _derived(20).as_trial()
    assert (t.number, t.genome, t.status, dict(t.metrics), t.origin) == (20, "deeper20", Status.OK,
                                                                        {"params": 12.0}, "deepen")


def test_a_deepen_trial_of_an_old_run_becomes_a_derived_model_on_open(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    with SQLiteStorage(db) as s:
        s.create(new_meta(1, {}))
        s.add(TrialRecord(trial=Trial(number=0, genome="g0", status=Status.OK, metrics={"val_acc": 0.5})))
    with sqlite3.connect(db) as con:  # what tinyevo deepen wrote before derived models had their own table
        con.execute("DROP TABLE derived_models")
        con.execute(
            "INSERT INTO trials (number, genome, status, metrics, cost, violation, error, parents, parent_ids, "
            "generation, origin, batch, eval_seed, started_at, finished_at, duration_s, worker) VALUES "
            "(1, 'g0-deeper', 'ok', '{\"val_acc\": 0.5}', '{\"params\": 9.0}', 0.0, NULL, '[\"g0\"]', '[0]', 1, "
            "'deepen', 0, NULL, 4.0, 4.0, 0.0, 'deepen')")
        con.execute("INSERT INTO final_models (trial, genome, metrics, weights, created_at) VALUES "
                    "(1, 'g0-deeper', '{}', 'final/trial-0001/model.pt', 4.0)")
    con.close()
    with SQLiteStorage(db, readonly=True) as s:  # a reader leaves an old run as it is
        assert [r.number for r in s.records()] == [0, 1] and s.derived() == []
    with SQLiteStorage(db) as s:  # a writer (resume, retrain, deepen) moves the deepen trial
        assert [r.number for r in s.records()] == [0]
        (d,) = s.derived()
        assert [f.trial for f in s.finals()] == [1]
    assert (d.number, d.genome, d.parent, d.origin, dict(d.cost), d.weights, d.created_at) == (
        1, "g0-deeper", 0, "deepen", {"params": 9.0}, "final/trial-0001/model.pt", 4.0)
