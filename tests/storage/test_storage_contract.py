"""The :class:`Storage` contract, run over every storage (as optuna's ``STORAGE_MODES``): SQLite and in-memory.

``open_store()`` opens the mode's store again (a new connection for SQLite, the same object in memory), so each test
also checks that what one "session" wrote the next one reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tinyevo.errors import StorageError
from tinyevo.storage import DerivedModel, RetrainedModel, SQLiteStorage, Storage, TrialRecord, new_meta
from tinyevo.storage.memory import InMemoryStorage
from tinyevo.trial import Status, Trial

STORAGE_MODES = ("sqlite", "memory")

Opener = Callable[[], Storage]


@pytest.fixture(params=STORAGE_MODES)
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    if request.param == "sqlite":
        yield lambda: SQLiteStorage(tmp_path / "t.db")
    else:
        memory = InMemoryStorage()
        yield lambda: memory


def _record(n: int, *, status: Status = Status.OK, genome: str | None = None,
            metrics: dict[str, float] | None = None) -> TrialRecord:
    trial = Trial(
        number=n, genome=genome or f"g{n}", status=status,
        metrics={"val_acc": 0.5, "macs": 100.0} if metrics is None else metrics,
        violation=0.25 if status is Status.INFEASIBLE else 0.0, parents=("g0",) if n else (),
        generation=n // 2, origin="mutation" if n else "random",
        error="ValueError: boom" if status is Status.FAILED else None,
    )
    return TrialRecord(trial=trial, cost={"macs": 100.0}, parent_ids=(0,) if n else (), batch=n, eval_seed=7 + n,
                       started_at=1.0, finished_at=2.5, duration_s=1.5, worker="w0")


def test_is_a_storage(open_store: Opener) -> None:
    with open_store() as s:  # type: ignore[attr-defined]
        assert isinstance(s, Storage)


def test_meta_is_stored_once(open_store: Opener) -> None:
    s = open_store()
    with pytest.raises(StorageError):
        s.meta()  # no run yet
    s.create(new_meta(42, {"space": {"name": "chain"}, "budget": 3}))
    with pytest.raises(StorageError, match="already holds a run"):
        s.create(new_meta(1, {}))
    s.close()
    s = open_store()
    meta = s.meta()
    s.close()
    assert meta.seed == 42 and meta.config == {"space": {"name": "chain"}, "budget": 3}


def test_trials_come_back_in_number_order(open_store: Opener) -> None:
    recs = [_record(2, status=Status.FAILED), _record(0), _record(1, status=Status.INFEASIBLE),
            _record(3, genome="g1")]
    s = open_store()
    for r in recs:
        s.add(r)
    s.close()
    s = open_store()
    got = s.records()
    numbers = s.numbers_of(("g1", "nope", "g0"))  # type: ignore[attr-defined]
    s.close()
    assert [r.number for r in got] == [0, 1, 2, 3]
    assert got == sorted(recs, key=lambda r: r.number)
    assert numbers == (1, 0)  # first occurrence of a genome; unknown genomes skipped
    assert got[2].trial.status is Status.FAILED and got[2].trial.error == "ValueError: boom"
    assert got[1].candidate.parents == ("g0",)


def test_duplicate_trial_number_is_refused(open_store: Opener) -> None:
    s = open_store()
    s.add(_record(0))
    with pytest.raises(StorageError, match="already stored"):
        s.add(_record(0, genome="other"))
    assert [r.trial.genome for r in s.records()] == ["g0"]
    s.close()


def test_stored_metrics_do_not_follow_the_callers_dict(open_store: Opener) -> None:
    metrics = {"val_acc": 0.5, "nan": math.nan, "inf": math.inf}
    s = open_store()
    s.add(_record(0, metrics=metrics))
    metrics["val_acc"] = 0.0
    back = s.records()[0].trial.metrics
    back["val_acc"] = 1.0  # type: ignore[index]  # a reader mutating its copy
    again = s.records()[0].trial.metrics
    s.close()
    assert again["val_acc"] == 0.5 and math.isnan(again["nan"]) and again["inf"] == math.inf


def test_final_models_replace_and_come_back_ordered(open_store: Opener) -> None:
    s = open_store()
    s.add_final(RetrainedModel(3, "g3", {"test_acc": 0.9}, "final/trial-0003/model.pt"))
    s.add_final(RetrainedModel(1, "g1", {"test_acc": 0.5}, "final/trial-0001/model.pt"))
    s.add_final(RetrainedModel(3, "g3", {"test_acc": 0.95}, "final/trial-0003/model.pt"))
    s.close()
    s = open_store()
    finals = s.finals()
    s.close()
    assert [(f.trial, f.metrics["test_acc"]) for f in finals] == [(1, 0.5), (3, 0.95)]


def test_derived_models(open_store: Opener) -> None:
    d = DerivedModel(number=100, genome="g9", parent=2, origin="deepen", cost={"macs": 5.0},
                     weights="final/trial-0002/model.pt", info={"layer": "b1"}, created_at=1.0)
    s = open_store()
    s.add_derived(d)
    with pytest.raises(StorageError, match="already stored"):
        s.add_derived(d)
    s.close()
    s = open_store()
    got = s.derived()
    s.close()
    assert got == [d]
    assert got[0].as_trial().status is Status.OK


def test_state(open_store: Opener) -> None:
    s = open_store()
    assert s.get_state("phase") is None
    s.set_state("phase", "search")
    s.set_state("phase", "done")
    s.close()
    s = open_store()
    assert s.get_state("phase") == "done"
    s.close()
