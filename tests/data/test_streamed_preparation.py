"""A data set is prepared chunk by chunk (tinyevo.data.dataset.plan_arrays + shared.write_prepared): the prepared
files hold exactly the transform of the source, and preparing never holds the float32 arrays in memory."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from tinyevo.data import dataset, load_dataset, mapped_file, shared
from tinyevo.data.dataset import from_arrays, materialize, plan_arrays
from tinyevo.errors import DataError

SPLITS = ("train", "val", "test")


def _oracle(x: np.ndarray, rows: np.ndarray, scale: float, mean: tuple[float, ...],
            std: tuple[float, ...]) -> np.ndarray:
    """The transform written out whole, in plain numpy (no chunks): float32, times scale, standardised."""
    a = x[rows].astype(np.float32) * np.float32(scale)
    return (a - np.float32(mean)[None, :, None, None]) / np.float32(std)[None, :, None, None]


@pytest.mark.parametrize("chunk_values", [7, 100, 2**22])
def test_prepared_files_hold_the_transform_of_the_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_values: int
) -> None:
    monkeypatch.setattr(dataset, "CHUNK_VALUES", chunk_values)  # one row per chunk, a few rows, one chunk
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(150, 2, 3, 5), dtype=np.uint8)  # (N, C, H, W)
    y = np.arange(150) % 3
    plan = plan_arrays(x, y, seed=4, scale=1 / 255)
    d = shared.write_prepared(plan, tmp_path / "entry")
    for s in SPLITS:
        assert mapped_file(getattr(d, f"x_{s}")) == tmp_path / "entry" / f"x_{s}.npy"
    rows = {s: plan.split(s).rows for s in SPLITS}
    # the splits partition the source rows (train + val + carved test)
    assert sorted(np.concatenate(list(rows.values())).tolist()) == list(range(150))
    scaled = (x[rows["train"]].astype(np.float32) * np.float32(1 / 255)).astype(np.float64)
    for c in range(2):  # statistics of the training split only, against numpy's whole-array mean / std
        assert d.mean[c] == pytest.approx(float(scaled[:, c].mean()), rel=1e-12)
        assert d.std[c] == pytest.approx(float(scaled[:, c].std()), rel=1e-9)
    for s in SPLITS:
        np.testing.assert_array_equal(getattr(d, f"x_{s}"), _oracle(x, rows[s], 1 / 255, d.mean, d.std))
        np.testing.assert_array_equal(getattr(d, f"y_{s}"), y[rows[s]])
    # the in-memory data set of the same plan is the same, bit for bit
    m = materialize(plan)
    for s in SPLITS:
        np.testing.assert_array_equal(getattr(m, f"x_{s}"), getattr(d, f"x_{s}"))
        assert mapped_file(getattr(m, f"x_{s}")) is None


def test_preparing_holds_one_chunk_not_the_float32_arrays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dataset, "CHUNK_VALUES", 2**12)  # 16 rows of 256 values: 16 KiB as float32
    x = np.random.default_rng(1).integers(0, 256, size=(4000, 1, 16, 16), dtype=np.uint8)  # 1 MiB
    y = np.arange(4000) % 4
    float32_bytes = x.size * 4  # 4 MiB: what preparing the whole arrays at once allocates
    tracemalloc.start()
    try:
        plan = plan_arrays(x, y, seed=0, scale=1 / 255)
        d = shared.write_prepared(plan, tmp_path / "entry")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert mapped_file(d.x_train) is not None
    assert peak < float32_bytes / 8, f"preparing allocated {peak} bytes at peak"
    tracemalloc.start()  # the same data made in memory needs the float32 arrays (the check above can fail)
    try:
        materialize(plan)
        _, peak_memory = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_memory >= float32_bytes * 0.9


def test_a_value_that_is_not_finite_as_float32_is_refused() -> None:
    x = np.ones((60, 3, 3), dtype=np.float64)
    x[55, 1, 1] = np.nan  # lands in one of the splits
    with pytest.raises(DataError, match="NaN or infinite"):
        plan_arrays(x, np.arange(60) % 2, normalize=False)
    big = np.full((60, 3, 3), 1e39)  # finite in float64, infinite as float32
    with pytest.raises(DataError, match="NaN or infinite"):
        from_arrays(big, np.arange(60) % 2)


def test_a_large_npz_is_streamed_into_the_cache_on_first_load(
    tmp_path: Path, _data_cache_in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shared, "SHARE_MIN_BYTES", 0)
    calls: list[int] = []
    real = shared.write_prepared

    def spy(plan: dataset.ArrayPlan, directory: Path) -> dataset.Dataset:
        calls.append(plan.nbytes)
        return real(plan, directory)

    monkeypatch.setattr(shared, "write_prepared", spy)
    rng = np.random.default_rng(2)
    src = tmp_path / "d.npz"
    np.savez(src, x_train=rng.integers(0, 256, (80, 6, 6), dtype=np.uint8), y_train=np.arange(80) % 4)
    d = load_dataset(src, seed=1)
    assert calls == [sum(getattr(d, f"{p}_{s}").nbytes for s in SPLITS for p in "xy")]
    assert mapped_file(d.x_train) is not None
    again = load_dataset(src, seed=1)  # mapped from the files, not prepared again
    assert len(calls) == 1
    np.testing.assert_array_equal(again.x_val, d.x_val)
