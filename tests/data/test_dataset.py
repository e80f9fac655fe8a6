from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyevo.data import TEST_SPLIT_SEED, Dataset, from_arrays, from_torch, resize, stratified_split, subset
from tinyevo.errors import DataError


def _arrays(
    n: int = 60, k: int = 3, shape: tuple[int, ...] = (6, 6), seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8), np.arange(n) % k


def test_from_arrays_layouts_and_dtypes() -> None:
    x, y = _arrays(shape=(6, 6))
    d = from_arrays(x, y)
    assert isinstance(d, Dataset)
    assert d.input_shape == (1, 6, 6) and d.num_classes == 3
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert len(d.x_train) + len(d.x_val) + len(d.x_test) == 60
    # Keras channels-last images become channels-first
    xc, yc = _arrays(shape=(5, 7, 3))
    assert from_arrays(xc, yc).input_shape == (3, 5, 7)
    assert from_arrays(np.moveaxis(xc, 3, 1), yc).input_shape == (3, 5, 7)
    # flat feature vectors
    assert from_arrays(x.reshape(60, -1), y).input_shape == (36, 1, 1)


def test_explicit_test_split_is_kept_and_normalised_with_train_stats() -> None:
    x, y = _arrays(n=40)
    xt, yt = _arrays(n=12, seed=1)
    d = from_arrays(x, y, xt + 0, yt, val_fraction=0.25)
    assert len(d.x_test) == 12 and np.array_equal(d.y_test, yt)
    assert abs(float(d.x_train.mean())) < 1e-4 and abs(float(d.x_train.std()) - 1) < 1e-3
    mean, std = d.mean[0], d.std[0]
    np.testing.assert_allclose(d.x_test, (xt[:, None].astype(np.float32) - mean) / std, rtol=1e-5, atol=1e-5)
    raw = from_arrays(x, y, xt, yt, normalize=False)
    assert raw.mean == () and float(raw.x_train.max()) > 1


def test_arrays_are_read_only() -> None:
    d = from_arrays(*_arrays())
    with pytest.raises(ValueError):
        d.x_train[0, 0, 0, 0] = 1.0


def test_validation_split_is_seeded_and_stratified() -> None:
    x, y = _arrays(n=90, k=3)
    a, b, c = from_arrays(x, y, seed=1), from_arrays(x, y, seed=1), from_arrays(x, y, seed=2)
    assert np.array_equal(a.x_val, b.x_val) and np.array_equal(a.y_val, b.y_val)
    assert not np.array_equal(a.x_val, c.x_val)
    # 90 samples -> 18 carved for test (6 per class) -> 72 left, 10 % of each class's 24 = 2 per class
    assert np.bincount(a.y_test).tolist() == [6, 6, 6]
    assert np.bincount(a.y_val).tolist() == [2, 2, 2]
    _, held = stratified_split(y, 0.2, np.random.default_rng(TEST_SPLIT_SEED))
    assert len(held) == len(a.y_test)


