"""Workers started ahead (LocalPoolExecutor.start): they exist before the first task, import the preload modules,
and serve the tasks afterwards; the run engine starts them before it loads the data."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from executor_tasks import has_module, pid, square

from tinyevo.executors import LocalPoolExecutor
from tinyevo.run.config import RunConfig
from tinyevo.run.engine import PRELOAD, _start_ahead


def _wait_for_lines(path: Path, n: int) -> list[int]:
    for _ in range(600):  # a wait, not a time limit: spawned workers may be slow on a loaded machine
        if path.exists() and len(path.read_text().split()) >= n:
            break
        time.sleep(0.1)
    return [int(v) for v in path.read_text().split()] if path.exists() else []


def _alive(p: int) -> bool:
    try:
        os.kill(p, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{p}/stat") as fh:  # a zombie is not alive
        return fh.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_started_workers_preload_and_then_serve_the_tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mark = tmp_path / "mark"
    monkeypatch.setenv("TINYEVO_TEST_PRELOAD_MARK", str(mark))
    ex = LocalPoolExecutor(workers=2, retries=0)
    try:
        ex.start(preload=("preload_marker", "no_such_module_xyz"))  # a module that fails to import is skipped
        started = sorted(ex.worker_pids())
        assert len(started) == 2 and os.getpid() not in started
        assert sorted(_wait_for_lines(mark, 2)) == started  # each started worker imported the module
        ex.start()  # both are there: nothing more is started
        assert sorted(ex.worker_pids()) == started
        served = {r.value for r in ex.map(pid, list(range(6)))}
        assert served <= set(started)  # the tasks ran in the started workers
        assert all(r.value for r in ex.map(has_module, ["preload_marker"] * 2))
        assert sorted(r.value for r in ex.map(square, [1, 2, 3])) == [1, 4, 9]
        assert sorted(_wait_for_lines(mark, 2)) == started  # imported once per worker, not per task
    finally:
        ex.close()


def test_start_counts_at_most_workers_and_close_ends_unused_workers() -> None:
    ex = LocalPoolExecutor(workers=3, retries=0)
    try:
        ex.start(count=1)
        assert len(ex.worker_pids()) == 1
        ex.start(count=10)
        pids = ex.worker_pids()
        assert len(pids) == 3
    finally:
        ex.close()
    assert ex.worker_pids() == []
    assert not any(_alive(p) for p in pids)


def test_the_engine_starts_one_worker_for_a_one_trial_search() -> None:
    config = RunConfig()
    one = _start_ahead(_with(config, workers=4, trials=1), None, 1)
    try:
        assert isinstance(one, LocalPoolExecutor) and len(one.worker_pids()) == 1  # not 4 for one trial
    finally:
        if one is not None:
            one.close()
    assert _start_ahead(_with(config, workers=2, trials=5), LocalPoolExecutor(workers=1), 5) is None  # given
    assert _start_ahead(_with(config, name="inprocess"), None, 5) is None
    assert _start_ahead(_with(config, name="dask"), None, 5) is None
    assert "tinyevo.estimators" in PRELOAD


def test_workers_preload_the_estimators_only_for_the_built_in_evaluator() -> None:
    from tinyevo.run.assembly import TrainingEvaluator
    from tinyevo.run.engine import RunAssembly, _preload

    config = RunConfig()
    builtin = TrainingEvaluator(data=config.data, space=config.space, estimator=config.estimator, seed=0)
    assert _preload(None) == PRELOAD  # the run assembles the built-in evaluator
    assert _preload(RunAssembly(space=None, problem=None, cost=None, evaluate=builtin)) == PRELOAD
    assert _preload(RunAssembly(space=None, problem=None, cost=None, evaluate=square)) == ()  # may need no torch


def _with(config: RunConfig, **executor: object) -> RunConfig:
    from dataclasses import replace

    trials = executor.pop("trials", config.budget.trials)
    ex = replace(config.executor, **executor)
    return replace(config, executor=ex, budget=replace(config.budget, trials=trials))


class _Stop(Exception):
    pass


def test_the_search_command_starts_its_worker_before_it_loads_the_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tinyevo.run.assembly as assembly
    import tinyevo.run.engine as engine
    from tinyevo.cli.main import build_parser

    events: list[tuple[str, object]] = []
    real_ahead, real_load = engine.start_workers_ahead, assembly.cached_dataset

    def ahead(config: RunConfig) -> object:
        ex = real_ahead(config)
        events.append(("workers", None if ex is None else list(ex.worker_pids())))
        return ex

    def load(*args: object) -> object:
        events.append(("data", args[0]))
        return real_load(*args)

    def fake_start_run(config: RunConfig, **kw: object) -> object:
        ex = kw["executor"]
        events.append(("start_run", ex))
        raise _Stop  # (not searched: the order is what is checked)

    monkeypatch.setattr(engine, "start_workers_ahead", ahead)
    monkeypatch.setattr(assembly, "cached_dataset", load)
    monkeypatch.setattr(engine, "start_run", fake_start_run)
    args = build_parser(["search"]).parse_args(
        ["search", "-q", "--data", "digits", "--budget", "1", "--no-final", "--out", str(tmp_path / "run")])
    with pytest.raises(_Stop):
        args.func(args)
    kinds = [k for k, _ in events]
    assert kinds[0] == "workers" and "data" in kinds and kinds[-1] == "start_run"
    assert len(events[0][1]) == 1  # one worker for a 1-trial search, started before the data was loaded
    ex = events[-1][1]
    assert isinstance(ex, LocalPoolExecutor) and ex.worker_pids() == []  # given to start_run; closed on the error
