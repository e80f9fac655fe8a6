"""The executor protocol: run one function over a batch of items, report each result as it finishes.

Executors only run code; they never touch storage (only the driver writes the run database). A task that
raises is reported with ``error`` set (``"ExcType: message"``) instead of raising in the driver; a task whose
worker process died is re-run up to ``retries`` times before it is reported as failed.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, runtime_checkable

from tinyevo.registry import Registry

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class TaskResult(Generic[R]):
    """The outcome of one task: ``value`` if it returned, else ``error``; ``index`` is its position in the
    batch."""

    index: int
    value: R | None
    error: str | None = None
    worker: str = ""
    duration_s: float = 0.0
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.error is None


@runtime_checkable
class Executor(Protocol):
    """Runs tasks, possibly in parallel. ``workers`` is how many tasks it runs at once."""

    workers: int

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[TaskResult[R]]:
        """Run ``fn`` on every item; yield one :class:`TaskResult` per item as it finishes (in any order)."""
        ...

    def close(self) -> None:
        """Release workers / cluster resources. Safe to call twice."""
        ...


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_task(fn: Callable[[T], R], item: T) -> tuple[R | None, str | None, str, float]:
    """Call ``fn(item)`` capturing any exception as text; runs inside the worker.

    Returns ``(value, error, worker, duration_s)``. ``MemoryError`` is captured like any other error, so a
    candidate that runs out of memory is recorded as failed and the search goes on.
    """
    start = time.perf_counter()
    try:
        value: R | None = fn(item)
        error = None
    except Exception as exc:  # noqa: BLE001 - reported to the driver, which records a failed trial
        value, error = None, f"{type(exc).__name__}: {exc}"
    return value, error, worker_name(), time.perf_counter() - start


EXECUTORS: Registry[Executor] = Registry("executor")
"""Factories are called as ``EXECUTORS.create(name, workers=N, scheduler=ADDRESS_OR_NONE)``."""
