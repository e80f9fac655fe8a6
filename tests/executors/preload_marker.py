"""Imported by workers started ahead (tests/executors/test_start_ahead.py): appends the importing process's id to the
file named by ``TINYEVO_TEST_PRELOAD_MARK``."""

from __future__ import annotations

import os

_mark = os.environ.get("TINYEVO_TEST_PRELOAD_MARK")
if _mark:
    with open(_mark, "a") as fh:
        fh.write(f"{os.getpid()}\n")
