"""Persistent isolated workers: a native crash, a kill or a hang fails only its own task; workers are reused."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from executor_tasks import CountingFn, abort, crash_if, hang, hang_with_child, pid, segfault, sigkill, square
from executor_tasks import torch_threads as omp_threads

from tinyevo.errors import ConfigError
from tinyevo.executors import InProcessExecutor, LocalPoolExecutor, TaskResult, create_executor
from tinyevo.executors.local import death_reason


def _by_index(results: list[TaskResult[object]]) -> dict[int, TaskResult[object]]:
    assert len({r.index for r in results}) == len(results)
    return {r.index: r for r in results}


@pytest.fixture
def one() -> LocalPoolExecutor:
    ex = LocalPoolExecutor(workers=1, retries=0)
    yield ex
    ex.close()


def test_factories() -> None:
    assert isinstance(create_executor("inprocess"), InProcessExecutor)
    for name in ("local", "process"):
        ex = create_executor(name, workers=2, timeout_s=5.0, threads=1)
        assert isinstance(ex, LocalPoolExecutor)
        assert (ex.workers, ex.timeout_s, ex.threads) == (2, 5.0, 1)
        assert ex.worker_pids() == []  # started on first use
        ex.close()
    with pytest.raises(ConfigError, match="one evaluation at a time"):
        create_executor("inprocess", workers=2)
    with pytest.raises(ConfigError, match="timeout"):
        LocalPoolExecutor(workers=1, timeout_s=0)


def test_worker_is_reused_across_tasks_and_maps(one: LocalPoolExecutor) -> None:
    first = [r.value for r in one.map(pid, [0, 1, 2])]
    second = [r.value for r in one.map(pid, [3])]
    assert len(set(first + second)) == 1
    assert first[0] != os.getpid()
    assert one.worker_pids() == first[:1]


def test_function_is_sent_to_each_worker_once(one: LocalPoolExecutor) -> None:
    fn = CountingFn()
    assert [r.value for r in one.map(fn, [0, 1, 2])] == [1, 1, 1]
    assert [r.value for r in one.map(fn, [3])] == [1]


@pytest.mark.parametrize(
    ("task", "reason"),
    [
        (segfault, "WorkerCrashed: the evaluation process died with signal 11 (SIGSEGV)"),
        (abort, "WorkerCrashed: the evaluation process died with signal 6 (SIGABRT)"),
        (sigkill, "WorkerKilled: the evaluation process was killed by signal 9 (SIGKILL; likely out of memory)"),
    ],
)
def test_a_dying_worker_fails_its_task_and_the_pool_goes_on(one: LocalPoolExecutor, task: object, reason: str) -> None:
    (before,) = [r.value for r in one.map(pid, [0])]
    (res,) = list(one.map(task, [0]))
    assert res.error == reason and res.value is None and res.attempts == 1
    (after,) = [r.value for r in one.map(pid, [0])]
    assert after != before  # a fresh worker replaced the dead one
    assert [r.value for r in one.map(square, [4])] == [16]


def test_a_hung_task_times_out_and_its_children_are_killed(tmp_path: Path) -> None:
    ex = LocalPoolExecutor(workers=1, retries=2, timeout_s=1.0)
    try:
        pid_file = tmp_path / "child.pid"
        (res,) = list(ex.map(hang_with_child, [str(pid_file)]))
        assert res.error == "TrialTimeout: exceeded 1 s"
        assert res.attempts == 1  # a timeout is not retried
        child = int(pid_file.read_text())
        for _ in range(100):  # the orphaned child is reaped by init soon after the kill
            if not _alive(child):
                break
            time.sleep(0.05)
        assert not _alive(child)
        assert [r.value for r in ex.map(square, [3])] == [9]
    finally:
        ex.close()


def _alive(pid_: int) -> bool:
    try:
        with open(f"/proc/{pid_}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_only_the_crashing_task_is_charged() -> None:
    ex = LocalPoolExecutor(workers=2, retries=1)
    try:
        res = _by_index(list(ex.map(crash_if, [1, 2, -1, 3, 4, 5])))
    finally:
        ex.close()
    assert res[2].error == "WorkerCrashed: the evaluation process died with signal 11 (SIGSEGV) (2 attempts)"
    assert res[2].attempts == 2
    innocent = [res[i] for i in sorted(res) if i != 2]
    assert [r.value for r in innocent] == [1, 2, 3, 4, 5]
    assert all(r.attempts == 1 and r.error is None for r in innocent)


def test_threads_reach_the_worker() -> None:
    ex = LocalPoolExecutor(workers=1, threads=1)
    try:
        assert [r.value for r in ex.map(omp_threads, [0])] == ["1"]
    finally:
        ex.close()


def test_leaving_a_map_early_drops_stale_results() -> None:
    ex = LocalPoolExecutor(workers=2, timeout_s=30.0)
    try:
        it = ex.map(crash_if, [7, 8, 9])
        next(it)
        it.close()  # the caller stopped (an error, Ctrl-C): the task still running must not leak into the next map
        assert sorted(r.value for r in ex.map(square, [1, 2, 3])) == [1, 4, 9]
    finally:
        ex.close()


def test_ctrl_c_then_close_stops_every_worker() -> None:
    ex = LocalPoolExecutor(workers=2)
    list(ex.map(square, [1, 2, 3]))
    pids = ex.worker_pids()
    assert len(pids) == 2

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)  # Ctrl-C while one worker runs a task that never ends
        with pytest.raises(KeyboardInterrupt):
            list(ex.map(hang, [0]))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        ex.close()
    assert ex.worker_pids() == []
    for p in pids:
        for _ in range(100):
            if not _alive(p):
                break
            time.sleep(0.05)
        assert not _alive(p)


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (-signal.SIGSEGV, "WorkerCrashed: the evaluation process died with signal 11 (SIGSEGV)"),
        (-signal.SIGBUS, "WorkerCrashed: the evaluation process died with signal 7 (SIGBUS)"),
        (-signal.SIGKILL, "WorkerKilled: the evaluation process was killed by signal 9 (SIGKILL; likely out of memory)"),
        (3, "WorkerCrashed: the evaluation process exited with code 3 before returning a result"),
    ],
)
def test_death_reasons(code: int, text: str) -> None:
    assert death_reason(code) == text
