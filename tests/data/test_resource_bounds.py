"""A data file cannot make tinyevo allocate what it declares without bound: labels, WAV sample rates, image
sizes, archive members and ``.npz`` array headers are checked first, each a one-line DataError (issue 17)."""

from __future__ import annotations

import io
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest

import tinyevo.data.loaders as loaders
from tinyevo.data import load_dataset
from tinyevo.data.audio import AudioFrontEnd, read_wav
from tinyevo.data.dataset import from_arrays
from tinyevo.errors import ConfigError, DataError


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def test_a_huge_label_is_refused_before_classes_are_built(tmp_path: Path) -> None:
    x = np.zeros((20, 4, 4), dtype=np.float32)
    y = np.array([0, 1] * 9 + [0, 10**6])  # one label far beyond the 20 samples
    with pytest.raises(DataError, match=r"labels out of range: found 1000000 .*20 samples"):
        load_dataset(str(_npz(tmp_path / "d.npz", x=x, y=y)), cache=False)


def test_a_huge_label_with_an_explicit_test_split_is_refused(tmp_path: Path) -> None:
    x = np.zeros((10, 4, 4), dtype=np.float32)
    y = np.array([0, 1] * 5)
    ys = np.array([0, 2**40])
    with pytest.raises(DataError, match="labels out of range"):
        from_arrays(x, y, x[:2], ys)


def test_declared_classes_are_bounded() -> None:
    x = np.zeros((10, 4, 4), dtype=np.float32)
    with pytest.raises(DataError, match="num_classes must be in 1..100000"):
        from_arrays(x, np.array([0, 1] * 5), num_classes=2**40)


def test_labels_within_the_bound_still_load() -> None:
    x = np.random.default_rng(0).normal(size=(40, 4, 4)).astype(np.float32)
    d = from_arrays(x, np.array([0, 3] * 20))  # classes 1, 2 absent: allowed (4 <= 40 samples)
    assert d.num_classes == 4


def _wav(rate: int, samples: int = 100) -> bytes:
    data = np.full(samples, 128, dtype=np.uint8).tobytes()  # 8-bit mono: the header's byte rate is the rate
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate, 1, 8)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_a_wav_header_with_an_absurd_sample_rate_is_refused() -> None:
    assert read_wav(_wav(16000), "ok.wav")[0] == 16000
    with pytest.raises(DataError, match=r"bomb.wav declares a sample rate of 2147483648 Hz"):
        read_wav(_wav(2**31), "bomb.wav")


def test_the_front_end_sample_rate_and_clip_are_bounded() -> None:
    with pytest.raises(ConfigError, match="sample_rate must be in 1..384000"):
        AudioFrontEnd(sample_rate=2**31)
    with pytest.raises(ConfigError, match="clip_seconds must be at most 60"):
        AudioFrontEnd(clip_seconds=1e9)


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def _image_folder(root: Path, big: bytes) -> Path:
    from PIL import Image

    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (4, 4), 10 * i).save(root / cls / f"{i}.png")
    (root / "a" / "bomb.png").write_bytes(big)
    return root


@pytest.mark.parametrize("side", [20_000, 100_000])  # PIL warns at the first and refuses the second
def test_a_decompression_bomb_image_is_one_data_error(tmp_path: Path, side: int) -> None:
    folder = _image_folder(tmp_path / "imgs", _png(side, side))
    with pytest.raises(DataError, match=r"bomb.png"):
        load_dataset(str(folder), cache=False)


def test_an_archive_member_larger_than_the_bound_is_refused(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loaders, "MAX_FILE_BYTES", 1000)
    tar = tmp_path / "d.tar"
    with tarfile.open(tar, "w") as tf:
        for name, size in (("a/0.png", 10), ("b/big.png", 5000)):
            info = tarfile.TarInfo(name)
            info.size = size
            tf.addfile(info, io.BytesIO(b"\0" * size))
    with pytest.raises(DataError, match=r"b/big.png is 5000 bytes; data files of at most 1000 bytes"):
        load_dataset(str(tar), cache=False)


def test_an_npz_array_declaring_more_than_it_holds_is_refused(tmp_path: Path) -> None:
    path = _npz(tmp_path / "d.npz", x=np.zeros((4, 2, 2), dtype=np.float32), y=np.array([0, 1, 0, 1]))
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (2**40,)})
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("x_test.npy", header.getvalue() + b"\0" * 64)
        zf.writestr("y_test.npy", header.getvalue() + b"\0" * 64)
    with pytest.raises(DataError, match=r"declares \d+ bytes; at most"):
        load_dataset(str(path), cache=False)
