"""A data set loaded once and shared by every process without copies: memory-mapped ``.npy`` files.

:func:`~tinyevo.data.load_dataset` keeps the *prepared* data set (split, normalised, float32 -- exactly the
:class:`~tinyevo.data.Dataset` it returns) of a large user data set in the data cache
(``$TINYEVO_CACHE_DIR``, default ``~/.cache/tinyevo/data``) under ``prepared/<key>/``, one ``.npy`` file per array,
and returns arrays memory-mapped from those files. Every process that loads the same data with the same options
(the search driver, each persistent worker process, a Dask worker on the same machine, a resumed run, ``tinyevo
retrain``) maps the same files: the operating system holds one copy of the data in its page cache, shared by all
of them, instead of one private copy per process, and a worker's start-up skips decoding and normalising.

The key covers the source (resolved path, size and modification time of every file) and every option that changes
the arrays (seed, split fractions, image size, audio front end, normalisation), so a changed file or option never
reads stale data. The arrays are mapped copy-on-write (``mmap_mode="c"``) and flagged read-only: an accidental
write can neither crash the process nor change the file. Data sets smaller than :data:`SHARE_MIN_BYTES` stay in
memory (sharing them saves nothing worth a file); at most :data:`MAX_ENTRIES` prepared data sets are kept (the least
recently used one is removed first; a process that has it mapped keeps its mapping).

Where every source is uint8 (8-bit images: Fashion-MNIST, MNIST, CIFAR, image folders), the entry also holds those
bytes (``bytes_<split>.npy``, a quarter of the float32 arrays' size) and the data set carries them as
:class:`~tinyevo.data.dataset.ByteInputs`: the training loop gathers its batches from the bytes and converts each
with the same float32 operations, so a worker touches (and holds in memory) 47 MiB of Fashion-MNIST instead of 188,
and trains the same weights. The float32 files stay for every other reader.

:func:`as_tensor` turns such an array into a CPU tensor that shares its memory (no per-candidate copy).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tinyevo.data.dataset import ArrayPlan, ByteInputs, Dataset, InputTransform, materialize, with_byte_inputs

log = logging.getLogger(__name__)

SHARE_MIN_BYTES = 8 * 2**20
"""Data sets whose arrays hold fewer bytes stay in memory (each process holds its own copy)."""
MAX_ENTRIES = 6
"""The most prepared data sets kept in the cache (least recently used removed first)."""
_VERSION = 2  # 2: uint8 sources also stored as bytes (bytes_*.npy)
_SPLITS = ("train", "val", "test")
_ARRAYS = tuple(f"{p}_{s}" for s in _SPLITS for p in ("x", "y"))
_BYTES = tuple(f"bytes_{s}" for s in _SPLITS)


def prepared_key(source: str, **options: object) -> str:
    """The cache key of a prepared data set: a digest of ``source`` (what identifies the input files) and the
    loading ``options``."""
    h = hashlib.sha256(f"prepared-v{_VERSION}|{source}".encode())
    for k in sorted(options):
        h.update(f"|{k}={options[k]!r}".encode())
    return h.hexdigest()[:32]


def nbytes(data: Dataset) -> int:
    """Bytes held by ``data``'s arrays."""
    return sum(int(getattr(data, a).nbytes) for a in _ARRAYS)


def open_prepared(directory: Path) -> Dataset | None:
    """The data set stored in ``directory`` by :func:`store_prepared`, its arrays memory-mapped; ``None`` when
    there is none (or it is incomplete or damaged: it is then removed, to be rebuilt)."""
    meta_file = directory / "meta.json"
    if not meta_file.is_file():
        return None
    try:
        meta = json.loads(meta_file.read_text())
        arrays = {}
        kept = meta.get("bytes")  # the uint8 source values, with the transform's scale (version 2)
        for a in (*_ARRAYS, *(_BYTES if kept is not None else ())):
            m = np.load(directory / f"{a}.npy", mmap_mode="c", allow_pickle=False)
            want = meta["arrays"][a]
            if list(m.shape) != want["shape"] or str(m.dtype) != want["dtype"]:
                raise ValueError(f"{a} has shape {m.shape} {m.dtype}, expected {want}")
            arrays[a] = m.view(np.ndarray)  # a plain ndarray whose memory is the mapping (base: the memmap)
        data = Dataset(
            name=str(meta["name"]), num_classes=int(meta["num_classes"]),
            class_names=tuple(meta["class_names"]), mean=tuple(meta["mean"]), std=tuple(meta["std"]),
            **{a: arrays[a] for a in _ARRAYS},
        )
        if kept is not None:
            transform = InputTransform(scale=float(kept["scale"]), mean=data.mean, std=data.std)
            with_byte_inputs(data, [ByteInputs(arrays[b], transform) for b in _BYTES])
    except FileNotFoundError:  # removed by another process between the checks: rebuilt by the caller
        return None
    except Exception as exc:  # noqa: BLE001 - a damaged entry is rebuilt
        log.warning("ignoring damaged prepared data set %s: %s", directory, exc)
        shutil.rmtree(directory, ignore_errors=True)
        return None
    with contextlib.suppress(OSError):
        os.utime(meta_file)  # most recently used
    return data


def store_prepared(data: Dataset, directory: Path) -> Dataset:
    """Write ``data``'s arrays to ``directory`` (atomically: a temporary folder renamed into place) and return the
    data set memory-mapped from there. When the files cannot be written, ``data`` itself is returned."""
    arrays = {a: (getattr(data, a).shape, getattr(data, a).dtype, iter((getattr(data, a),))) for a in _ARRAYS}
    shared = _write(directory, _meta(data.name, data.num_classes, data.class_names, data.mean, data.std), arrays)
    return shared if shared is not None else data


