"""SQLite (stdlib ``sqlite3``, WAL journal) implementation of :class:`~tinyevo.storage.base.Storage`.

One file per run. Every :meth:`SQLiteStorage.add` is its own transaction with ``synchronous=FULL``, so a trial
that ``add`` returned for survives a ``kill -9`` of the driver. Metrics are stored as JSON objects (``NaN``
and ``Infinity`` round-trip exactly, which keeps a resumed strategy's view identical to the original one).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sqlite3
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO, Any

from tinyevo import __version__
from tinyevo.errors import StorageError
from tinyevo.fsutil import _UMASK, ensure_dir, open_lock, refuse_links
from tinyevo.storage.base import DerivedModel, RetrainedModel, RunMeta, TrialRecord
from tinyevo.trial import Status, Trial

SCHEMA_VERSION = 1

log = logging.getLogger(__name__)

MAX_SEED = 2**63 - 1
"""The largest run seed: SQLite stores integers in 64 bits."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS run (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    schema_version INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    config TEXT NOT NULL,
    created_at REAL NOT NULL,
    version TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS trials (
    number INTEGER PRIMARY KEY,
    genome TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'infeasible', 'failed')),
    metrics TEXT NOT NULL,
    cost TEXT NOT NULL,
    violation REAL NOT NULL,
    error TEXT,
    parents TEXT NOT NULL,
    parent_ids TEXT NOT NULL,
    generation INTEGER NOT NULL,
    origin TEXT NOT NULL,
    batch INTEGER NOT NULL,
    eval_seed INTEGER,
    started_at REAL NOT NULL,
    finished_at REAL NOT NULL,
    duration_s REAL NOT NULL,
    worker TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS trials_genome ON trials (genome);
