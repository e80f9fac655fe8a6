"""Dask distributed executor (optional extra ``tinyevo[dask]``).

Without a scheduler address it starts a :class:`distributed.LocalCluster` bound to ``127.0.0.1`` with the
dashboard off -- no HTTP server listens, not even Dask's plain one -- (one single-threaded worker process per
``workers``). With ``scheduler="tcp://HOST:PORT"`` it
joins an existing cluster; ``workers`` then only sets how many tasks the driver keeps in flight.

Tasks are submitted with ``pure=False``. When a worker dies, the scheduler re-runs its tasks on another worker
(up to ``distributed.scheduler.allowed-failures`` times, set from ``retries`` for a cluster this executor
starts); a task given up on is reported as failed (``KilledWorker``). Only the driver writes the run database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from tinyevo.errors import ConfigError
from tinyevo.executors.base import EXECUTORS, TaskResult, run_task

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ConfigError(
            "--executor dask needs dask distributed; install it with: pip install 'tinyevo[dask]'"
        ) from None
    return distributed


class DaskExecutor:
    """Runs tasks on a Dask distributed cluster (a local one on 127.0.0.1, or the one at ``scheduler``)."""

    def __init__(
        self,
        *,
        workers: int = 2,
        scheduler: str | None = None,
        retries: int = 2,
        threads_per_worker: int = 1,
        processes: bool = True,
    ) -> None:
        if workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {workers}")
        distributed = _import_distributed()
        import dask

        self.workers = workers
        self.scheduler = scheduler
        self._cluster = None
        if scheduler is None:
            # no HTTP server at all: ``dashboard_address=None`` only turns the Bokeh pages off, the scheduler still
            # serves its other HTTP routes on 127.0.0.1:8787 (and each worker on a random port) to any local process
            with dask.config.set({
                "distributed.scheduler.allowed-failures": retries,
                "distributed.scheduler.http.routes": [],
                "distributed.worker.http.routes": [],
            }):
                self._cluster = distributed.LocalCluster(
                    host="127.0.0.1",
                    n_workers=workers,
                    threads_per_worker=threads_per_worker,
                    processes=processes,
                    dashboard_address=None,
                    worker_dashboard_address=None,
                    scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                )
            try:
                self._cluster.sync(_stop_http_server, self._cluster.scheduler)
                self._cluster.scheduler_info.get("services", {}).pop("dashboard", None)  # (no link to show)
                self._client = distributed.Client(self._cluster)
                self._client.run(_stop_http_server)
            except BaseException:
                self._cluster.close()
                raise
        else:
            if not scheduler.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
                raise ConfigError(f"--scheduler must look like tcp://HOST:PORT, got {scheduler!r}")
            try:
                self._client = distributed.Client(scheduler, timeout="20s")
            except OSError as exc:
                raise ConfigError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        self._distributed = distributed

    @property
    def client(self) -> Any:
        return self._client

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[TaskResult[R]]:
        futures = [self._client.submit(run_task, fn, item, pure=False) for item in items]
        index = {f.key: i for i, f in enumerate(futures)}
        for fut in self._distributed.as_completed(futures):
            i = index[fut.key]
            try:
                value, error, worker, dur = fut.result()
            except Exception as exc:  # noqa: BLE001 - KilledWorker after too many lost workers, and the like
                yield TaskResult(i, None, f"{type(exc).__name__}: {exc}", "", 0.0)
                continue
            yield TaskResult(i, value, error, worker, dur)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


async def _stop_http_server(dask_worker: Any) -> None:
    """Close the HTTP server of a Dask scheduler or worker (run on its event loop) and forget it, so that no
    dashboard link is advertised."""
    server = dask_worker.services.pop("dashboard", None)
    if server is not None:
        server.stop()


@EXECUTORS.register(
    "dask", help="Dask distributed: a LocalCluster on 127.0.0.1, or --scheduler tcp://HOST:PORT"
)
def create_dask(*, workers: int = 2, scheduler: str | None = None) -> DaskExecutor:
    """A Dask distributed executor."""
    return DaskExecutor(workers=workers, scheduler=scheduler)
