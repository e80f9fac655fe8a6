"""Run storage: the :class:`Storage` protocol, its SQLite implementation and an in-memory one."""

from __future__ import annotations

from tinyevo.storage.base import DerivedModel, FinalModel, RetrainedModel, RunMeta, Storage, TrialRecord
from tinyevo.storage.memory import InMemoryStorage
from tinyevo.storage.sqlite import MAX_SEED, SQLiteStorage, count_rows, create_run_database, new_meta

DB_NAME = "trials.db"
"""File name of the database inside a run directory."""

__all__ = [
    "DB_NAME", "MAX_SEED", "DerivedModel", "FinalModel", "InMemoryStorage", "RetrainedModel", "RunMeta",
    "SQLiteStorage", "Storage", "TrialRecord", "count_rows", "create_run_database", "new_meta",
]
