"""In-process and local process-pool executors."""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from tinyevo.errors import ConfigError
from tinyevo.executors.base import EXECUTORS, TaskResult, run_task

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)


class InProcessExecutor:
    """Runs each task in the calling process, one after the other."""

    workers = 1

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[TaskResult[R]]:
        for i, item in enumerate(items):
            value, error, worker, dur = run_task(fn, item)
            yield TaskResult(i, value, error, worker, dur)

    def close(self) -> None:
        pass


class LocalPoolExecutor:
    """A pool of ``workers`` local processes (``spawn`` start method: safe with torch's thread pools).

    ``fn`` and the items must be picklable. If a worker process dies (killed, out of memory), the pool is
    rebuilt and every task that had not finished is submitted again, at most ``retries`` more times each; a
    task still unfinished after that is reported as failed with the error ``WorkerLost``.
    """

    def __init__(self, *, workers: int = 2, retries: int = 2, start_method: str = "spawn") -> None:
        if workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {workers}")
        if retries < 0:
            raise ConfigError(f"retries must be >= 0, got {retries}")
        self.workers = workers
        self.retries = retries
        self._ctx = multiprocessing.get_context(start_method)
        self._pool: ProcessPoolExecutor | None = None

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=self._ctx)
        return self._pool

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[TaskResult[R]]:
        attempts = [0] * len(items)
        todo = list(range(len(items)))
        while todo:
            pool = self._get_pool()
            futures: dict[Future[tuple[R | None, str | None, str, float]], int] = {}
            for i in todo:
                attempts[i] += 1
                futures[pool.submit(run_task, fn, items[i])] = i
            todo = []
            pending = set(futures)
            broken = False
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = futures[fut]
                    try:
                        value, error, worker, dur = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        if attempts[i] > self.retries:
                            yield TaskResult(
                                i,
                                None,
                                f"WorkerLost: the worker process running this task died "
                                f"({attempts[i]} attempts)",
                                "",
                                0.0,
                                attempts[i],
                            )
                        else:
                            todo.append(i)
                        continue
                    except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable result
                        yield TaskResult(i, None, f"{type(exc).__name__}: {exc}", "", 0.0, attempts[i])
                        continue
                    yield TaskResult(i, value, error, worker, dur, attempts[i])
            if broken:
                log.warning("a worker process died; restarting the pool and retrying %d task(s)", len(todo))
                self._shutdown()
            todo.sort()

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        self._shutdown()


@EXECUTORS.register("local", help="in-process (--workers 1) or a local process pool (--workers N)")
def create_local(*, workers: int = 1, scheduler: str | None = None) -> InProcessExecutor | LocalPoolExecutor:
    """In-process for one worker, else a local process pool."""
    if scheduler is not None:
        raise ConfigError("--scheduler needs --executor dask")
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    return InProcessExecutor() if workers == 1 else LocalPoolExecutor(workers=workers)


@EXECUTORS.register("process", help="a local process pool, even for one worker (isolates crashes)")
def create_process(*, workers: int = 1, scheduler: str | None = None) -> LocalPoolExecutor:
    """A local process pool of ``workers`` processes."""
    if scheduler is not None:
        raise ConfigError("--scheduler needs --executor dask")
    return LocalPoolExecutor(workers=workers)