def write_prepared(plan: ArrayPlan, directory: Path) -> Dataset:
    """Make the data set of ``plan`` as files in ``directory``, chunk by chunk (a large data set is prepared
    without holding its float32 arrays: at most one chunk beside the source), and return it memory-mapped from
    there. When the files cannot be written, the data set is made in memory instead."""
    arrays: dict[str, tuple[tuple[int, ...], np.dtype[Any], Iterator[np.ndarray]]] = {}
    for split in _SPLITS:
        s = plan.split(split)
        arrays[f"x_{split}"] = ((len(s.rows), *plan.sample_shape), np.dtype(np.float32), plan.chunks(split))
        arrays[f"y_{split}"] = (s.y.shape, s.y.dtype, iter((s.y,)))
    meta = _meta(plan.name, plan.num_classes, plan.class_names, plan.mean, plan.std)
    if plan.bytes_kept:  # 8-bit sources: their bytes too, which training reads instead of the float32 arrays
        for split in _SPLITS:
            arrays[f"bytes_{split}"] = ((len(plan.split(split).rows), *plan.sample_shape), np.dtype(np.uint8),
                                        plan.code_chunks(split))
        meta["bytes"] = {"scale": plan.scale}
    shared = _write(directory, meta, arrays)
    return shared if shared is not None else materialize(plan)


def release_free_memory() -> None:
    """Hand the heap memory freed by a preparation back to the operating system (glibc's ``malloc_trim``; nothing
    elsewhere). glibc keeps freed blocks of up to tens of MiB for reuse once large blocks have been freed (its
    mmap threshold grows with them), so a search driver that prepared a data set would otherwise hold ~30 MiB
    of freed chunks for the rest of the run."""
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _meta(name: str, num_classes: int, class_names: Sequence[str], mean: Sequence[float],
          std: Sequence[float]) -> dict[str, Any]:
    return {"name": name, "num_classes": num_classes, "class_names": list(class_names), "mean": list(mean),
            "std": list(std), "arrays": {}}


def _write_npy(file: Path, shape: tuple[int, ...], dtype: np.dtype[Any], chunks: Iterator[np.ndarray]) -> None:
    """An ``.npy`` file of ``shape`` and ``dtype`` whose rows are the concatenated ``chunks``, written with plain
    file writes (the written pages go to the page cache, not into this process's memory)."""
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
    rows = 0
    with open(file, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        for c in chunks:
            if c.dtype != dtype or c.shape[1:] != tuple(shape[1:]):
                raise ValueError(f"a chunk of {file.name} has shape {c.shape} {c.dtype}, expected rows of "
                                 f"{shape[1:]} {dtype}")
            fh.write(np.ascontiguousarray(c).data)
            rows += len(c)
    if rows != (shape[0] if shape else 1):
        raise ValueError(f"{file.name}: {rows} rows written, expected {shape[0]}")


def _write(
    directory: Path,
    meta: dict[str, Any],
    arrays: dict[str, tuple[tuple[int, ...], np.dtype[Any], Iterator[np.ndarray]]],
) -> Dataset | None:
    """Write the arrays (shape, dtype, row chunks) and ``meta`` to ``directory`` atomically (a temporary folder
    renamed into place; a folder another process stored first is used instead) and open it mapped; ``None`` when
    the files cannot be written."""
    parent = directory.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{directory.name}-"))
    except OSError as exc:  # a read-only or full cache only costs memory
        log.warning("cannot write the prepared data set to %s: %s", parent, exc)
        return None
    try:
        for a, (shape, dtype, chunks) in arrays.items():
            _write_npy(tmp / f"{a}.npy", shape, dtype, chunks)
            meta["arrays"][a] = {"shape": list(shape), "dtype": str(dtype)}
        (tmp / "meta.json").write_text(json.dumps(meta))  # written last: a folder with it is complete
        try:
            os.rename(tmp, directory)
        except OSError:  # another process stored it first: use theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        log.warning("cannot write the prepared data set to %s: %s", directory, exc)
        return None
    except BaseException:  # a DataError found while writing, Ctrl-C: no half-written folder is left
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _evict(parent, keep=directory)
    return open_prepared(directory)


def _evict(parent: Path, *, keep: Path) -> None:
    """Remove the least recently used prepared data sets beyond :data:`MAX_ENTRIES`."""
    entries = []
    for d in parent.iterdir():
        meta = d / "meta.json"
        if d.name.startswith("."):  # the temporary folder of a writer killed a day ago or more
            with contextlib.suppress(OSError):
                if time.time() - d.stat().st_mtime > 86400:
                    shutil.rmtree(d, ignore_errors=True)
            continue
        if d != keep and meta.is_file():
            with contextlib.suppress(OSError):
                entries.append((meta.stat().st_mtime, d))
    entries.sort()
    for _, d in entries[: max(0, len(entries) + 1 - MAX_ENTRIES)]:
        shutil.rmtree(d, ignore_errors=True)


def mapped_file(a: np.ndarray) -> Path | None:
    """The file ``a``'s memory is mapped from (following its ``base`` chain), or ``None`` for an array in
    ordinary memory."""
    base: Any = a
    while base is not None:
        if isinstance(base, np.memmap):
            return Path(base.filename) if base.filename is not None else None
        base = getattr(base, "base", None)
    return None


def as_tensor(a: np.ndarray) -> Any:
    """A CPU ``torch.Tensor`` sharing ``a``'s memory (no copy, also for a read-only or memory-mapped array).

    The tensor must only be read (training reads its inputs; batches are gathered copies). A write into a
    memory-mapped data set changes only the writing process's copy-on-write pages, never the file; a write into an
    in-memory read-only array would change it for everyone, so callers never write."""
    import torch

    if not (a.flags.c_contiguous and a.dtype.isnative):
        a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("="))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(a)
