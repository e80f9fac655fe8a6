"""``load_dataset(spec)``: the built-in ``digits`` set, or a user's data from a path.

Supported paths (the format is recognised from the path and its contents):

* ``.npz`` with ``x_train, y_train`` (and optionally ``x_test, y_test``; Keras style, images ``HxW`` or
  ``HxWxC``, uint8 or float; an optional ``classes`` array names the classes);
* ``.npz`` with ``x, y`` (sensor time series ``N x T x C`` or ``N x T``; optionally ``x_test, y_test``), read
  as a one-channel ``T x C`` image;
* a folder, or a ``.tar.gz`` / ``.tgz`` / ``.tar`` archive, of images (``train/<class>/*.png|jpg`` and
  ``test/<class>/...``; without split folders ``<class>/*.png`` and a test split is carved) -- read with
  Pillow;
* a folder or archive of ``.wav`` clips, labelled by their sub-folder or, when they all share one folder, by
  the file-name prefix (FSDD's ``7_jackson_12.wav`` is class ``7``), turned into MFCC / log-mel features
  (:mod:`tinyevo.data.audio`). Split: ``train/`` and ``test/`` folders if present, else Speech Commands'
  ``testing_list.txt``, else FSDD's convention (``<label>_<speaker>_<n>.wav`` with ``n`` in 0..4 is test),
  else a carved stratified split.

Archives are streamed (never extracted to disk). Without an explicit test split, a stratified test split is
carved with a fixed seed, so the test set does not change with the run seed.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import tarfile
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from tinyevo.data import shared
from tinyevo.data.audio import AudioFrontEnd, features, read_wav, resample
from tinyevo.data.dataset import ArrayPlan, Dataset, from_arrays, materialize, plan_arrays
from tinyevo.errors import DataError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm")
AUDIO_EXTENSIONS = (".wav",)
TRAIN_DIRS = ("train", "training")
TEST_DIRS = ("test", "testing")
BUILTIN = ("digits",)
MAX_FILE_BYTES = 256 * 2**20
"""The largest image or audio file (in a folder or an archive member) tinyevo reads: each is read whole."""
MAX_IMAGE_PIXELS = 4096 * 4096
"""The largest image (width x height) tinyevo decodes (a compressed image may declare far more pixels than its
file size suggests: a decompression bomb)."""
MAX_ARRAY_BYTES = 16 * 2**30
"""The largest array of a ``.npz`` file tinyevo loads."""


def load_dataset(
    spec: str | Path,
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    image_size: tuple[int, int] | None = None,
    val_min_per_class: int = 0,
    audio: AudioFrontEnd | None = None,
    normalize: bool = True,
    cache: bool | str | Path = True,
) -> Dataset:
    """Load ``spec`` (``"digits"`` or a path) as a :class:`Dataset` with a seeded, stratified validation
    split.

    ``val_min_per_class`` raises the validation samples of a small class (see
    :func:`~tinyevo.data.dataset.stratified_split`).
    ``image_size`` resizes every image to ``(H, W)`` (needed when an image folder mixes sizes); ``audio`` sets
    the front end for ``.wav`` data. Any problem with the data raises one :class:`~tinyevo.errors.DataError`
    naming it.

    ``cache`` (``True``: ``$TINYEVO_CACHE_DIR`` or ``~/.cache/tinyevo/data``; a folder; ``False``: none) keeps
    decoded image / audio folders, and the prepared data set of a large user data set (at least
    :data:`~tinyevo.data.shared.SHARE_MIN_BYTES`): its arrays are then memory-mapped from the cache, shared by
    every process that loads the same data with the same options (see :mod:`tinyevo.data.shared`).
    """
    common = dict(seed=seed, val_fraction=val_fraction, test_fraction=test_fraction, normalize=normalize,
                  val_min_per_class=val_min_per_class)
    text = str(spec)
    if text == "digits":
        return _digits(**common)  # type: ignore[arg-type]
    path = Path(text).expanduser()
    if not path.exists():
        raise DataError(f"no such data file or folder {text!r} (built-in data sets: {', '.join(BUILTIN)})")
    name = path.name.split(".")[0] or "data"
    is_npz = path.is_file() and path.suffix == ".npz"
    if not (is_npz or path.is_dir() or (path.is_file() and _is_archive(path))):
        raise DataError(
            f"cannot load {text!r}: expected 'digits', a .npz file, a folder, or a .tar.gz / .tar / .zip "
            "archive"
        )
    front = audio or AudioFrontEnd()
    directory = _cache_dir(cache)
    prepared: Path | None = None
    if directory is not None:  # the prepared data set, shared by every process through memory-mapped files
        source = _source_key(path) if is_npz else _cache_key(path, image_size, front)
        prepared = directory / "prepared" / shared.prepared_key(source, name=name, **common)
        hit = shared.open_prepared(prepared)
        if hit is not None:
            return hit
    raw = None
    if is_npz:
        plan = _npz(path, name=name, **common)  # type: ignore[arg-type]
    else:
        key = _cache_key(path, image_size, front) if directory is not None else ""
        raw = _cache_load(directory / f"{key}.npz") if directory is not None else None
        if raw is None:
            raw = _decode(path, image_size=image_size, front=front)
            if directory is not None:
                _cache_save(directory / f"{key}.npz", raw)
        plan = _assemble(raw, name=name, **common)  # type: ignore[arg-type]
    if prepared is not None and plan.nbytes >= shared.SHARE_MIN_BYTES:
        # made chunk by chunk into the files: the float32 arrays are never held in this process
        data = shared.write_prepared(plan, prepared)
        del plan, raw  # the source arrays
        shared.release_free_memory()
        return data
    return materialize(plan)


def _decode(path: Path, *, image_size: tuple[int, int] | None, front: AudioFrontEnd) -> _Raw:
    files = list(_folder_files(path)) if path.is_dir() else list(_archive_files(path))
    n_img = sum(1 for f in files if f.path.suffix.lower() in IMAGE_EXTENSIONS)
    n_wav = sum(1 for f in files if f.path.suffix.lower() in AUDIO_EXTENSIONS)
    if n_img == 0 and n_wav == 0:
        raise DataError(f"{str(path)!r} contains no images ({'/'.join(IMAGE_EXTENSIONS)}) and no .wav files")
    if n_wav > n_img:
        return _decode_wavs(files, front=front)
    return _decode_images(files, image_size=image_size)


# --- cache of decoded folders / archives --------------------------------------------------------------------

_CACHE_VERSION = 1


@dataclass(frozen=True)
class _Raw:
    """Decoded samples before splitting / normalisation (what the cache stores)."""

    x: np.ndarray  # (N, C, H, W), uint8 images or float32 features
    labels: tuple[str, ...]
    splits: tuple[str, ...]  # "train", "test" or "" (not given)
    scale: float
    what: str


def _cache_dir(cache: bool | str | Path) -> Path | None:
    if cache is False:
        return None
    if cache is True:
        env = os.environ.get("TINYEVO_CACHE_DIR")
        return Path(env) if env else Path.home() / ".cache" / "tinyevo" / "data"
    return Path(cache)


def _cache_key(path: Path, image_size: tuple[int, int] | None, front: AudioFrontEnd) -> str:
    """Digest of the source (path, sizes and modification times of its files) and the decoding options."""
    h = hashlib.sha256()
    h.update(f"v{_CACHE_VERSION}|{path.resolve()}|{image_size}|{front!r}".encode())
    entries = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in entries:
        st = p.stat()
        h.update(f"|{p}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


def _source_key(path: Path) -> str:
    """What identifies a data file's contents: its resolved path, size and modification time."""
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def _cache_load(file: Path) -> _Raw | None:
    if not file.exists():
        return None
    try:
        with np.load(file, allow_pickle=False) as z:
            return _Raw(z["x"], tuple(z["labels"].tolist()), tuple(z["splits"].tolist()), float(z["scale"]),
                        str(z["what"]))
    except Exception:  # noqa: BLE001 - a damaged cache entry is rebuilt
        log.warning("ignoring damaged data cache entry %s", file)
        return None


