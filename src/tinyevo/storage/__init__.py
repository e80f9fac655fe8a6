"""Run storage: the :class:`Storage` protocol and its SQLite implementation."""

from __future__ import annotations

from tinyevo.storage.base import DerivedModel, FinalModel, RunMeta, Storage, TrialRecord
from tinyevo.storage.sqlite import SQLiteStorage, new_meta

DB_NAME = "trials.db"
"""File name of the database inside a run directory."""

__all__ = [
    "DB_NAME", "DerivedModel", "FinalModel", "RunMeta", "SQLiteStorage", "Storage", "TrialRecord", "new_meta",
]