def test_test_split_is_independent_of_seed() -> None:
    x, y = _arrays(n=90, k=3)
    a, c = from_arrays(x, y, seed=1, normalize=False), from_arrays(x, y, seed=2, normalize=False)
    assert np.array_equal(a.x_test, c.x_test)


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(min_value=1, max_value=30), min_size=2, max_size=6),
    fraction=st.floats(min_value=0.0, max_value=0.9),
    seed=st.integers(0, 1000),
)
def test_stratified_split_properties(counts: list[int], fraction: float, seed: int) -> None:
    y = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    keep, held = stratified_split(y, fraction, np.random.default_rng(seed))
    assert sorted(np.concatenate([keep, held]).tolist()) == list(range(len(y)))  # a partition
    for c, n in enumerate(counts):
        h = int(np.sum(y[held] == c))
        assert h <= n - 1  # every class keeps a sample
        if n >= 2:
            expected = min(max(round(fraction * n), 1 if fraction > 0 else 0), n - 1)
            assert h == expected
    again = stratified_split(y, fraction, np.random.default_rng(seed))
    assert np.array_equal(again[1], held)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda x, y: from_arrays(x[:10], y), "labels"),
        (lambda x, y: from_arrays(x, np.zeros_like(y)), "only one class"),
        (lambda x, y: from_arrays(x, y - 1), ">= 0"),
        (lambda x, y: from_arrays(x, y, num_classes=2), "out of range"),
        (lambda x, y: from_arrays(x, y + 0.5), "integer"),
        (lambda x, y: from_arrays(x[..., None, None, None], y), "dimensions"),
        (lambda x, y: from_arrays(x, y, x[:, :3], y), "shape"),
        (lambda x, y: from_arrays(x, y, x), "both"),
        (lambda x, y: from_arrays(x[:0], y[:0]), "empty"),
        (lambda x, y: from_arrays(np.where(x > 100, np.nan, x.astype(float)), y), "NaN"),
        (lambda x, y: from_arrays(x.astype(str), y), "numeric"),
        (lambda x, y: from_arrays(x, y, val_fraction=1.0), "val_fraction"),
        (lambda x, y: from_arrays(x, y, x, y + 3), "do not occur"),
        (lambda x, y: from_arrays(x, y.reshape(6, 10)), "1-D"),
    ],
)
def test_bad_arrays_raise_one_data_error(make, message: str) -> None:  # type: ignore[no-untyped-def]
    x, y = _arrays()
    with pytest.raises(DataError, match=message):
        make(x, y)


def test_from_torch_dataset() -> None:
    x, y = _arrays(n=30, shape=(1, 4, 4))
    ds = torch.utils.data.TensorDataset(torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y))
    d = from_torch(ds, ds)
    assert d.input_shape == (1, 4, 4) and len(d.x_test) == 30 and d.num_classes == 3
    with pytest.raises(DataError, match="pair"):
        from_torch([np.zeros(3)] * 4)


def test_resize_and_subset() -> None:
    x, y = _arrays(n=100, k=4, shape=(8, 8))
    d = from_arrays(x, y)
    r = resize(d, (4, 6))
    assert r.input_shape == (1, 4, 6) and len(r.x_test) == len(d.x_test) and np.array_equal(r.y_val, d.y_val)
    # area-like averaging when downscaling: a constant image stays constant
    labels = np.arange(20) % 2
    c = from_arrays(np.ones((20, 8, 8)) * labels[:, None, None], labels, normalize=False)
    small = resize(c, (4, 4)).x_train
    np.testing.assert_allclose(small.reshape(len(small), -1).std(axis=1), 0, atol=1e-6)
    s = subset(d, 0.5, seed=3)
    assert len(s.x_train) == pytest.approx(len(d.x_train) / 2, abs=4)
    assert sorted(set(s.y_train.tolist())) == [0, 1, 2, 3]
    assert np.array_equal(s.x_val, d.x_val) and np.array_equal(subset(d, 0.5, seed=3).x_train, s.x_train)
    with pytest.raises(DataError):
        subset(d, 0.0)


def test_inputs_are_not_modified_and_pickling_keeps_read_only() -> None:
    import pickle

    x, y = _arrays(n=40)
    xf, xt = x.astype(np.float32)[:, None], x[:12].astype(np.float32)[:, None]
    before, before_t = xf.copy(), xt.copy()
    d = from_arrays(xf, y, xt, y[:12], scale=0.5)
    assert np.array_equal(xf, before) and np.array_equal(xt, before_t)
    e = pickle.loads(pickle.dumps(d))
    assert np.array_equal(e.x_test, d.x_test) and not e.x_train.flags.writeable
    raw = from_arrays(x, y, normalize=False, scale=1 / 255)
    assert float(raw.x_train.max()) <= 1.0
