"""SIGTERM stops a command the way Ctrl-C does.

Ctrl-C raises :class:`KeyboardInterrupt` in the driver; a search then kills (and reaps) its evaluation workers,
prints how to continue (``tinyevo resume RUN``) and exits with code 130, within a second. A search started as a
background job of a non-interactive shell (``cmd &`` or ``nohup cmd &`` in a script, where job control is off)
inherits SIGINT *ignored*, as shells do to protect background jobs from the terminal's Ctrl-C; Python then keeps it
ignored, so ``kill -INT`` does nothing and the workers train on. SIGTERM -- what ``kill``, job schedulers and
``docker stop`` send -- is never ignored that way; :func:`sigterm_as_interrupt` turns it into :class:`Terminated`
(a ``KeyboardInterrupt``), so it takes the same clean path as Ctrl-C (exit code 143 instead of dying at once and
leaving orphaned workers to notice their driver is gone).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM (inside :func:`sigterm_as_interrupt`)."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`Terminated` in the main thread. A handler the embedding program set
    (anything but the default action) is left alone, as is every thread other than the main one (where Python
    cannot set handlers); the previous handler is restored on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
