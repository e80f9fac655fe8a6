"""The search driver trains nothing, so it imports no torch: only the isolated workers do (issue 19, start-up).
Checked on ``sys.modules`` of a fresh interpreter that runs a whole 1-trial search, not by the clock; and the
torch-free table of estimator metrics agrees with the torch-side registry it stands in for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tinyevo.run.options import ESTIMATOR_METRICS, estimator_metric_names
from tinyevo.storage import DB_NAME, SQLiteStorage

_PROBE = """
import contextlib, io, json, sys
from tinyevo.cli.main import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main({argv!r})
print(json.dumps({{"code": code, "torch": sorted(m for m in sys.modules if m.split(".")[0] == "torch")}}))
"""


def test_a_search_with_isolated_workers_imports_no_torch_in_the_driver(tmp_path: Path) -> None:
    config = tmp_path / "train.toml"
    config.write_text("[train]\nthreads = 1\nepochs = 1\n")
    out = tmp_path / "run"
    argv = ["search", "-q", "--budget", "1", "--no-final", "--config", str(config), "--out", str(out)]
    done = subprocess.run([sys.executable, "-c", _PROBE.format(argv=argv)], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 0
    assert result["torch"] == []
    with SQLiteStorage(out / DB_NAME, readonly=True) as s:  # the worker did train: a trial with an accuracy
        trials = s.trials()
    assert len(trials) == 1 and "val_acc" in trials[0].metrics


@pytest.mark.parametrize("prune_ratio", [0.0, 0.3])
def test_the_torch_free_metric_table_agrees_with_the_registry(prune_ratio: float) -> None:
    from tinyevo.estimators import ESTIMATORS, create_estimator, metric_names
    from tinyevo.training import TrainConfig

    assert set(ESTIMATOR_METRICS) == set(ESTIMATORS.names())
    for name in ESTIMATORS.names():
        est = create_estimator(name, config=TrainConfig(prune_ratio=prune_ratio))
        assert estimator_metric_names(name, prune_ratio=prune_ratio) == metric_names(est), name
    combined = create_estimator("naswot+lc", config=TrainConfig(prune_ratio=prune_ratio))
    assert estimator_metric_names("naswot+lc", prune_ratio=prune_ratio) == metric_names(combined)


def test_an_unknown_estimator_is_left_to_the_registry() -> None:
    assert estimator_metric_names("train+no-such-estimator") is None
