from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from run_fakes import FakeEvaluate, fake_config, fake_parts, trial_signature

from tinyevo.errors import ConfigError, StorageError
from tinyevo.executors import LocalPoolExecutor
from tinyevo.run.engine import ProgressEvent, resume_run, start_run
from tinyevo.storage import DB_NAME, SQLiteStorage
from tinyevo.strategies.base import STRATEGIES, Status

FAIL = "avg_pool_3x3~0|+|avg"  # genomes whose first two edges are avg-pools raise in the fake evaluator


def test_end_to_end_fake_search_records_every_trial(tmp_path: Path) -> None:
    cfg = fake_config(budget=15)
    events: list[ProgressEvent] = []
    res = start_run(cfg, run_dir=tmp_path / "r", parts=fake_parts(cfg), progress=events.append)
    assert res.stopped == "budget"
    evaluated = [t for t in res.trials if t.status is not Status.INFEASIBLE]
    assert len(evaluated) == 15
    with SQLiteStorage(tmp_path / "r" / DB_NAME, readonly=True) as s:
        recs = s.records()
        meta = s.meta()
        assert s.get_state("phase") == "done"
    assert [r.trial for r in recs] == list(res.trials)
    assert meta.seed == 3 and meta.config["strategy"] == "regularized-evolution"
    for r in recs:
        assert r.cost and set(r.cost) <= set(r.trial.metrics)
        if r.trial.status is Status.INFEASIBLE:  # never trained: no fitness metric, no eval seed
            assert "val_acc" not in r.trial.metrics and r.eval_seed is None and r.trial.violation > 0
        else:
            assert r.eval_seed is not None and r.worker
    # parents are resolved to trial numbers of this run
    children = [r for r in recs if r.trial.parents]
    assert children and all(len(r.parent_ids) >= 1 and max(r.parent_ids) < r.number for r in children)
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("trial") == len(recs)
    last = [e for e in events if e.kind == "trial"][-1]
    assert last.evaluations == 15 and last.trials == len(recs) and last.best is not None
    assert 0 < last.feasible_fraction <= 1


def test_failing_and_nan_evaluations_are_recorded_and_search_goes_on(tmp_path: Path) -> None:
    cfg = fake_config(budget=30, strategy="random", seed=5)
    parts = fake_parts(
        cfg, evaluate=FakeEvaluate(fail_marker="avg_pool_3x3~0", nan_marker="skip_connect~0|+|skip")
    )
    res = start_run(cfg, run_dir=tmp_path / "r", parts=parts)
    failed = [t for t in res.trials if t.status is Status.FAILED]
    ok = [t for t in res.trials if t.status is Status.OK]
    assert failed and ok and res.stopped == "budget"
    assert any(t.error and "RuntimeError: boom" in t.error for t in failed)
    # failures are not the last trials: the search went on after them
    assert min(t.number for t in failed) < max(t.number for t in ok)
    with SQLiteStorage(tmp_path / "r" / DB_NAME, readonly=True) as s:
        stored = {r.number: r.trial for r in s.records()}
    assert all(stored[t.number].error == t.error for t in failed)


def test_same_seed_same_trials_and_different_seed_differs(tmp_path: Path) -> None:
    sigs = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        cfg = fake_config(seed=seed, batch=3)
        start_run(cfg, run_dir=tmp_path / name, parts=fake_parts(cfg))
        sigs.append(trial_signature(tmp_path / name))
    assert sigs[0] == sigs[1]
    assert [s[1] for s in sigs[0]] != [s[1] for s in sigs[2]]


def test_process_pool_gives_the_same_trials_as_in_process(tmp_path: Path) -> None:
    cfg = fake_config(batch=2, budget=8)
    start_run(cfg, run_dir=tmp_path / "serial", parts=fake_parts(cfg))
    pool = LocalPoolExecutor(workers=2)
    start_run(
        replace(cfg, executor=replace(cfg.executor, workers=2)),
        run_dir=tmp_path / "pool",
        parts=fake_parts(cfg),
        executor=pool,
    )
    serial, parallel = trial_signature(tmp_path / "serial"), trial_signature(tmp_path / "pool")
    assert serial == parallel
    with SQLiteStorage(tmp_path / "pool" / DB_NAME, readonly=True) as s:
        assert len({r.worker for r in s.records() if r.worker}) >= 1


def _truncate(src: Path, dst: Path, keep: set[int]) -> None:
    """A copy of a run database holding only the trials in ``keep`` (what a crash could have left)."""
    with SQLiteStorage(src / DB_NAME, readonly=True) as s:
        meta, recs = s.meta(), s.records()
    with SQLiteStorage(dst / DB_NAME) as d:
        d.create(meta)
        for r in recs:
            if r.number in keep:
                d.add(r)


