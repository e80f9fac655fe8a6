from __future__ import annotations

from pathlib import Path

import pytest
from executor_tasks import always_crash, crash_once, out_of_memory, square

from tinyevo.errors import ConfigError, UnknownNameError
from tinyevo.executors import (
    EXECUTORS,
    Executor,
    InProcessExecutor,
    LocalPoolExecutor,
    TaskResult,
    create_executor,
)


def _by_index(results: list[TaskResult[int]]) -> dict[int, TaskResult[int]]:
    assert len({r.index for r in results}) == len(results)
    return {r.index: r for r in results}


def test_in_process_runs_in_order_and_captures_errors() -> None:
    ex = InProcessExecutor()
    assert isinstance(ex, Executor)
    res = list(ex.map(square, [3, -1, 2]))
    assert [r.index for r in res] == [0, 1, 2]
    assert [r.value for r in res] == [9, None, 4]
    assert res[1].error == "ValueError: negative: -1" and not res[1].ok
    assert res[0].ok and res[0].worker


def test_registry_and_factory() -> None:
    assert {"local", "process", "inprocess"} <= set(EXECUTORS.names())
    assert isinstance(create_executor("inprocess", workers=1), InProcessExecutor)
    assert isinstance(create_executor("local", workers=1), LocalPoolExecutor)  # isolated by default
    pool = create_executor("local", workers=2)
    assert isinstance(pool, LocalPoolExecutor) and pool.workers == 2
    pool.close()
    with pytest.raises(ConfigError, match="at least 1"):
        create_executor("local", workers=0)
    with pytest.raises(ConfigError, match="--scheduler needs --executor dask"):
        create_executor("local", workers=1, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(UnknownNameError, match="unknown executor"):
        create_executor("slurm")


@pytest.fixture(scope="module")
def pool() -> LocalPoolExecutor:
    ex = LocalPoolExecutor(workers=2, retries=1)
    yield ex
    ex.close()


def test_pool_returns_every_result_once(pool: LocalPoolExecutor) -> None:
    res = _by_index(list(pool.map(square, [1, 2, -3, 4])))
    assert {i: r.value for i, r in res.items()} == {0: 1, 1: 4, 2: None, 3: 16}
    assert res[2].error == "ValueError: negative: -3"
    # tasks ran in other processes
    import os

    assert all(str(os.getpid()) != r.worker.rsplit(":", 1)[1] for r in res.values())


def test_pool_retries_a_task_whose_worker_died(pool: LocalPoolExecutor, tmp_path: Path) -> None:
    marker = str(tmp_path / "marker")
    res = _by_index(list(pool.map(crash_once, [marker])))
    assert res[0].value == "second try" and res[0].attempts == 2
    # the pool is usable afterwards
    assert [r.value for r in pool.map(square, [5])] == [25]


def test_pool_gives_up_after_retries(pool: LocalPoolExecutor) -> None:
    res = _by_index(list(pool.map(always_crash, [None])))
    assert res[0].error == "WorkerCrashed: the evaluation process exited with code 17 before returning a result (2 attempts)"
    assert res[0].attempts == 2


def test_out_of_memory_is_a_reported_error(pool: LocalPoolExecutor) -> None:
    for ex in (InProcessExecutor(), pool):
        (res,) = list(ex.map(out_of_memory, [10**12]))
        assert res.error == "MemoryError: cannot allocate 1000000000000 bytes"