def _cache_save(file: Path, raw: _Raw) -> None:
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=file.parent, suffix=".tmp.npz")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, x=raw.x, labels=np.array(raw.labels), splits=np.array(raw.splits),
                     scale=np.float64(raw.scale), what=np.array(raw.what))
        os.replace(tmp, file)
    except OSError as exc:  # a read-only home directory only costs speed
        log.warning("cannot write data cache %s: %s", file, exc)


# --- built-in -----------------------------------------------------------------------------------------------


def _digits(**common: object) -> Dataset:
    data, target = _digits_arrays()
    x = data.reshape(-1, 1, 8, 8).astype(np.float32) / 16.0
    return from_arrays(x, target, name="digits", channels_last=False, **common)  # type: ignore[arg-type]


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits (``load_digits().data, .target``) read from the CSV file it ships, without importing
    ``sklearn.datasets`` (0.5 s of start-up); through ``load_digits`` where the file is not found."""
    import gzip
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    for root in (spec.submodule_search_locations or []) if spec else []:
        file = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if file.is_file():
            with gzip.open(file, mode="rt", encoding="utf-8") as fh:
                table = np.loadtxt(fh, delimiter=",")
            return table[:, :-1], table[:, -1].astype(int, copy=False)
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data, d.target


# --- npz ----------------------------------------------------------------------------------------------------


def _npz(path: Path, *, name: str, **common: object) -> ArrayPlan:
    if not zipfile.is_zipfile(path):  # numpy would try to unpickle it and complain about pickled data
        raise DataError(f"{path} is not a valid .npz archive (not a zip file); save one with numpy.savez")
    _check_npz_sizes(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001 - zipfile.BadZipFile, ValueError (pickled objects), OSError ...
        raise DataError(f"cannot read {path}: {exc}") from None
    keys = set(arrays)
    classes = tuple(str(c) for c in arrays["classes"]) if "classes" in arrays else ()
    if {"x_train", "y_train"} <= keys:
        x, y = arrays["x_train"], arrays["y_train"]
    elif {"x", "y"} <= keys:
        x, y = arrays["x"], arrays["y"]
    else:
        raise DataError(
            f"{path} has arrays {sorted(keys)}; expected x_train, y_train (and x_test, y_test) for images, "
            "or x, y (and optionally x_test, y_test) for time series"
        )
    has_test = {"x_test", "y_test"} & keys
    if has_test and has_test != {"x_test", "y_test"}:
        missing = ({"x_test", "y_test"} - keys).pop()
        raise DataError(f"{path} has {has_test.pop()} but no {missing}")
    xs = arrays.get("x_test")
    ys = arrays.get("y_test")
    labelled = [a for a in (y, ys) if a is not None and np.size(a)]  # np.max of an empty y raised ValueError
    if classes and (not labelled or len(classes) != int(max(np.max(a) for a in labelled)) + 1):
        classes = ()  # a 'classes' array that does not match the labels is ignored
    return plan_arrays(x, y, xs, ys, name=name, class_names=classes, **common)  # type: ignore[arg-type]


def _check_npz_sizes(path: Path) -> None:
    """Every array of the ``.npz`` must hold the data its header declares, and at most :data:`MAX_ARRAY_BYTES`:
    checked from the headers, before numpy allocates an array of the declared shape."""
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with zf.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                    else:
                        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
                    header = fh.tell()
                if dtype.hasobject:
                    continue  # refused by allow_pickle=False when loaded
                nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
                what = f"array {info.filename[:-4]!r} of {path}"
                if nbytes > MAX_ARRAY_BYTES:
                    raise DataError(f"{what} declares {nbytes} bytes; at most {MAX_ARRAY_BYTES} are read")
                if nbytes > info.file_size - header:
                    raise DataError(f"{what} declares shape {shape} ({nbytes} bytes) but holds "
                                    f"{max(info.file_size - header, 0)} bytes of data")
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None


def _too_big(size: int, what: object) -> None:
    if size > MAX_FILE_BYTES:
        raise DataError(f"{what} is {size} bytes; data files of at most {MAX_FILE_BYTES} bytes are read "
                        "(images and audio clips for microcontrollers are far smaller)")


# --- file trees (folders and archives) ----------------------------------------------------------------------


@dataclass(frozen=True)
class _File:
    path: PurePosixPath  # relative to the folder / archive root
    data: bytes


def _wanted(name: str) -> bool:
    p = PurePosixPath(name)
    return (
        p.suffix.lower() in IMAGE_EXTENSIONS + AUDIO_EXTENSIONS
        or p.name == "testing_list.txt"
    ) and not any(part.startswith(".") or part == "__MACOSX" for part in p.parts)


def _folder_files(root: Path) -> Iterator[_File]:
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and _wanted(rel):
            try:
                _too_big(p.stat().st_size, p)
                yield _File(PurePosixPath(rel), p.read_bytes())
            except OSError as exc:
                raise DataError(f"cannot read {p}: {exc}") from None


def _is_archive(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz", ".zip"))


def _archive_files(path: Path) -> Iterator[_File]:
    """Stream the wanted members of an archive (sequential reading: no random seeks in the compressed
    stream)."""
    try:
        if path.name.lower().endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                for info in sorted(zf.infolist(), key=lambda i: i.filename):
                    if not info.is_dir() and _wanted(info.filename):
                        _too_big(info.file_size, f"{path}:{info.filename}")
                        yield _File(PurePosixPath(info.filename), zf.read(info))
            return
        out: list[_File] = []
        with tarfile.open(path, mode="r|*") as tf:
            for member in tf:
                if member.isfile() and _wanted(member.name):
                    _too_big(member.size, f"{path}:{member.name}")
                    fh = tf.extractfile(member)
                    if fh is not None:
                        out.append(_File(PurePosixPath(member.name), fh.read()))
        yield from sorted(out, key=lambda f: f.path)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise DataError(f"cannot read archive {path}: {exc}") from None


def _split_and_class(path: PurePosixPath) -> tuple[str | None, str]:
    """('train' | 'test' | None, class folder name) of ``.../<split>/<class>/<file>``."""
    parts = path.parts
    cls = parts[-2] if len(parts) >= 2 else ""
    if len(parts) >= 3:
        split = parts[-3].lower()
        if split in TRAIN_DIRS:
            return "train", cls
        if split in TEST_DIRS:
            return "test", cls
    return None, cls


def _sort_classes(names: set[str]) -> list[str]:
    if all(n.isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


def _assemble(raw: _Raw, *, name: str, **common: object) -> ArrayPlan:
    classes = _sort_classes(set(raw.labels))
    if len(classes) < 2:
        only = classes[0] if classes else "none"
        raise DataError(f"{raw.what} has only one class ({only}); need at least two")
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[c] for c in raw.labels], dtype=np.int64)
    x = raw.x
    test = np.array([s == "test" for s in raw.splits])
    opts = dict(name=name, class_names=classes, channels_last=False, scale=raw.scale, **common)
    if test.any():
        if test.all():
            raise DataError(f"{raw.what} has test files but no training files")
        return plan_arrays(x[~test], y[~test], x[test], y[test], **opts)  # type: ignore[arg-type]
    return plan_arrays(x, y, **opts)  # type: ignore[arg-type]


# --- images -------------------------------------------------------------------------------------------------


def _decode_images(files: list[_File], *, image_size: tuple[int, int] | None) -> _Raw:
    from PIL import Image, UnidentifiedImageError

    images = [f for f in files if f.path.suffix.lower() in IMAGE_EXTENSIONS]
    size = (image_size[1], image_size[0]) if image_size else None  # PIL sizes are (W, H)
    arrays: list[np.ndarray] = []  # uint8, (H, W) for grey images, (H, W, 3) for colour ones
    for f in images:
        try:
            with Image.open(io.BytesIO(f.data)) as im:
                if im.size[0] * im.size[1] > MAX_IMAGE_PIXELS:  # before decoding anything
                    raise DataError(f"image {f.path} is {im.size[0]}x{im.size[1]} pixels; images of at most "
                                    f"{MAX_IMAGE_PIXELS} pixels are read")
                im = im.convert("L" if im.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB")
                if size is None:
                    size = im.size
                if im.size != size:
                    if image_size is None:
                        raise DataError(
                            f"image {f.path} is {im.size[0]}x{im.size[1]} but others are {size[0]}x{size[1]} "
                            "(W x H); pass image_size=(H, W) to resize every image"
                        )
                    im = im.resize(size, Image.Resampling.BILINEAR)
                arrays.append(np.asarray(im, dtype=np.uint8))
        except DataError:
            raise
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
            raise DataError(f"cannot read image {f.path}: {exc}") from None
    color = any(a.ndim == 3 for a in arrays)
    x = np.empty((len(arrays), 3 if color else 1, size[1], size[0]), dtype=np.uint8)  # type: ignore[index]
    for i, a in enumerate(arrays):
        x[i] = np.moveaxis(a, 2, 0) if a.ndim == 3 else a[None]  # grey images broadcast to 3 channels
    del arrays
    splits, labels = zip(*(_split_and_class(f.path) for f in images))
    return _Raw(x, tuple(labels), tuple(s or "" for s in splits), 1 / 255, "the image data")


# --- audio --------------------------------------------------------------------------------------------------

_FSDD_NAME = re.compile(r"^([^_]+)_([^_]+)_(\d+)$")


def _decode_wavs(files: list[_File], *, front: AudioFrontEnd) -> _Raw:
    wavs = [f for f in files if f.path.suffix.lower() in AUDIO_EXTENSIONS]
    testing: set[str] = set()
    for f in files:
        if f.path.name == "testing_list.txt":
            root = f.path.parent
            listed = [line.strip() for line in f.data.decode().splitlines()]
            testing |= {(root / line).as_posix() for line in listed if line}
    placed = [_split_and_class(f.path) for f in wavs]
    parents = {f.path.parent for f in wavs}
    by_prefix = len(parents) == 1  # all clips in one folder: the label is the file-name prefix
    labels, splits = [], []
    fsdd = by_prefix and all(_FSDD_NAME.match(f.path.stem) for f in wavs)
    for f, (split, cls) in zip(wavs, placed):
        if by_prefix:
            stem = f.path.stem
            cls = re.split(r"[_\-]", stem, maxsplit=1)[0]
            if cls == stem:
                raise DataError(
                    f"cannot tell the class of {f.path}: put clips in <class>/ folders or name them "
                    "<class>_*.wav"
                )
        labels.append(cls)
        if split is None and testing:
            split = "test" if f.path.as_posix() in testing else "train"
        if split is None and fsdd:
            m = _FSDD_NAME.match(f.path.stem)
            split = "test" if m is not None and int(m.group(3)) < 5 else "train"
        splits.append(split)

    clips = [read_wav(f.data, str(f.path)) for f in wavs]
    rate = front.sample_rate or Counter(r for r, _ in clips).most_common(1)[0][0]
    feats = [features(resample(w, r, rate), rate, front) for r, w in clips]
    return _Raw(np.stack(feats), tuple(labels), tuple(s or "" for s in splits), 1.0, "the audio data")
