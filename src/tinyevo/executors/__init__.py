"""Executors: where evaluations run (in-process, a local process pool, Dask distributed).

``create_executor("local" | "process" | "dask", workers=N, scheduler=None)``. The Dask module is imported only
when it is asked for, so tinyevo works without the ``dask`` extra.
"""

from __future__ import annotations

from tinyevo.executors.base import EXECUTORS, Executor, TaskResult, run_task
from tinyevo.executors.local import InProcessExecutor, LocalPoolExecutor

EXECUTOR_NAMES = ("local", "process", "dask")


def create_executor(name: str, *, workers: int = 1, scheduler: str | None = None) -> Executor:
    """Instantiate the executor ``name``; ``dask`` is loaded on demand."""
    if name == "dask" and "dask" not in EXECUTORS:
        import tinyevo.executors.dask  # noqa: F401 - registers itself
    return EXECUTORS.create(name, workers=workers, scheduler=scheduler)


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
