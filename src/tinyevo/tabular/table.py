"""Lookup tables of precomputed architecture results (tabular NAS benchmarks).

A :class:`Table` maps an architecture key (the genome string) to a row of numeric columns. Two formats load:

* CSV with a key column (default ``arch``) and any number of other columns; numeric ones become float columns
  (empty cells are NaN), non-numeric ones are dropped.
* NAS-Bench-Macro JSON: ``{"01201122": {"mean_acc": .., "std": .., "params": .., "flops": .., ...}, ...}``;
  scalar numeric fields become columns.

Either may be gzip-compressed (``.csv.gz`` / ``.json.gz``, as the packaged tables in ``tinyevo/tabular/data``
are).

Files are parsed once per process and cached by (resolved path, size, modification time), so repeated loads of
the 15,625-row NB201 CSV are free.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import IO

import numpy as np

from tinyevo.errors import ConfigError, DataError


@dataclass(frozen=True, eq=False)
class Table:
    """An immutable table: ``keys[i]`` is the architecture of row ``i``; ``columns[name][i]`` its values."""

    name: str
    keys: tuple[str, ...]
    columns: Mapping[str, np.ndarray]
    source: str = ""
    _index: Mapping[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        n = len(self.keys)
        cols = {}
        for col, values in self.columns.items():
            arr = np.asarray(values, dtype=np.float64)
            if arr.shape != (n,):
                raise DataError(f"table {self.name!r}: column {col!r} has {arr.shape} values for {n} rows")
            arr = arr.copy()
            arr.setflags(write=False)
            cols[col] = arr
        object.__setattr__(self, "columns", MappingProxyType(cols))
        index = {k: i for i, k in enumerate(self.keys)}
        if len(index) != n:
            dup = next(k for i, k in enumerate(self.keys) if index[k] != i)
            raise DataError(f"table {self.name!r}: architecture {dup!r} appears more than once")
        object.__setattr__(self, "_index", MappingProxyType(index))

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    @property
    def metrics(self) -> tuple[str, ...]:
        """The numeric column names, in file order."""
        return tuple(self.columns)

    def column(self, metric: str) -> np.ndarray:
        """The read-only values of ``metric``; :class:`ConfigError` naming the known columns if unknown."""
        try:
            return self.columns[metric]
        except KeyError:
            raise ConfigError(
                f"table {self.name!r} has no numeric column {metric!r}; columns: {', '.join(self.columns)}"
            ) from None

    def require(self, *metrics: str) -> None:
        """Raise :class:`ConfigError` unless every metric is a column."""
        for m in metrics:
            self.column(m)

    def index(self, key: str) -> int:
        try:
            return self._index[key]
        except KeyError:
            raise DataError(f"architecture {key!r} is not in table {self.name!r} ({len(self)} rows)") from None

    def row(self, key: str, metrics: tuple[str, ...] | None = None) -> dict[str, float]:
        """The values of one architecture (all columns, or only ``metrics``)."""
        i = self.index(key)
        names = self.metrics if metrics is None else metrics
        return {m: float(self.column(m)[i]) for m in names}

    def value(self, key: str, metric: str) -> float:
        return float(self.column(metric)[self.index(key)])

    def best(self, metric: str, *, direction: str = "max", mask: np.ndarray | None = None) -> tuple[str, float]:
        """The best architecture and value of ``metric`` among rows where ``mask`` holds (NaNs ignored).

        Raises :class:`DataError` when no row qualifies (e.g. a constraint nothing satisfies).
        """
        values = self.column(metric)
        ok = ~np.isnan(values)
        if mask is not None:
            ok &= np.asarray(mask, dtype=bool)
        if not ok.any():
            raise DataError(f"no architecture in table {self.name!r} has a valid {metric!r} under the constraints")
        masked = np.where(ok, values, -np.inf if direction == "max" else np.inf)
        i = int(np.argmax(masked) if direction == "max" else np.argmin(masked))
        return self.keys[i], float(values[i])


_CACHE: dict[tuple[str, str, int, int], Table] = {}
_LOCK = threading.Lock()


def _stat_key(path: Path, kind: str) -> tuple[str, str, int, int]:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DataError(
            f"benchmark table {str(path)!r} not found; pass an existing CSV or JSON file (optionally .gz) "
            "with --table, or leave --table out to use the table shipped with tinyevo"
        ) from None
    if not path.is_file():
        raise DataError(f"benchmark table {str(path)!r} is not a file")
    return (str(path.resolve()), kind, st.st_size, st.st_mtime_ns)


def load_table(path: str | Path, *, key: str = "arch") -> Table:
    """Load (once per process) a CSV or NAS-Bench-Macro-style JSON table; the format follows the suffix
    (``.json`` / ``.json.gz`` is JSON, anything else CSV; a ``.gz`` file is decompressed on the fly)."""
    path = Path(path)
    kind = "json" if _plain_name(path).suffix.lower() == ".json" else f"csv:{key}"
    ck = _stat_key(path, kind)
    with _LOCK:
        cached = _CACHE.get(ck)
    if cached is not None:
        return cached
    table = _read_json(path) if kind == "json" else _read_csv(path, key=key)
    with _LOCK:
        _CACHE[ck] = table
    return table


def _plain_name(path: Path) -> Path:
    """``path`` without a trailing ``.gz``."""
    return path.with_suffix("") if path.suffix.lower() == ".gz" else path


def _open_text(path: Path) -> IO[str]:
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def _to_float(text: str) -> float:
    text = text.strip()
    if not text:
        return math.nan
    return float(text)


def _read_csv(path: Path, *, key: str) -> Table:
    try:
        with _open_text(path) as fh:
            reader = csv.reader(fh)
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                raise DataError(f"benchmark table {str(path)!r} is empty") from None
            rows = [r for r in reader if r]
    except (OSError, EOFError, UnicodeDecodeError) as exc:  # e.g. a corrupt .gz
        raise DataError(f"benchmark table {str(path)!r} cannot be read: {exc}") from None
    if key not in header:
        raise DataError(f"benchmark table {str(path)!r} has no {key!r} column; columns: {', '.join(header)}")
    k = header.index(key)
    for lineno, r in enumerate(rows, start=2):
        if len(r) != len(header):
            raise DataError(f"{path}:{lineno}: expected {len(header)} fields, got {len(r)}")
    keys = tuple(r[k].strip() for r in rows)
    columns: dict[str, np.ndarray] = {}
    for j, name in enumerate(header):
        if j == k:
            continue
        try:
            columns[name] = np.array([_to_float(r[j]) for r in rows], dtype=np.float64)
        except ValueError:
            continue  # a non-numeric column (e.g. a label) is not a metric
    return Table(name=_plain_name(path).stem, keys=keys, columns=columns, source=str(path))


def _read_json(path: Path) -> Table:
    try:
        with _open_text(path) as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise DataError(f"benchmark table {str(path)!r} is not valid JSON: {exc}") from None
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"benchmark table {str(path)!r} cannot be read: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise DataError(f"benchmark table {str(path)!r} must be a non-empty object keyed by architecture")
    keys = tuple(str(k) for k in data)
    names: list[str] = []
    for rec in data.values():
        if not isinstance(rec, dict):
            raise DataError(f"benchmark table {str(path)!r}: every entry must be an object of metrics")
        for name, v in rec.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and name not in names:
                names.append(name)
    columns = {
        name: np.array([_json_float(rec.get(name)) for rec in data.values()], dtype=np.float64) for name in names
    }
    return Table(name=_plain_name(path).stem, keys=keys, columns=columns, source=str(path))


def _json_float(v: object) -> float:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    return math.nan