CREATE TABLE IF NOT EXISTS final_models (
    trial INTEGER PRIMARY KEY,
    genome TEXT NOT NULL,
    metrics TEXT NOT NULL,
    weights TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS derived_models (
    number INTEGER PRIMARY KEY,
    genome TEXT NOT NULL,
    parent INTEGER NOT NULL,
    origin TEXT NOT NULL,
    cost TEXT NOT NULL,
    weights TEXT NOT NULL,
    info TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""

_TRIAL_COLUMNS = (
    "number, genome, status, metrics, cost, violation, error, parents, parent_ids, generation, origin, "
    "batch, eval_seed, started_at, finished_at, duration_s, worker"
)


def _dumps(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, allow_nan=True)


def _metrics(text: str) -> dict[str, float]:
    return {str(k): float(v) for k, v in json.loads(text).items()}


class SQLiteStorage:
    """A run stored in one SQLite file. ``readonly=True`` opens an existing file for reading only."""

    def __init__(self, path: str | Path, *, readonly: bool = False, timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._lock: IO[bytes] | None = None
        # a run directory may come from someone else: never open its database files through planted links
        refuse_links(*(self.path.with_name(self.path.name + s) for s in ("", "-wal", "-shm", "-journal", ".lock")))
        if readonly:
            if not self.path.is_file():
                raise StorageError(f"no run database at {self.path}")
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            self._con = sqlite3.connect(uri, uri=True, timeout=timeout_s)
        else:
            ensure_dir(self.path.parent)
            self._lock = _acquire_writer_lock(self.path)
            self._con = sqlite3.connect(self.path, timeout=timeout_s)
        # autocommit mode: every statement we issue outside an explicit transaction commits at once
        self._con.isolation_level = None
        try:
            # no SQL functions with side effects from the schema (defence in depth: check_schema refuses triggers
            # and views, the only schema objects that run SQL on their own)
            self._con.execute("PRAGMA trusted_schema=OFF")
            check_schema(self._con, self.path)  # before anything writes (a trigger would run on that write)
            if not readonly:
                self._con.execute("PRAGMA journal_mode=WAL")
                self._con.execute("PRAGMA synchronous=FULL")
                self._con.executescript(_SCHEMA)
                self._migrate_derived()
            else:
                self._con.execute("SELECT 1 FROM run LIMIT 1")
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StorageError(f"{self.path} is not a tinyevo run database ({exc})") from None
        except StorageError:
            self.close()
            raise

    # --- run meta ---
    def create(self, meta: RunMeta) -> None:
        try:
            self._con.execute(
                "INSERT INTO run (id, schema_version, seed, config, created_at, version) "
                "VALUES (1, ?, ?, ?, ?, ?)",
                (SCHEMA_VERSION, int(meta.seed), _dumps(dict(meta.config)), meta.created_at, meta.version),
            )
        except sqlite3.IntegrityError:
            raise StorageError(
                f"{self.path} already holds a run; use 'tinyevo resume' to continue it"
            ) from None

    def has_run(self) -> bool:
        return self._con.execute("SELECT COUNT(*) FROM run").fetchone()[0] == 1

    def meta(self) -> RunMeta:
        row = self._con.execute(
            "SELECT seed, config, created_at, version, schema_version FROM run"
        ).fetchone()
        if row is None:
            raise StorageError(
                f"{self.path} holds no run (its creation was interrupted before the run was stored); start it "
                f"again with: tinyevo search ... --run-dir {self.path.parent}"
            )
        if row[4] > SCHEMA_VERSION:
            raise StorageError(
                f"{self.path} was written by a newer tinyevo (schema {row[4]}, this is {SCHEMA_VERSION})"
            )
        try:
            config = json.loads(row[1])
            if not isinstance(config, dict):
                raise ValueError("the stored configuration is not a JSON object")
            return RunMeta(seed=int(row[0]), config=config, created_at=float(row[2]), version=str(row[3]))
        except (ValueError, TypeError) as exc:
            raise StorageError(f"{self.path} is damaged: its run record cannot be read ({_one_line(exc)})") from None

    # --- trials ---
    def add(self, record: TrialRecord) -> None:
        t = record.trial
        row = (
            t.number,
            t.genome,
            t.status.value,
            _dumps(dict(t.metrics)),
            _dumps(dict(record.cost)),
            t.violation,
            t.error,
            _dumps(list(t.parents)),
            _dumps(list(record.parent_ids)),
            t.generation,
            t.origin,
            record.batch,
            record.eval_seed,
            record.started_at,
            record.finished_at,
            record.duration_s,
            record.worker,
        )
        marks = ", ".join("?" * len(row))
        try:
            self._con.execute(f"INSERT INTO trials ({_TRIAL_COLUMNS}) VALUES ({marks})", row)
        except sqlite3.IntegrityError as exc:
            raise StorageError(f"trial {t.number} is already stored in {self.path} ({exc})") from None

    def records(self) -> list[TrialRecord]:
        rows = self._con.execute(f"SELECT {_TRIAL_COLUMNS} FROM trials ORDER BY number").fetchall()
        out = []
        for row in rows:
            try:
                out.append(_record(row))
            except (ValueError, TypeError, AttributeError) as exc:  # edited by hand, or not by tinyevo
                raise StorageError(f"{self.path} is damaged: trial {row[0]!r} cannot be read ({_one_line(exc)})") \
                    from None
        return out

    def trials(self) -> list[Trial]:
        return [r.trial for r in self.records()]

    def count(self) -> int:
        return int(self._con.execute("SELECT COUNT(*) FROM trials").fetchone()[0])

    def numbers_of(self, genomes: tuple[str, ...]) -> tuple[int, ...]:
        """Trial numbers of the given genome strings (first occurrence), skipping genomes not stored."""
        out = []
        for g in genomes:
            row = self._con.execute("SELECT MIN(number) FROM trials WHERE genome = ?", (g,)).fetchone()
            if row[0] is not None:
                out.append(int(row[0]))
        return tuple(out)

    # --- final models ---
    def add_final(self, model: RetrainedModel) -> None:
        self._con.execute(
            "INSERT OR REPLACE INTO final_models (trial, genome, metrics, weights, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                model.trial,
                model.genome,
                _dumps(dict(model.metrics)),
                model.weights,
                model.created_at or time.time(),
            ),
        )

    def add_final_checked(self, model: RetrainedModel, sha256: str) -> None:
        """:meth:`add_final` and the fingerprint of its weights file, in one transaction (see
        :func:`tinyevo.run.retraining.repair_finals`)."""
        self._con.execute("BEGIN IMMEDIATE")
        try:
            self.add_final(model)
            self.set_state(f"final_sha256:{int(model.trial)}", sha256)
            self._con.execute("COMMIT")
        except BaseException:
            self._con.execute("ROLLBACK")
            raise

    def remove_final(self, trial: int) -> None:
        """Forget the final model of ``trial`` (its files stay), in one transaction."""
        self._con.execute("BEGIN IMMEDIATE")
        try:
            self._con.execute("DELETE FROM final_models WHERE trial = ?", (int(trial),))
            self._con.execute("DELETE FROM state WHERE key = ?", (f"final_sha256:{int(trial)}",))
            self._con.execute("COMMIT")
        except BaseException:
            self._con.execute("ROLLBACK")
            raise

    def finals(self) -> list[RetrainedModel]:
        rows = self._con.execute(
            "SELECT trial, genome, metrics, weights, created_at FROM final_models ORDER BY trial"
        ).fetchall()
        out = []
        for r in rows:
            try:
                out.append(RetrainedModel(int(r[0]), str(r[1]), _metrics(r[2]), _relative_path(r[3]), float(r[4])))
            except (ValueError, TypeError, AttributeError) as exc:
                raise StorageError(
                    f"{self.path} is damaged: the final model of trial {r[0]!r} cannot be read ({_one_line(exc)})"
                ) from None
        return out

    # --- derived models (not search trials: a resumed search never replays them) ---
    def add_derived(self, model: DerivedModel) -> None:
        row = (model.number, model.genome, model.parent, model.origin, _dumps(dict(model.cost)), model.weights,
               _dumps(dict(model.info)), model.created_at or time.time())
        try:
            self._con.execute(
                "INSERT INTO derived_models (number, genome, parent, origin, cost, weights, info, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
        except sqlite3.IntegrityError as exc:
            raise StorageError(f"derived model {model.number} is already stored in {self.path} ({exc})") from None

    def derived(self) -> list[DerivedModel]:
        try:
            rows = self._con.execute(
                "SELECT number, genome, parent, origin, cost, weights, info, created_at FROM derived_models "
                "ORDER BY number"
            ).fetchall()
        except sqlite3.OperationalError:  # read-only, written before derived models had their table: none
            return []
        out = []
        for r in rows:
            try:
                info = json.loads(r[6])
                if not isinstance(info, dict):
                    raise ValueError("info is not a JSON object")
                out.append(DerivedModel(number=int(r[0]), genome=str(r[1]), parent=int(r[2]), origin=str(r[3]),
                                        cost=_metrics(r[4]), weights=str(r[5]), info=info, created_at=float(r[7])))
            except (ValueError, TypeError, AttributeError) as exc:
                raise StorageError(f"{self.path} is damaged: derived model {r[0]!r} cannot be read ({exc})") from None
        return out

    def _migrate_derived(self) -> None:
        """Runs written before derived models had their own table stored ``tinyevo deepen`` results as search
        trials (origin ``deepen``), which broke the replay of a resumed search. Move them to ``derived_models``,
        keeping their numbers (so ``--trial N`` and their final models stay as they were)."""
        rows = self._con.execute(f"SELECT {_TRIAL_COLUMNS} FROM trials WHERE origin = 'deepen' ORDER BY number")
        records = [_record(row) for row in rows.fetchall()]
        if not records:
            return
        finals = dict(self._con.execute("SELECT trial, weights FROM final_models").fetchall())
        self._con.execute("BEGIN IMMEDIATE")
        try:
            for r in records:
                t = r.trial
                self.add_derived(DerivedModel(
                    number=t.number, genome=t.genome, parent=r.parent_ids[0] if r.parent_ids else -1,
                    origin=t.origin, cost=r.cost, weights=str(finals.get(t.number, "")),
                    info={"migrated_from_trial": True, "parents": list(t.parents)}, created_at=r.finished_at))
                self._con.execute("DELETE FROM trials WHERE number = ?", (t.number,))
            self._con.execute("COMMIT")
        except BaseException:
            self._con.execute("ROLLBACK")
            raise

    # --- state ---
    def set_state(self, key: str, value: str) -> None:
        self._con.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (key, value))

    def get_state(self, key: str) -> str | None:
        row = self._con.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        self._con.close()
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    def __enter__(self) -> SQLiteStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _acquire_writer_lock(path: Path) -> IO[bytes] | None:
    """One writer per run: an exclusive ``flock`` on ``<db>.lock``, released when the process ends (even by
    kill -9)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX; no lock
        return None
    fh = open_lock(path.with_name(path.name + ".lock"))  # held open for the writer's lifetime; no link followed
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise StorageError(f"{path} is being written by another tinyevo process (search or resume)") from None
    return fh


def _record(row: tuple[Any, ...]) -> TrialRecord:
    (
        number,
        genome,
        status,
        metrics,
        cost,
        violation,
        error,
        parents,
        parent_ids,
        generation,
        origin,
        batch,
        eval_seed,
        started_at,
        finished_at,
        duration_s,
        worker,
    ) = row
    trial = Trial(
        number=int(number),
        genome=genome,
        status=Status(status),
        metrics=_metrics(metrics),
        violation=float(violation),
        parents=tuple(json.loads(parents)),
        generation=int(generation),
        origin=origin,
        error=error,
    )
    return TrialRecord(
        trial=trial,
        cost=_metrics(cost),
        parent_ids=tuple(int(i) for i in json.loads(parent_ids)),
        batch=int(batch),
        eval_seed=None if eval_seed is None else int(eval_seed),
        started_at=float(started_at),
        finished_at=float(finished_at),
        duration_s=float(duration_s),
        worker=worker,
    )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _relative_path(text: object) -> str:
    """A stored file name (``final/trial-0003/model.pt``): relative, inside the run directory."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"bad weights path {text!r}")
    p = PurePosixPath(text.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or PureWindowsPath(text).drive:
        raise ValueError(f"weights path {text!r} points outside the run directory")
    return text


def _normalized(sql: str | None) -> str | None:
    return None if sql is None else " ".join(sql.split())


def _schema_objects(con: sqlite3.Connection) -> dict[str, tuple[str, str, str | None]]:
    """name -> (type, table, normalized SQL) of every schema object (tables, indices, triggers, views)."""
    rows = con.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    return {str(name): (str(kind), str(table), _normalized(sql)) for kind, name, table, sql in rows}


_EXPECTED: dict[str, tuple[str, str, str | None]] | None = None


def expected_schema() -> dict[str, tuple[str, str, str | None]]:
    """The schema objects tinyevo itself creates, derived from the creation DDL (an in-memory database)."""
    global _EXPECTED
    if _EXPECTED is None:
        con = sqlite3.connect(":memory:")
        try:
            con.executescript(_SCHEMA)
            _EXPECTED = _schema_objects(con)
        finally:
            con.close()
    return _EXPECTED


_HARMLESS = ("sqlite_stat1", "sqlite_stat4")  # ANALYZE statistics: plain tables SQLite manages itself


def check_schema(con: sqlite3.Connection, path: Path) -> None:
    """Refuse a database that holds anything tinyevo does not create: every table and index must be one of
    :func:`expected_schema` with the very same definition (tables of a newer tinyevo may be missing: they are
    created on open), and there must be no triggers or views -- SQL in someone else's database that would run
    inside this process when tinyevo writes or reads."""
    expected = expected_schema()
    for name, (kind, table, sql) in sorted(_schema_objects(con).items()):
        if kind in ("trigger", "view"):
            raise StorageError(
                f"{path} is not a tinyevo run database: it holds a {kind} {name!r} (tinyevo creates none); "
                "refusing to open it"
            )
        if kind == "table" and name in _HARMLESS:
            continue
        if name not in expected:
            raise StorageError(f"{path} is not a tinyevo run database: unknown {kind} {name!r}; refusing to open it")
        if expected[name] != (kind, table, sql):
            raise StorageError(
                f"{path} is not a tinyevo run database: {kind} {name!r} is not defined as tinyevo defines it; "
                "refusing to open it"
            )


def _leftover(path: Path) -> bool:
    """Whether ``path`` is the database of a run whose creation was interrupted by an older tinyevo (schema but no
    run record and no trials, or an empty file): nothing is lost by replacing it."""
    try:
        if path.stat().st_size == 0 and not path.with_name(path.name + "-wal").exists():
            return True
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "run" in tables and con.execute("SELECT COUNT(*) FROM run").fetchone()[0]:
                return False
            return all(not con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]  # noqa: S608 - names from us
                       for t in ("trials", "final_models", "derived_models") if t in tables)
        finally:
            con.close()
    except (OSError, sqlite3.Error):
        return False


_COUNTED_TABLES = ("trials", "final_models")


def count_rows(path: str | Path, table: str = "trials") -> int:
    """Rows committed so far to ``table`` (``trials`` or ``final_models``) of the run database at ``path``, read
    without taking the writer's lock (another process may be writing it); 0 while the file or the table does not
    exist yet or cannot be read. For watching a running search from outside."""
    if table not in _COUNTED_TABLES:
        raise ValueError(f"count_rows counts {' or '.join(_COUNTED_TABLES)}, not {table!r}")
    if not Path(path).is_file():
        return 0
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            return int(con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # the name is one of _COUNTED_TABLES
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def create_run_database(path: str | Path, meta: RunMeta) -> None:
    """Create the database of a new run at ``path`` atomically: schema and run record are written to a temporary
    file beside ``path``, which is then linked to ``path`` (``os.link`` never replaces an existing file). A kill at
    any moment leaves either no database or a complete one -- never one that ``search`` refuses as taken and
    ``resume`` refuses as empty. A database left by an interrupted creation of an older tinyevo is replaced."""
    path = Path(path)
    if not 0 <= int(meta.seed) <= MAX_SEED:
        raise StorageError(f"seed {meta.seed} is out of range (0 .. 2**63-1)")
    refuse_links(path)
    ensure_dir(path.parent)
    if path.exists():
        if not _leftover(path):
            raise StorageError(f"{path.parent} already holds a run; continue it with: tinyevo resume {path.parent}")
        log.warning("%s holds no run (an interrupted creation): replacing it", path)
        for suffix in ("-wal", "-shm", ""):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".new")
    os.close(fd)
    tmp = Path(tmp_name)
    extras = [tmp.with_name(tmp.name + s) for s in ("-wal", "-shm", "-journal", ".lock")]
    try:
        with SQLiteStorage(tmp) as s:
            s.create(meta)
        # (closing the only connection checkpointed the WAL into the file and removed it)
        os.chmod(tmp, 0o644 & ~_UMASK)  # mkstemp made it 0600; a run database has the usual permissions
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise StorageError(
                f"{path.parent} already holds a run; continue it with: tinyevo resume {path.parent}"
            ) from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            if path.exists():  # no hard links on this file system: rename (not atomic against a racing creator)
                raise StorageError(
                    f"{path.parent} already holds a run; continue it with: tinyevo resume {path.parent}"
                ) from None
            os.replace(tmp, path)
    finally:
        for f in (tmp, *extras):
            f.unlink(missing_ok=True)


def new_meta(seed: int, config: Mapping[str, Any]) -> RunMeta:
    """A :class:`RunMeta` stamped with the current time and tinyevo version."""
    return RunMeta(seed=seed, config=dict(config), created_at=time.time(), version=__version__)
