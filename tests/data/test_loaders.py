from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import wavfile

from tinyevo.data import AudioFrontEnd, load_dataset
from tinyevo.errors import ConfigError, DataError


def _png(path: Path, value: int, size: tuple[int, int] = (6, 5), mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    Image.fromarray(np.full(shape, value, dtype=np.uint8), mode=mode).save(path)


def _image_tree(root: Path, *, ext: str = ".png", mode: str = "L") -> None:
    for split, n in (("train", 6), ("test", 2)):
        for cls, value in (("cat", 30), ("dog", 200)):
            for i in range(n):
                _png(root / split / cls / f"{i}{ext}", value + i, mode=mode)


def _wav(path: Path, freq: float, *, rate: int = 8000, seconds: float = 0.3) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(rate * seconds)) / rate
    wavfile.write(path, rate, (0.5 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16))


def _tar(src: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w:gz") as tf:
        tf.add(src, arcname="data")
    return dest


def test_digits_builtin() -> None:
    d = load_dataset("digits", seed=1)
    assert d.input_shape == (1, 8, 8) and d.num_classes == 10 and d.name == "digits"
    assert len(d.x_train) + len(d.x_val) + len(d.x_test) == 1797
    assert np.array_equal(load_dataset("digits", seed=1).y_val, d.y_val)


def test_keras_npz_grayscale_and_color(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    gray = tmp_path / "gray.npz"
    np.savez(
        gray, x_train=rng.integers(0, 255, (40, 7, 7), dtype=np.uint8), y_train=np.arange(40) % 4,
        x_test=rng.integers(0, 255, (8, 7, 7), dtype=np.uint8), y_test=np.arange(8) % 4,
        classes=np.array(["a", "b", "c", "d"]),
    )
    d = load_dataset(gray)
    assert d.input_shape == (1, 7, 7) and len(d.x_test) == 8 and d.class_names == ("a", "b", "c", "d")
    color = tmp_path / "color.npz"
    np.savez(color, x_train=rng.random((30, 9, 9, 3)).astype(np.float32), y_train=np.arange(30) % 3)
    c = load_dataset(color, val_fraction=0.2)
    assert c.input_shape == (3, 9, 9) and len(c.x_test) == 6 and len(c.x_val) > 0


def test_sensor_npz(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    p = tmp_path / "imu.npz"
    np.savez(p, x=rng.normal(size=(50, 32, 3)), y=np.arange(50) % 5)
    d = load_dataset(p)
    assert d.input_shape == (1, 32, 3) and d.num_classes == 5 and len(d.x_test) == 10
    p2 = tmp_path / "imu2.npz"
    np.savez(p2, x=rng.normal(size=(50, 32, 3)), y=np.arange(50) % 5, x_test=rng.normal(size=(7, 32, 3)),
             y_test=np.arange(7) % 5)
    assert len(load_dataset(p2).x_test) == 7


def test_image_folder_png(tmp_path: Path) -> None:
    _image_tree(tmp_path / "imgs")
    d = load_dataset(tmp_path / "imgs", val_fraction=0.2)
    assert d.input_shape == (1, 5, 6)  # (C, H, W) of 6x5 (W x H) images
    assert d.class_names == ("cat", "dog") and len(d.x_test) == 4 and len(d.x_train) + len(d.x_val) == 12
    # labels follow the folders: cats are dark, dogs bright
    raw = load_dataset(tmp_path / "imgs", normalize=False)
    assert float(raw.x_test[raw.y_test == 0].max()) < 0.5 < float(raw.x_test[raw.y_test == 1].min())


def test_image_folder_without_split_and_resize(tmp_path: Path) -> None:
    for cls, v in (("0", 10), ("1", 240)):
        for i in range(10):
            _png(tmp_path / "flat" / cls / f"{i}.png", v, size=(8 if i % 2 else 6, 6), mode="RGB")
    with pytest.raises(DataError, match="image_size"):
        load_dataset(tmp_path / "flat")
    d = load_dataset(tmp_path / "flat", image_size=(4, 4))
    assert d.input_shape == (3, 4, 4) and len(d.x_test) == 4


def test_image_tar_gz_with_jpg(tmp_path: Path) -> None:
    _image_tree(tmp_path / "src", ext=".jpg", mode="RGB")
    d = load_dataset(_tar(tmp_path / "src", tmp_path / "imgs.tar.gz"))
    assert d.input_shape == (3, 5, 6) and len(d.x_test) == 4 and d.name == "imgs"


def test_wav_folder_by_subfolder(tmp_path: Path) -> None:
    for cls, f in (("yes", 300.0), ("no", 1200.0)):
        for i in range(6):
            _wav(tmp_path / "kws" / cls / f"{i}.wav", f + 10 * i)
    d = load_dataset(tmp_path / "kws", audio=AudioFrontEnd(clip_seconds=0.5))
    assert d.input_shape == (1, 24, 10)  # 1 + (4000 - 240) // 160 frames, 10 MFCCs
    assert d.class_names == ("no", "yes") and len(d.x_test) == 2
    lm = load_dataset(tmp_path / "kws", audio=AudioFrontEnd(features="logmel", n_mels=16, clip_seconds=0.5))
    assert lm.input_shape == (1, 24, 16)


def test_wav_tar_gz_fsdd_names_and_split(tmp_path: Path) -> None:
    for digit, f in ((0, 400.0), (1, 900.0), (2, 1500.0)):
        for n in range(8):
            _wav(tmp_path / "src" / "recordings" / f"{digit}_alice_{n}.wav", f, rate=8000 if n % 2 else 16000)
    d = load_dataset(_tar(tmp_path / "src", tmp_path / "fsdd.tar.gz"))
    assert d.num_classes == 3 and d.class_names == ("0", "1", "2")
    assert len(d.x_test) == 15  # file index 0..4 is test (FSDD convention)
    assert d.input_shape == (1, 49, 10)  # 1 s, 30 ms window, 20 ms hop


def test_wav_testing_list(tmp_path: Path) -> None:
    root = tmp_path / "sc"
    for cls, f in (("up", 500.0), ("down", 2000.0)):
        for i in range(5):
            _wav(root / cls / f"{i}.wav", f)
    (root / "testing_list.txt").write_text("up/0.wav\ndown/0.wav\n")
    d = load_dataset(root)
    assert len(d.x_test) == 2 and sorted(d.y_test.tolist()) == [0, 1]


def test_wav_features_separate_tones() -> None:
    from tinyevo.data.audio import features

    rate = 8000
    t = np.arange(rate) / rate
    lo = features(np.sin(2 * np.pi * 300 * t).astype(np.float32), rate, AudioFrontEnd(features="logmel"))
    hi = features(np.sin(2 * np.pi * 3000 * t).astype(np.float32), rate, AudioFrontEnd(features="logmel"))
    assert lo.shape == (1, 49, 40)
    assert int(lo[0].mean(0).argmax()) < int(hi[0].mean(0).argmax())


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: p / "missing.npz", "no such"),
        (lambda p: (np.savez(p / "a.npz", images=np.zeros((4, 2, 2)), labels=np.zeros(4)), p / "a.npz")[1],
         "expected x_train"),
        (lambda p: ((p / "b.npz").write_bytes(b"not a zip"), p / "b.npz")[1],
         r"b\.npz is not a valid \.npz archive"),
        (lambda p: ((p / "t.npz").write_text("x,y\n1,2\n"), p / "t.npz")[1],
         r"t\.npz is not a valid \.npz archive"),
        (lambda p: (np.savez(p / "c.npz", x_train=np.zeros((4, 2, 2)), y_train=np.arange(4) % 2,
                             x_test=np.zeros((2, 2, 2))), p / "c.npz")[1], "no y_test"),
        (lambda p: (np.savez(p / "d.npz", x_train=np.zeros((4, 2, 2)), y_train=np.zeros(4)), p / "d.npz")[1],
         "one class"),
        (lambda p: ((p / "e.txt").write_text("hi"), p / "e.txt")[1], "expected 'digits'"),
        (lambda p: ((p / "empty").mkdir(), p / "empty")[1], "no images"),
    ],
)
def test_bad_files_raise_one_data_error(tmp_path: Path, setup, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError, match=message):
        load_dataset(setup(tmp_path))


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    _image_tree(tmp_path / "imgs")
    (tmp_path / "imgs" / "train" / "cat" / "broken.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="broken.png"):
        load_dataset(tmp_path / "imgs")
    _wav(tmp_path / "kws" / "a" / "0.wav", 300)
    _wav(tmp_path / "kws" / "b" / "0.wav", 300)
    (tmp_path / "kws" / "b" / "1.wav").write_bytes(b"RIFF....junk")
    with pytest.raises(DataError, match="1.wav"):
        load_dataset(tmp_path / "kws")
    (tmp_path / "bad.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DataError, match="archive"):
        load_dataset(tmp_path / "bad.tar.gz")


def test_one_class_folder_and_unlabelled_clips(tmp_path: Path) -> None:
    for i in range(4):
        _png(tmp_path / "one" / "train" / "only" / f"{i}.png", 3)
    with pytest.raises(DataError, match="one class"):
        load_dataset(tmp_path / "one")
    for i in range(3):
        _wav(tmp_path / "flat" / f"clip{i}.wav", 300)
    with pytest.raises(DataError, match="class of"):
        load_dataset(tmp_path / "flat")


def test_audio_front_end_options_are_checked() -> None:
    with pytest.raises(ConfigError):
        AudioFrontEnd(features="spectrogram")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        AudioFrontEnd(n_mfcc=50, n_mels=40)


def test_decoded_folders_are_cached_and_invalidated(tmp_path: Path, _data_cache_in_tmp: Path) -> None:
    _image_tree(tmp_path / "imgs")
    first = load_dataset(tmp_path / "imgs", normalize=False)
    entries = list(_data_cache_in_tmp.glob("*.npz"))
    assert len(entries) == 1
    again = load_dataset(tmp_path / "imgs", normalize=False)
    assert np.array_equal(again.x_train, first.x_train) and again.class_names == first.class_names
    _png(tmp_path / "imgs" / "test" / "dog" / "0.png", 7, size=(6, 5))  # a changed file is noticed
    changed = load_dataset(tmp_path / "imgs", normalize=False)
    assert not np.array_equal(changed.x_test, first.x_test)
    assert len(list(_data_cache_in_tmp.glob("*.npz"))) == 2
    load_dataset(tmp_path / "imgs", cache=False, image_size=(3, 3))
    assert len(list(_data_cache_in_tmp.glob("*.npz"))) == 2
    for entry in _data_cache_in_tmp.glob("*.npz"):
        entry.write_bytes(b"damaged")  # a damaged entry is rebuilt, not an error
    rebuilt = load_dataset(tmp_path / "imgs", normalize=False)
    assert np.array_equal(rebuilt.x_test, changed.x_test)
