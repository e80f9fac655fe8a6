"""Worker processes map the driver's prepared data set: one copy in memory, shared, not one per process."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from executor_tasks import _mapping_stats, shared_data_view

from tinyevo.data import load_dataset, mapped_file, shared
from tinyevo.executors import LocalPoolExecutor

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps")


def test_workers_map_the_same_pages_as_the_driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TINYEVO_CACHE_DIR", str(tmp_path / "cache"))  # inherited by the spawned workers
    monkeypatch.setattr(shared, "SHARE_MIN_BYTES", 0)  # (the workers only open what the driver stored)
    rng = np.random.default_rng(0)
    y = np.arange(600) % 4
    x = rng.integers(0, 256, size=(600, 16, 16), dtype=np.uint8)  # 540 train rows x 1 KiB of float32
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y)
    spec = str(tmp_path / "d.npz")
    driver = load_dataset(spec, seed=0)
    file = mapped_file(driver.x_train)
    assert file is not None
    expected = float(np.asarray(driver.x_train, dtype=np.float64).sum())  # the driver touches every page too
    ex = LocalPoolExecutor(workers=2)
    try:
        results = [r.value for r in ex.map(shared_data_view, [(spec, 0)] * 2)]
    finally:
        ex.close()
    kib = driver.x_train.nbytes // 1024
    for r in results:
        assert r is not None
        assert r["file"] == str(file) and r["inode"] == os.stat(file).st_ino  # the very file the driver maps
        assert r["sum"] == pytest.approx(expected)
        smaps = r["smaps"]
        assert isinstance(smaps, dict)
        # every page of the training inputs is resident in the worker, none of it is a private (anonymous,
        # copy-on-write) copy, and every page is shared with another process (the driver maps them too)
        assert smaps["Rss"] >= kib
        assert smaps["Anonymous"] == 0
        assert smaps["Private_Clean"] + smaps["Private_Dirty"] == 0
        assert smaps["Shared_Clean"] + smaps["Shared_Dirty"] >= kib
        assert smaps["Pss"] < smaps["Rss"]  # so the worker is charged a share of them only
    mine = _mapping_stats(str(file))
    assert mine["Anonymous"] == 0 and mine["Rss"] >= kib
