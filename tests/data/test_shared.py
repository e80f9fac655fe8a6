"""The prepared data set is memory-mapped from the cache and shared, not copied (tinyevo.data.shared)."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from tinyevo.data import as_tensor, load_dataset, loaders, mapped_file, shared

SPLITS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def _npz(path: Path, *, seed: int = 0, n: int = 90) -> Path:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.integers(0, 256, size=(n, 5, 4), dtype=np.uint8)
    np.savez(path, x_train=x, y_train=y)
    return path


@pytest.fixture
def share_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shared, "SHARE_MIN_BYTES", 0)


def _assert_same(a: object, b: object) -> None:
    for s in SPLITS:
        np.testing.assert_array_equal(getattr(a, s), getattr(b, s))
        assert getattr(a, s).dtype == getattr(b, s).dtype
    for f in ("name", "num_classes", "class_names", "mean", "std"):
        assert getattr(a, f) == getattr(b, f)


def test_large_data_is_mapped_from_the_cache_and_equals_the_in_memory_load(
    tmp_path: Path, _data_cache_in_tmp: Path, share_all: None
) -> None:
    src = _npz(tmp_path / "d.npz")
    oracle = load_dataset(src, seed=3, cache=False)  # the loader without any cache: arrays in memory
    assert all(mapped_file(getattr(oracle, s)) is None for s in SPLITS)
    d = load_dataset(src, seed=3)
    _assert_same(d, oracle)
    for s in SPLITS:
        a = getattr(d, s)
        f = mapped_file(a)
        assert f is not None and f.name == f"{s}.npy"
        assert f.parent.parent == _data_cache_in_tmp / "prepared"
        assert type(a) is np.ndarray and not a.flags.writeable
    (entry,) = (_data_cache_in_tmp / "prepared").iterdir()
    kept = [f"bytes_{s}.npy" for s in ("train", "val", "test")]  # the uint8 source's bytes (read by training)
    assert sorted(p.name for p in entry.iterdir()) == sorted([*(f"{s}.npy" for s in SPLITS), *kept, "meta.json"])
    assert oracle.byte_inputs is None and d.byte_inputs is not None
    for s, b in zip(("train", "val", "test"), d.byte_inputs, strict=True):
        assert mapped_file(b.codes) == entry / f"bytes_{s}.npy"
        assert d.inputs(s) is b
        np.testing.assert_array_equal(b.decode(), getattr(oracle, f"x_{s}"))  # the in-memory load: no bytes


def test_a_second_load_maps_the_same_files_without_reading_the_source(
    tmp_path: Path, _data_cache_in_tmp: Path, share_all: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _npz(tmp_path / "d.npz")
    first = load_dataset(src, seed=1)

    def no_read(*_: object, **__: object) -> None:
        raise AssertionError("the source was read again")

    monkeypatch.setattr(loaders, "_npz", no_read)
    second = load_dataset(src, seed=1)
    _assert_same(first, second)
    for s in SPLITS:
        assert mapped_file(getattr(second, s)) == mapped_file(getattr(first, s))


def test_key_follows_the_source_and_the_options(
    tmp_path: Path, _data_cache_in_tmp: Path, share_all: None
) -> None:
    src = _npz(tmp_path / "d.npz", seed=0)
    a = load_dataset(src, seed=0)
    b = load_dataset(src, seed=1)  # another validation split: another entry
    assert mapped_file(a.x_train) != mapped_file(b.x_train)
    _assert_same(b, load_dataset(src, seed=1, cache=False))
    c = load_dataset(src, seed=0, val_fraction=0.2)
    _assert_same(c, load_dataset(src, seed=0, val_fraction=0.2, cache=False))
    _npz(src, seed=5)  # the file changes (size and mtime): never the stale arrays
    os.utime(src, ns=(os.stat(src).st_atime_ns, os.stat(src).st_mtime_ns + 10**9))
    d = load_dataset(src, seed=0)
    _assert_same(d, load_dataset(src, seed=0, cache=False))
    assert not np.array_equal(d.x_train, a.x_train)


def test_small_data_stays_in_memory(tmp_path: Path, _data_cache_in_tmp: Path) -> None:
    src = _npz(tmp_path / "d.npz")
    d = load_dataset(src)  # far below SHARE_MIN_BYTES
    assert mapped_file(d.x_train) is None
    assert not (_data_cache_in_tmp / "prepared").exists()


def test_a_damaged_entry_is_rebuilt(
    tmp_path: Path, _data_cache_in_tmp: Path, share_all: None, caplog: pytest.LogCaptureFixture
) -> None:
    src = _npz(tmp_path / "d.npz")
    d = load_dataset(src)
    file = mapped_file(d.x_train)
    assert file is not None
    del d
    file.write_bytes(file.read_bytes()[:-40])  # truncated
    with caplog.at_level(logging.WARNING):
        again = load_dataset(src)
    assert "damaged prepared data set" in caplog.text
    _assert_same(again, load_dataset(src, cache=False))
    assert mapped_file(again.x_train) is not None


def test_least_recently_used_entries_are_removed(
    tmp_path: Path, _data_cache_in_tmp: Path, share_all: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shared, "MAX_ENTRIES", 2)
    src = _npz(tmp_path / "d.npz")
    first = load_dataset(src, seed=0)
    kept = mapped_file(first.x_train)
    assert kept is not None
    second = load_dataset(src, seed=1)
    os.utime(mapped_file(second.x_train).parent / "meta.json", (1, 1))  # type: ignore[union-attr]
    load_dataset(src, seed=0)  # used again: now the most recent but one
    load_dataset(src, seed=2)  # a third entry: the least recently used (seed 1) goes
    entries = list((_data_cache_in_tmp / "prepared").iterdir())
    assert len(entries) == 2 and kept.parent in entries
    assert mapped_file(second.x_train).parent not in entries  # type: ignore[union-attr]
    np.testing.assert_array_equal(second.x_train, load_dataset(src, seed=1, cache=False).x_train)  # still mapped


def test_unwritable_cache_falls_back_to_memory(
    tmp_path: Path, share_all: None, caplog: pytest.LogCaptureFixture
) -> None:
    src = _npz(tmp_path / "d.npz")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with caplog.at_level(logging.WARNING):
        d = load_dataset(src, cache=blocker / "cache")
    assert mapped_file(d.x_train) is None
    _assert_same(d, load_dataset(src, cache=False))
    assert "cannot write the prepared data set" in caplog.text


def test_as_tensor_shares_memory_without_warning(
    tmp_path: Path, _data_cache_in_tmp: Path, share_all: None
) -> None:
    d = load_dataset(_npz(tmp_path / "d.npz"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = as_tensor(d.x_train)
        ty = as_tensor(d.y_train)
    assert t.data_ptr() == d.x_train.ctypes.data and ty.data_ptr() == d.y_train.ctypes.data
    np.testing.assert_array_equal(t.numpy(), d.x_train)
    big_endian = np.arange(6, dtype=">f4")
    np.testing.assert_array_equal(as_tensor(big_endian).numpy(), big_endian)  # copied into native order


def test_a_write_through_the_tensor_never_reaches_the_file(
    tmp_path: Path, _data_cache_in_tmp: Path, share_all: None
) -> None:
    src = _npz(tmp_path / "d.npz")
    d = load_dataset(src)
    before = np.load(mapped_file(d.x_train)).copy()  # type: ignore[arg-type]
    as_tensor(d.x_train).add_(1.0)  # copy-on-write mapping: this process's pages change, the file does not
    np.testing.assert_array_equal(np.load(mapped_file(d.x_train)), before)  # type: ignore[arg-type]
    np.testing.assert_array_equal(load_dataset(src).x_train, before)


def test_the_estimator_trains_on_the_shared_arrays(
    tmp_path: Path, _data_cache_in_tmp: Path, share_all: None
) -> None:
    """No per-candidate copy before training: the data the estimator prepares at full fidelity is the loaded
    data set itself (its arrays the mapped ones)."""
    from tinyevo.estimators.training_estimator import TrainingEstimator
    from tinyevo.spaces import create_space

    d = load_dataset(_npz(tmp_path / "d.npz"))
    space = create_space("chain", input_shape=d.input_shape, num_classes=d.num_classes)
    ir = space.decode(space.sample(np.random.default_rng(0)))
    ir = ir if ir.input_shape == d.input_shape else None
    if ir is None:
        pytest.skip("the sampled network resizes its input")
    _, prepared = TrainingEstimator().prepare(ir, d)
    for s in SPLITS:
        assert np.shares_memory(getattr(prepared, s), getattr(d, s))
        assert mapped_file(getattr(prepared, s)) == mapped_file(getattr(d, s))


def test_loading_data_imports_no_torch(tmp_path: Path) -> None:
    """A fresh interpreter loads a data set (and resizes nothing) without importing torch: a driver that only
    needs shapes does not pay for it."""
    import json
    import subprocess
    import sys

    src = _npz(tmp_path / "d.npz")
    probe = ("import json, sys; from tinyevo.data import load_dataset; "
             f"d = load_dataset({str(src)!r}, cache=False); "
             "print(json.dumps([d.input_shape, sorted(m for m in sys.modules if m.split('.')[0] == 'torch')]))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    shape, torch_modules = json.loads(done.stdout.strip().splitlines()[-1])
    assert shape == [1, 5, 4] and torch_modules == []


def test_empty_splits_are_stored_and_mapped(
    tmp_path: Path, _data_cache_in_tmp: Path, share_all: None, caplog: pytest.LogCaptureFixture
) -> None:
    src = _npz(tmp_path / "d.npz")
    with caplog.at_level(logging.WARNING):
        first = load_dataset(src, val_fraction=0.0)
        second = load_dataset(src, val_fraction=0.0)
    assert len(first.x_val) == 0 and not caplog.text
    assert mapped_file(second.x_train) == mapped_file(first.x_train) is not None
    _assert_same(second, load_dataset(src, val_fraction=0.0, cache=False))
