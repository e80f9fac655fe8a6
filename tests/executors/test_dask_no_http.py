"""The local Dask cluster serves no HTTP at all (no dashboard a local process could use)."""

from __future__ import annotations

import socket

import pytest
from executor_tasks import square

pytest.importorskip("distributed")

from tinyevo.executors.dask import DaskExecutor  # noqa: E402


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError:
        return True


def test_local_cluster_has_no_dashboard_and_no_http_server() -> None:
    ex = DaskExecutor(workers=1)
    try:
        assert not ex.client.dashboard_link
        assert "dashboard" not in ex.client.scheduler_info()["services"]
        # the ports the scheduler's and the worker's HTTP servers were bound to: nothing answers there
        ports = [ex._cluster.scheduler.http_server.port,
                 *ex.client.run(lambda dask_worker: dask_worker.http_server.port).values()]
        assert ports and all(_refused(p) for p in ports), ports
        assert [r.value for r in ex.map(square, [3])] == [9]  # and the cluster still works
    finally:
        ex.close()
