"""8-bit sources are also kept as their bytes (tinyevo.data.dataset.ByteInputs, shared.write_prepared): the bytes
decode to the prepared float32 arrays bit for bit, and only a data set made from uint8 sources has them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tinyevo.data import ByteInputs, InputTransform, load_dataset, mapped_file, shared
from tinyevo.data.dataset import plan_arrays, with_byte_inputs
from tinyevo.errors import DataError

SPLITS = ("train", "val", "test")


def _oracle(x: np.ndarray, scale: float, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """The prepared values written out whole in plain numpy: float32, times scale, standardised per channel."""
    a = x.astype(np.float32)
    if scale != 1.0:
        a = a * np.float32(scale)
    if mean:
        a = (a - np.float32(mean)[None, :, None, None]) / np.float32(std)[None, :, None, None]
    return a


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32).view(np.int32)  # -0.0 != 0.0, as a bit-for-bit check should


CASES = {
    "grey_npz_style": {"shape": (120, 6, 5), "scale": 1.0, "normalize": True},  # Fashion-MNIST from .npz: no scale
    "colour_image_folder_style": {"shape": (120, 3, 4, 4), "scale": 1 / 255, "normalize": True},
    "channels_last": {"shape": (120, 5, 5, 3), "scale": 1 / 255, "normalize": True},
    "scaled_not_normalised": {"shape": (120, 5, 5), "scale": 1 / 255, "normalize": False},
    "raw_bytes": {"shape": (120, 5, 5), "scale": 1.0, "normalize": False},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_stored_bytes_decode_to_the_prepared_float32_arrays_bit_for_bit(tmp_path: Path, case: str) -> None:
    opts = CASES[case]
    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, size=opts["shape"], dtype=np.uint8)
    x[0] = 0  # the extremes occur
    x[1] = 255
    plan = plan_arrays(x, np.arange(len(x)) % 4, seed=2, scale=opts["scale"], normalize=opts["normalize"])
    d = shared.write_prepared(plan, tmp_path / "entry")
    assert d.byte_inputs is not None
    nchw = x if x.ndim == 4 and case != "channels_last" else (
        np.moveaxis(x, 3, 1) if x.ndim == 4 else x[:, None])
    for s, b in zip(SPLITS, d.byte_inputs, strict=True):
        rows = plan.split(s).rows
        assert mapped_file(b.codes) == tmp_path / "entry" / f"bytes_{s}.npy"
        np.testing.assert_array_equal(b.codes, nchw[rows])  # the source's bytes of the split's rows
        want = _oracle(nchw[rows], opts["scale"], d.mean, d.std)
        np.testing.assert_array_equal(_bits(getattr(d, f"x_{s}")), _bits(want))  # the float32 file
        np.testing.assert_array_equal(_bits(b.decode()), _bits(want))  # its bytes, decoded
        pick = np.array([len(rows) - 1, 0, 3]) if len(rows) > 3 else np.arange(len(rows))
        np.testing.assert_array_equal(_bits(b.decode(pick)), _bits(want[pick]))


def test_the_table_holds_the_transform_of_every_byte() -> None:
    t = InputTransform(scale=1 / 255, mean=(0.2860, 0.5), std=(0.3530, 0.25))
    table = t.table(2)
    assert table.shape == (2, 256) and table.dtype == np.float32
    every = np.broadcast_to(np.arange(256, dtype=np.uint8)[:, None, None, None], (256, 2, 1, 1))
    np.testing.assert_array_equal(_bits(table.T), _bits(_oracle(every, 1 / 255, t.mean, t.std)[:, :, 0, 0]))


@pytest.mark.parametrize("source", ["float32", "int16", "uint8_train_float_test"])
def test_only_uint8_sources_keep_their_bytes(tmp_path: Path, source: str) -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(90, 4, 4), dtype=np.uint8)
    xs = None
    if source == "float32":
        x = x.astype(np.float32)
    elif source == "int16":
        x = x.astype(np.int16)
    else:
        xs = rng.random((30, 4, 4)).astype(np.float32)
    y, ys = np.arange(90) % 3, (np.arange(30) % 3 if xs is not None else None)
    plan = plan_arrays(x, y, xs, ys, seed=0)
    assert not plan.bytes_kept
    d = shared.write_prepared(plan, tmp_path / "entry")
    assert d.byte_inputs is None and d.inputs("train") is d.x_train
    assert not list((tmp_path / "entry").glob("bytes_*"))
    with pytest.raises(DataError, match="not all uint8"):
        next(plan.code_chunks("train"))


def test_a_derived_data_set_has_no_stale_bytes(tmp_path: Path) -> None:
    x = np.random.default_rng(3).integers(0, 256, size=(90, 4, 4), dtype=np.uint8)
    d = shared.write_prepared(plan_arrays(x, np.arange(90) % 3, seed=0), tmp_path / "entry")
    assert d.byte_inputs is not None and isinstance(d.inputs("val"), ByteInputs)
    flipped = np.ascontiguousarray(d.x_train[:, :, :, ::-1])  # same shape, other values
    for derived in (replace(d, x_train=flipped), d.with_splits(x_train=flipped), replace(d, name="other")):
        assert derived.byte_inputs is None
        assert derived.inputs("train") is derived.x_train
    with pytest.raises(DataError, match="shape"):
        with_byte_inputs(replace(d), [d.byte_inputs[1], d.byte_inputs[1], d.byte_inputs[2]])
    with pytest.raises(DataError, match="uint8"):
        ByteInputs(np.zeros((2, 1, 4, 4), dtype=np.int8), InputTransform())
    with pytest.raises(ValueError, match="split"):
        d.inputs("validation")


def test_an_entry_without_bytes_opens_with_float32_inputs_only(tmp_path: Path) -> None:
    x = np.random.default_rng(4).integers(0, 256, size=(60, 4, 4), dtype=np.uint8)
    entry = tmp_path / "entry"
    shared.write_prepared(plan_arrays(x, np.arange(60) % 3, seed=0), entry)
    meta = json.loads((entry / "meta.json").read_text())
    del meta["bytes"]  # as a version-1 entry was written
    (entry / "meta.json").write_text(json.dumps(meta))
    d = shared.open_prepared(entry)
    assert d is not None and d.byte_inputs is None and mapped_file(d.x_train) is not None


def test_a_loaded_uint8_npz_carries_its_bytes_through_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shared, "SHARE_MIN_BYTES", 0)
    rng = np.random.default_rng(5)
    src = tmp_path / "d.npz"
    np.savez(src, x_train=rng.integers(0, 256, (80, 6, 6), dtype=np.uint8), y_train=np.arange(80) % 4)
    first = load_dataset(src, seed=1)  # prepared
    again = load_dataset(src, seed=1)  # mapped from the entry
    in_memory = load_dataset(src, seed=1, cache=False)
    assert first.byte_inputs is not None and again.byte_inputs is not None and in_memory.byte_inputs is None
    for s in SPLITS:
        b = again.inputs(s)
        assert isinstance(b, ByteInputs)
        np.testing.assert_array_equal(_bits(b.decode()), _bits(getattr(in_memory, f"x_{s}")))


def test_a_pickled_data_set_keeps_its_bytes_read_only(tmp_path: Path) -> None:
    import pickle

    x = np.random.default_rng(6).integers(0, 256, size=(60, 4, 4), dtype=np.uint8)
    d = shared.write_prepared(plan_arrays(x, np.arange(60) % 3, seed=0), tmp_path / "entry")
    back = pickle.loads(pickle.dumps(d))
    assert back.byte_inputs is not None
    for b, orig in zip(back.byte_inputs, d.byte_inputs, strict=True):
        assert not b.codes.flags.writeable
        np.testing.assert_array_equal(b.codes, orig.codes)
        np.testing.assert_array_equal(_bits(b.decode()), _bits(orig.decode()))
