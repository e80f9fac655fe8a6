"""A run kept in memory: the :class:`~tinyevo.storage.base.Storage` protocol without a file.

For tests, notebooks and short throw-away searches driven through :class:`tinyevo.run.engine.Engine`: nothing
survives the process (so there is no resume). It behaves as :class:`~tinyevo.storage.SQLiteStorage` does
(``tests/storage/test_storage_contract.py`` runs the same tests over both): records come back as stored, ordered by
number, and metrics are copied on the way in and out, so a caller mutating a dict does not change the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from tinyevo.errors import StorageError
from tinyevo.storage.base import DerivedModel, RetrainedModel, RunMeta, TrialRecord
from tinyevo.trial import Trial

__all__ = ["InMemoryStorage"]


def _copy(m: Mapping[str, Any]) -> dict[str, Any]:
    return dict(m)


class InMemoryStorage:
    """A run stored in this process's memory (see the module docstring)."""

    def __init__(self) -> None:
        self._meta: RunMeta | None = None
        self._trials: dict[int, TrialRecord] = {}
        self._finals: dict[int, RetrainedModel] = {}
        self._derived: dict[int, DerivedModel] = {}
        self._state: dict[str, str] = {}

    # --- run meta ---
    def create(self, meta: RunMeta) -> None:
        if self._meta is not None:
            raise StorageError("the in-memory storage already holds a run; use 'tinyevo resume' to continue it")
        self._meta = replace(meta, config=_copy(meta.config))

    def has_run(self) -> bool:
        return self._meta is not None

    def meta(self) -> RunMeta:
        if self._meta is None:
            raise StorageError("the in-memory storage holds no run")
        return replace(self._meta, config=_copy(self._meta.config))

    # --- trials ---
    def add(self, record: TrialRecord) -> None:
        t = record.trial
        if t.number in self._trials:
            raise StorageError(f"trial {t.number} is already stored in the in-memory storage")
        self._trials[t.number] = _copy_record(record)

    def records(self) -> list[TrialRecord]:
        return [_copy_record(self._trials[n]) for n in sorted(self._trials)]

    def trials(self) -> list[Trial]:
        return [r.trial for r in self.records()]

    def count(self) -> int:
        return len(self._trials)

    def numbers_of(self, genomes: tuple[str, ...]) -> tuple[int, ...]:
        """Trial numbers of the given genome strings (first occurrence), skipping genomes not stored."""
        first: dict[str, int] = {}
        for n in sorted(self._trials, reverse=True):
            first[self._trials[n].trial.genome] = n
        return tuple(first[g] for g in genomes if g in first)

    # --- final models ---
    def add_final(self, model: RetrainedModel) -> None:
        self._finals[int(model.trial)] = replace(model, metrics=_copy(model.metrics))

    def add_final_checked(self, model: RetrainedModel, sha256: str) -> None:
        """:meth:`add_final` and the fingerprint of its weights file together (as the SQLite storage does)."""
        self.add_final(model)
        self.set_state(f"final_sha256:{int(model.trial)}", sha256)

    def remove_final(self, trial: int) -> None:
        """Forget the final model of ``trial`` and its fingerprint."""
        self._finals.pop(int(trial), None)
        self._state.pop(f"final_sha256:{int(trial)}", None)

    def finals(self) -> list[RetrainedModel]:
        return [replace(f, metrics=_copy(f.metrics)) for _, f in sorted(self._finals.items())]

    # --- derived models ---
    def add_derived(self, model: DerivedModel) -> None:
        if model.number in self._derived:
            raise StorageError(f"derived model {model.number} is already stored in the in-memory storage")
        self._derived[model.number] = replace(model, cost=_copy(model.cost), info=_copy(model.info))

    def derived(self) -> list[DerivedModel]:
        return [replace(d, cost=_copy(d.cost), info=_copy(d.info)) for _, d in sorted(self._derived.items())]

    # --- state ---
    def set_state(self, key: str, value: str) -> None:
        self._state[key] = value

    def get_state(self, key: str) -> str | None:
        return self._state.get(key)

    def close(self) -> None:
        """Nothing to release; the run stays readable (as a closed SQLite file can be opened again)."""

    def __enter__(self) -> InMemoryStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _copy_record(r: TrialRecord) -> TrialRecord:
    return replace(r, trial=replace(r.trial, metrics=_copy(r.trial.metrics)), cost=_copy(r.cost))
