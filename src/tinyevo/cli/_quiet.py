"""Keep third-party output off the terminal unless ``-v`` / ``--verbose``.

The deployment stack is chatty: torchao logs that it could not load optional kernels, torch warns about pytree
enums, litert-torch / TensorFlow's C++ code prints absl and oneDNN notes and op counts, TFLite-Micro prints its
allocator. None of it is actionable for a tinyevo user. :func:`configure_logging` shows tinyevo's own records (and
any record of level ERROR or above) and routes Python warnings through logging; :func:`third_party_output_hidden`
sends what is written to the C-level stdout / stderr during a block to a temporary file, while tinyevo's log
records still reach the terminal. With ``-v`` everything is shown.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import IO, Any


class _OwnRecords(logging.Filter):
    """Passes tinyevo's records and every record of level ERROR or above."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name == "tinyevo" or record.name.startswith("tinyevo.") or record.levelno >= logging.ERROR


_OWN_RECORDS = _OwnRecords()


def _terminal_handlers() -> list[logging.StreamHandler[Any]]:
    """The root logger's plain stream handlers (the one :func:`logging.basicConfig` made), not test harnesses'."""
    return [h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler]


def configure_logging(verbose: bool) -> None:
    """Log to stderr: everything from DEBUG with ``verbose``; otherwise WARNING and above of tinyevo's loggers and
    ERROR and above of others. Python warnings become log records (logger ``py.warnings``), so they show with
    ``verbose`` only."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    logging.captureWarnings(True)
    for handler in _terminal_handlers():
        if verbose:
            handler.removeFilter(_OWN_RECORDS)
        else:
            handler.addFilter(_OWN_RECORDS)


def _writes_to_fd(stream: object, fd: int) -> bool:
    try:
        return stream.fileno() == fd  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False


@contextlib.contextmanager
def third_party_output_hidden(verbose: bool) -> Iterator[None]:
    """Redirect file descriptors 1 and 2 to a temporary file for the block (unless ``verbose``); log records of
    the terminal handlers go to the real stderr meanwhile, and so does a fatal-signal traceback (faulthandler)."""
    if verbose:
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    terminal: IO[str] = os.fdopen(os.dup(saved[2]), "w", buffering=1, encoding="utf-8", errors="replace")
    swapped = [(h, h.stream) for h in _terminal_handlers() if _writes_to_fd(h.stream, 2)]
    for handler, _ in swapped:
        handler.setStream(terminal)
    own_faulthandler = not faulthandler.is_enabled()
    try:
        with tempfile.TemporaryFile() as sink:
            for fd in (1, 2):
                os.dup2(sink.fileno(), fd)
            if own_faulthandler:
                faulthandler.enable(file=terminal)
            try:
                yield
            finally:
                for stream in (sys.stdout, sys.stderr):
                    with contextlib.suppress(Exception):
                        stream.flush()
                for fd, copy in saved.items():
                    os.dup2(copy, fd)
    finally:
        if own_faulthandler:
            faulthandler.disable()
        for handler, stream in swapped:
            handler.setStream(stream)
        for copy in saved.values():
            os.close(copy)
        terminal.close()
