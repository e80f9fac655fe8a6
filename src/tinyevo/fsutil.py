"""Writing files into a directory that someone else may have prepared (a run directory from a colleague, a tarball).

A planted symbolic link must not redirect a write: ``trials.db.lock -> ~/.bashrc`` opened with ``"wb"`` would
truncate the link's target, and ``report -> /elsewhere`` would put the report there. So every write into a run
directory goes through these helpers:

* :func:`atomic_write` (and ``_bytes`` / ``_text``) writes a unique temporary file made with
  :func:`tempfile.mkstemp` beside the target (never a fixed ``.tmp`` name that could be a link) and renames it
  over the target with :func:`os.replace`, which replaces a link itself rather than writing through it; readers
  never see half a file;
* :func:`ensure_dir` creates directories and refuses any that is a symbolic link below ``root``;
* :func:`open_lock` opens a lock file with ``O_NOFOLLOW`` and without truncating it.

A directory component that is a link below ``root`` (normally the run directory) is refused with a
:class:`~tinyevo.errors.StorageError`; ``root`` itself may be a link (the user named it). These checks guard
against links that were there before tinyevo started, not against someone racing it while it writes.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from tinyevo.errors import StorageError

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "ensure_dir",
    "open_lock",
    "refuse_links",
]


def refuse_links(*paths: str | os.PathLike[str]) -> None:
    """Raise :class:`StorageError` if any of ``paths`` is a symbolic link (missing paths are fine)."""
    for p in paths:
        if os.path.islink(p):
            raise StorageError(
                f"{p} is a symbolic link; tinyevo does not write through links inside a run directory "
                f"(remove it, or copy the run without links)"
            )


def _below(path: Path, root: Path | None) -> list[Path]:
    """``path`` and its ancestors strictly below ``root`` (none without a root or when ``path`` is not inside
    ``root``: a directory the user named is theirs to choose)."""
    if root is None:
        return []
    try:
        rel = path.relative_to(root)
    except ValueError:
        return []
    out, cur = [], root
    for part in rel.parts:
        cur = cur / part
        out.append(cur)
    return out


def ensure_dir(path: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None) -> Path:
    """Create directory ``path`` (and its parents) and check that neither it nor any directory between ``root``
    and it is a symbolic link (no check without ``root``). Returns ``path``."""
    path = Path(path)
    rootp = Path(root) if root is not None else None
    for d in _below(path, rootp):
        refuse_links(d)
    path.mkdir(parents=True, exist_ok=True)
    for d in _below(path, rootp):  # (also those that mkdir just made)
        refuse_links(d)
        if not d.is_dir():
            raise StorageError(f"{d} is not a directory")
    return path


def atomic_write(
    path: str | os.PathLike[str],
    write: Callable[[IO[bytes]], object],
    *,
    root: str | os.PathLike[str] | None = None,
    mode: int = 0o644,
) -> Path:
    """Write ``path`` atomically: ``write(fh)`` fills a fresh temporary file in the same directory, which then
    replaces ``path`` (a link at ``path`` is replaced, its target is not touched). The parent directory is made
    with :func:`ensure_dir` (``root``: where the link checks start). Returns ``path``."""
    path = Path(path)
    ensure_dir(path.parent, root=root)
    if path.is_dir() and not path.is_symlink():
        raise StorageError(f"cannot write {path}: it is a directory")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, root: str | os.PathLike[str] | None = None
) -> Path:
    """:func:`atomic_write` of ``data``."""
    return atomic_write(path, lambda fh: fh.write(data), root=root)


def atomic_write_text(
    path: str | os.PathLike[str],
    text: str,
    *,
    root: str | os.PathLike[str] | None = None,
    encoding: str = "utf-8",
) -> Path:
    """:func:`atomic_write` of ``text``."""
    return atomic_write(path, lambda fh: fh.write(text.encode(encoding)), root=root)


def open_lock(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open (creating it if needed) the lock file ``path`` for ``flock``, without following a link and without
    truncating anything; refuses a link or anything that is not a regular file."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_NONBLOCK", 0)  # a planted FIFO must not hang the open
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):
            refuse_links(path)
        raise StorageError(f"cannot open the lock file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise StorageError(f"{path} is not a regular file; tinyevo will not use it as its lock file")
    return os.fdopen(fd, "r+b")


def _read_umask() -> int:
    mask = os.umask(0o022)  # (read once, at import: os.umask cannot be read without setting it)
    os.umask(mask)
    return mask


_UMASK = _read_umask()