@pytest.mark.parametrize("batch", [1, 3])
def test_resume_from_any_prefix_with_holes_equals_uninterrupted(tmp_path: Path, batch: int) -> None:
    cfg = fake_config(budget=14, batch=batch)
    start_run(cfg, run_dir=tmp_path / "full", parts=fake_parts(cfg))
    full = trial_signature(tmp_path / "full")
    n = len(full)
    # cut inside a batch: the first trials of the last batch are missing, later ones are there
    cut = (n // 2) // batch * batch
    keep = set(range(cut)) | ({cut + batch - 1} if batch > 1 else set())
    for name, kept in (("empty", set()), ("holes", keep), ("complete", set(range(n)))):
        d = tmp_path / name
        d.mkdir()
        _truncate(tmp_path / "full", d, kept)
        res = resume_run(d, parts=fake_parts(cfg))
        assert trial_signature(d) == full, name
        assert len(res.trials) == n


def test_resume_refuses_a_changed_run(tmp_path: Path) -> None:
    cfg = fake_config(budget=6)
    start_run(cfg, run_dir=tmp_path / "r", parts=fake_parts(cfg))
    parts = fake_parts(cfg)
    parts.strategy_factory = lambda: STRATEGIES.create(
        "regularized-evolution", parts.space, parts.problem, seed=99
    )
    with pytest.raises(ConfigError, match="does not match"):
        resume_run(tmp_path / "r", parts=parts)


def test_start_refuses_existing_run_and_resume_needs_a_run(tmp_path: Path) -> None:
    cfg = fake_config(budget=2)
    start_run(cfg, run_dir=tmp_path / "r", parts=fake_parts(cfg))
    with pytest.raises(StorageError, match="already holds a run"):
        start_run(cfg, run_dir=tmp_path / "r", parts=fake_parts(cfg))
    with pytest.raises(StorageError, match="not a tinyevo run directory"):
        resume_run(tmp_path / "nothing-here", parts=fake_parts(cfg))


def test_time_limit_stops_the_search(tmp_path: Path) -> None:
    cfg = fake_config(budget=1000, time_s=0.3, executor="inprocess")  # no worker start-up inside the 0.3 s
    res = start_run(cfg, run_dir=tmp_path / "r", parts=fake_parts(cfg, evaluate=FakeEvaluate(sleep_s=0.05)))
    assert res.stopped == "time" and 2 <= len(res.trials) < 100


def test_final_retraining_saves_loadable_weights_once(tmp_path: Path) -> None:
    cfg = fake_config(budget=10, final=True, pareto=True)
    res = start_run(cfg, run_dir=tmp_path / "r", parts=fake_parts(cfg))
    assert 1 <= len(res.finals) <= 3
    best_ok = max((t for t in res.trials if t.status is Status.OK), key=lambda t: t.metrics["val_acc"])
    assert res.finals[0].trial == best_ok.number or best_ok.number in {f.trial for f in res.finals}
    for f in res.finals:
        folder = tmp_path / "r" / Path(f.weights).parent
        state = torch.load(tmp_path / "r" / f.weights, weights_only=True)
        assert set(state) == {"weight", "bias"}
        assert (folder / "genome.txt").read_text().strip() == f.genome
        doc = json.loads((folder / "metrics.json").read_text())
        assert doc["final"]["test_acc"] == 0.75 and doc["trial"] == f.trial
        assert f.metrics["test_acc"] == 0.75 and "macs" in f.metrics
    before = {f.trial: f.created_at for f in res.finals}
    again = resume_run(tmp_path / "r", parts=fake_parts(cfg))
    assert {f.trial: f.created_at for f in again.finals} == before  # not retrained a second time


def test_run_identity_fixes_batch_and_threads() -> None:
    from tinyevo.run.assembly import default_threads
    from tinyevo.run.engine import resolve_run_identity

    cfg = fake_config(batch=1)
    cfg = replace(cfg, executor=replace(cfg.executor, workers=2, batch_size=None))
    fixed = resolve_run_identity(cfg)
    assert fixed.executor.batch == 2 and fixed.executor.batch_size == 2
    assert fixed.estimator.train["threads"] == default_threads(2) >= 1
    assert resolve_run_identity(fixed) == fixed
    remote = replace(cfg, executor=replace(cfg.executor, name="dask", scheduler="tcp://10.0.0.1:8786"))
    assert "threads" not in resolve_run_identity(remote).estimator.train
