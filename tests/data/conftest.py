from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _data_cache_in_tmp(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Loader tests never write to the user's ~/.cache."""
    path = tmp_path_factory.mktemp("tinyevo-cache")
    monkeypatch.setenv("TINYEVO_CACHE_DIR", str(path))
    yield path
