"""The capped test rows of an export are a seeded random subset, not the first rows (a split may be sorted)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from tinyevo.deploy.export import _test_rows


def test_capped_test_rows_cover_a_class_sorted_split() -> None:
    y = np.repeat(np.arange(10), 100)  # sorted by class, like mnist.npz's test split
    x = np.arange(len(y), dtype=np.float32)[:, None]
    data = SimpleNamespace(x_test=x, y_test=y)
    xs, ys = _test_rows(data, 200, seed=0)
    assert len(ys) == 200 and set(ys.tolist()) == set(range(10))
    assert np.array_equal(ys, y[xs[:, 0].astype(int)]) and np.all(np.diff(xs[:, 0]) > 0)  # rows kept in order
    assert np.array_equal(_test_rows(data, 200, seed=0)[0], xs)  # seeded
    assert len(_test_rows(data, None, seed=0)[1]) == len(_test_rows(data, 5000, seed=0)[1]) == 1000
