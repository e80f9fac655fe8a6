"""Executors: where evaluations run (isolated local worker processes, in-process, Dask distributed).

``create_executor("local" | "process" | "inprocess" | "dask", workers=N, scheduler=None, timeout_s=None,
threads=None)``. ``local`` (the default) and ``process`` are the same: persistent isolated worker processes, so a
crashing, hanging or memory-hungry evaluation fails one trial, not the search. ``inprocess`` runs evaluations in
the calling process (debugging, profiling). The Dask module is imported only when it is asked for, so tinyevo
works without the ``dask`` extra; it does not enforce ``timeout_s``.
"""

from __future__ import annotations

from tinyevo.executors.base import EXECUTORS, Executor, TaskResult, run_task
from tinyevo.executors.local import InProcessExecutor, LocalPoolExecutor

EXECUTOR_NAMES = ("local", "process", "inprocess", "dask")


def create_executor(
    name: str,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    timeout_s: float | None = None,
    threads: int | None = None,
) -> Executor:
    """Instantiate the executor ``name``; ``dask`` is loaded on demand. ``timeout_s`` (per task; ``None``: no
    limit) and ``threads`` (torch threads per worker process) apply to the local worker processes."""
    if name == "dask" and "dask" not in EXECUTORS:
        import tinyevo.executors.dask  # noqa: F401 - registers itself
    if name == "dask":
        return EXECUTORS.create(name, workers=workers, scheduler=scheduler)
    return EXECUTORS.create(name, workers=workers, scheduler=scheduler, timeout_s=timeout_s, threads=threads)


__all__ = [
    "EXECUTORS",
    "EXECUTOR_NAMES",
    "Executor",
    "InProcessExecutor",
    "LocalPoolExecutor",
    "TaskResult",
    "create_executor",
    "run_task",
]
