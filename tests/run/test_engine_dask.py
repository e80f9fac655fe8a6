"""The run engine on a Dask LocalCluster (127.0.0.1) gives the same trials as in-process evaluation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from run_fakes import FakeEvaluate, fake_config, fake_parts, trial_signature

pytest.importorskip("distributed")

from tinyevo.executors.dask import DaskExecutor  # noqa: E402
from tinyevo.run.engine import start_run  # noqa: E402
from tinyevo.storage import DB_NAME, SQLiteStorage  # noqa: E402
from tinyevo.strategies.base import Status  # noqa: E402


def test_dask_run_equals_in_process_run_and_records_failures(tmp_path: Path) -> None:
    cfg = fake_config(batch=2, budget=10)
    evaluate = FakeEvaluate(fail_marker="avg_pool_3x3~0")
    start_run(cfg, run_dir=tmp_path / "serial", parts=fake_parts(cfg, evaluate=evaluate))
    dask_cfg = replace(cfg, executor=replace(cfg.executor, name="dask", workers=2))
    ex = DaskExecutor(workers=2)
    try:
        address = ex.client.scheduler.address
        start_run(dask_cfg, run_dir=tmp_path / "dask", parts=fake_parts(cfg, evaluate=evaluate), executor=ex)
    finally:
        ex.close()
    assert address.startswith("tcp://127.0.0.1:")
    assert trial_signature(tmp_path / "dask") == trial_signature(tmp_path / "serial")
    with SQLiteStorage(tmp_path / "dask" / DB_NAME, readonly=True) as s:
        recs = s.records()
    assert any(r.trial.status is Status.FAILED and "boom" in (r.trial.error or "") for r in recs)
    workers = {r.worker for r in recs if r.trial.status is not Status.INFEASIBLE}
    assert workers and all(w for w in workers)
