"""With the default executor a candidate that crashes its process or hangs fails its trial; the search goes on."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from run_fakes import FakeEvaluate, fake_config, fake_parts, trial_signature

from tinyevo.errors import ConfigError
from tinyevo.executors import LocalPoolExecutor
from tinyevo.run.config import DEFAULT_TRIAL_TIMEOUT_S, RunConfig, build_config
from tinyevo.run.engine import _executor_for, resume_run, start_run
from tinyevo.storage import DB_NAME, SQLiteStorage
from tinyevo.strategies.base import Status

MARKER = "avg_pool_3x3~0"


@dataclass(frozen=True)
class NativeCrash:
    """Like :class:`FakeEvaluate`, but genomes containing ``marker`` end the process with ``sig`` (``None``:
    hang)."""

    marker: str = MARKER
    sig: int | None = signal.SIGSEGV

    def __call__(self, task: object) -> dict[str, float]:
        if self.marker in task.genome:  # type: ignore[attr-defined]
            if self.sig is None:
                while True:
                    time.sleep(1.0)
            os.kill(os.getpid(), self.sig)
        return FakeEvaluate()(task)  # type: ignore[arg-type]


def _run(tmp_path: Path, name: str, evaluate: object, **cfg_changes: object) -> tuple[RunConfig, list]:
    cfg = fake_config(budget=10, strategy="random", seed=5)
    if cfg_changes:
        cfg = replace(cfg, executor=replace(cfg.executor, **cfg_changes))
    res = start_run(cfg, run_dir=tmp_path / name, parts=fake_parts(cfg, evaluate=evaluate))  # type: ignore[arg-type]
    assert res.stopped == "budget"
    return cfg, list(res.trials)


def test_a_segfaulting_candidate_fails_its_trial_and_the_search_goes_on(tmp_path: Path) -> None:
    _, trials = _run(tmp_path, "a", NativeCrash())
    crashed = [t for t in trials if MARKER in t.genome and t.status is not Status.INFEASIBLE]
    ok = [t for t in trials if t.status is Status.OK]
    assert crashed and ok
    assert {t.status for t in crashed} == {Status.FAILED}
    assert {t.error for t in crashed} == {
        "WorkerCrashed: the evaluation process died with signal 11 (SIGSEGV) (2 attempts)"
    }
    assert min(t.number for t in crashed) < max(t.number for t in ok)  # the search went on
    # the innocent trials are exactly those of a run without crashes (nothing else was charged or changed)
    _, clean = _run(tmp_path, "b", FakeEvaluate())
    assert [t for t in trials if t.status is Status.OK] == [
        t for t in clean if t.status is Status.OK and MARKER not in t.genome
    ]
    # the failed record is deterministic: a second run stores the very same trials
    _run(tmp_path, "c", NativeCrash())
    assert trial_signature(tmp_path / "a") == trial_signature(tmp_path / "c")


def test_a_hung_candidate_times_out(tmp_path: Path) -> None:
    _, trials = _run(tmp_path, "a", NativeCrash(sig=None), trial_timeout_s=0.5)
    hung = [t for t in trials if MARKER in t.genome and t.status is not Status.INFEASIBLE]
    assert hung and {t.error for t in hung} == {"TrialTimeout: exceeded 0.5 s"}
    assert any(t.status is Status.OK for t in trials)


def test_resume_of_a_run_with_crashes_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    cfg, _ = _run(tmp_path, "full", NativeCrash(sig=signal.SIGABRT))
    with SQLiteStorage(tmp_path / "full" / DB_NAME, readonly=True) as s:
        meta, recs = s.meta(), s.records()
    with SQLiteStorage(tmp_path / "cut" / DB_NAME) as d:  # what a kill after half the trials leaves
        d.create(meta)
        for r in recs[: len(recs) // 2]:
            d.add(r)
    resume_run(tmp_path / "cut", parts=fake_parts(cfg, evaluate=NativeCrash(sig=signal.SIGABRT)))  # type: ignore[arg-type]
    assert trial_signature(tmp_path / "cut") == trial_signature(tmp_path / "full")


def test_trial_timeout_option() -> None:
    assert build_config().executor.trial_timeout_s == DEFAULT_TRIAL_TIMEOUT_S == 1800.0
    assert build_config(trial_timeout="10m").executor.trial_timeout_s == 600.0
    assert build_config({"trial_timeout": "1h30m"}).executor.trial_timeout_s == 5400.0
    for off in ("0", "none", 0):
        assert build_config(trial_timeout=off).executor.trial_timeout_s is None
    with pytest.raises(ConfigError, match="duration"):
        build_config(trial_timeout="soon")
    cfg = build_config(trial_timeout="90s")
    assert RunConfig.from_json(cfg.to_json()).executor.trial_timeout_s == 90.0


def test_the_engine_gives_the_executor_its_timeout_and_threads() -> None:
    cfg = fake_config()
    cfg = replace(cfg, executor=replace(cfg.executor, trial_timeout_s=42.0),
                  estimator=replace(cfg.estimator, train={**cfg.estimator.train, "threads": 1}))
    ex = _executor_for(cfg, None)
    try:
        assert isinstance(ex, LocalPoolExecutor)
        assert (ex.timeout_s, ex.threads) == (42.0, 1)
    finally:
        ex.close()
