from __future__ import annotations

from pathlib import Path

import pytest
from executor_tasks import crash_once, square

pytest.importorskip("distributed")

from tinyevo.errors import ConfigError  # noqa: E402
from tinyevo.executors import Executor, create_executor  # noqa: E402
from tinyevo.executors.dask import DaskExecutor  # noqa: E402


@pytest.fixture(scope="module")
def dask_ex() -> DaskExecutor:
    ex = create_executor("dask", workers=2)
    yield ex
    ex.close()


def test_local_cluster_is_bound_to_loopback(dask_ex: DaskExecutor) -> None:
    assert isinstance(dask_ex, Executor)
    info = dask_ex.client.scheduler_info()
    assert info["address"].startswith("tcp://127.0.0.1:")
    assert all(addr.startswith("tcp://127.0.0.1:") for addr in info["workers"])
    assert len(info["workers"]) == 2


def test_dask_map_results_and_errors(dask_ex: DaskExecutor) -> None:
    res = {r.index: r for r in dask_ex.map(square, [2, -1, 3])}
    assert {i: r.value for i, r in res.items()} == {0: 4, 1: None, 2: 9}
    assert res[1].error == "ValueError: negative: -1"


def test_dask_retries_task_of_lost_worker(dask_ex: DaskExecutor, tmp_path: Path) -> None:
    res = list(dask_ex.map(crash_once, [str(tmp_path / "marker")]))
    assert len(res) == 1 and res[0].value == "second try", res[0].error


def test_joining_an_existing_scheduler(dask_ex: DaskExecutor) -> None:
    address = dask_ex.client.scheduler.address
    joined = create_executor("dask", workers=1, scheduler=address)
    try:
        assert [r.value for r in joined.map(square, [7])] == [49]
    finally:
        joined.close()


def test_bad_scheduler_address() -> None:
    with pytest.raises(ConfigError, match="tcp://HOST:PORT"):
        create_executor("dask", workers=1, scheduler="127.0.0.1:8786")
