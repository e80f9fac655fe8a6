"""`tinyevo search --teacher RUN[:N]` (top-level ``teacher`` in a run config): every candidate of the search trains
by knowledge distillation from a retrained model of another run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tinyevo.cli.main import main
from tinyevo.errors import ConfigError
from tinyevo.run.config import RunConfig, build_config, load_config_file
from tinyevo.run.teacher import Teacher
from tinyevo.run.view import open_run


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(tiny .npz data, a run whose trial 0 has a retrained model: the teacher)."""
    rng = np.random.default_rng(0)
    n, k = 60, 3
    y = np.arange(n) % k
    x = rng.normal(size=(n, 6, 6)).astype(np.float32) + y[:, None, None]
    root = tmp_path_factory.mktemp("search_teacher")
    np.savez(root / "tiny.npz", x_train=x, y_train=y, x_test=x[:15], y_test=y[:15])
    teacher = root / "teacher"
    assert main(["search", "--data", str(root / "tiny.npz"), "--budget", "1", "--device", "none", "--out",
                 str(teacher), "--epochs", "1", "--strategy", "random", "--final-epochs", "3", "--quiet"]) == 0
    assert open_run(teacher).finals
    return root / "tiny.npz", teacher


def _search(data: Path, out: Path, *extra: str) -> int:
    return main(["search", "--data", str(data), "--budget", "3", "--device", "none", "--out", str(out),
                 "--seed", "2", "--epochs", "2", "--strategy", "random", "--no-final", "--quiet", *extra])


def test_candidates_train_by_distillation_from_the_teacher(
    setup: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torch import nn

    from tinyevo.estimators import training_estimator
    from tinyevo.training import Distillation

    data, teacher = setup
    seen: list[object] = []
    real_train = training_estimator.train

    def spy(*args: object, **kwargs: object) -> object:
        loss = kwargs["step"].loss  # type: ignore[attr-defined]
        seen.append(loss.teacher if isinstance(loss, Distillation) else None)
        return real_train(*args, **kwargs)

    # the spy sees the search only in this process: --executor inprocess
    monkeypatch.setattr(training_estimator, "train", spy)
    assert _search(data, tmp_path / "plain", "--executor", "inprocess") == 0
    plain_seen, seen[:] = list(seen), []
    assert _search(data, tmp_path / "taught", "--teacher", str(teacher), "--executor", "inprocess") == 0
    assert plain_seen and all(t is None for t in plain_seen)
    assert seen and all(isinstance(t, nn.Module) for t in seen) and len({id(t) for t in seen}) == 1  # loaded once
    plain, taught = open_run(tmp_path / "plain"), open_run(tmp_path / "taught")
    assert taught.config.estimator.teacher == Teacher((str(teacher),)) and plain.config.estimator.teacher is None
    assert [t.genome for t in taught.trials] == [t.genome for t in plain.trials]  # same seed, same candidates
    assert sum(t.ok for t in taught.trials) == len(seen)


def test_the_teacher_round_trips_through_the_config_file_and_the_run(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('teacher = ["runs/big:7", "runs/other"]\n[final]\nteacher = "runs/final"\n')
    cfg = build_config(load_config_file(path))
    assert cfg.estimator.teacher == Teacher(("runs/big:7", "runs/other")) and cfg.final.teacher == Teacher(("runs/final",))
    stored = json.loads(json.dumps(cfg.to_json()))
    assert stored["estimator"]["teacher"] == ["runs/big:7", "runs/other"] and RunConfig.from_json(stored) == cfg
    assert build_config({"teacher": ["one"]}).estimator.teacher == Teacher(("one",))
    assert build_config({"teacher": ["one"]}).to_json()["estimator"]["teacher"] == "one"  # stored as before
    assert build_config({}).estimator.teacher is None
    old = {**stored, "estimator": {"name": "train", "train": {}}}  # stored before the option existed
    assert RunConfig.from_json(old).estimator.teacher is None
    with pytest.raises(ConfigError, match="teacher must be a run directory"):
        build_config({"teacher": ["a", ""]})


@pytest.mark.parametrize(("extra", "message"), [
    (("--teacher", "{tmp}/nope"), "not a tinyevo run directory"),
    (("--teacher", "{teacher}", "--estimator", "naswot", "--objective", "naswot"), "trains no candidate"),
])
def test_a_teacher_that_cannot_be_used_is_one_line_exit_2_before_the_run_starts(
    setup: tuple[Path, Path], tmp_path: Path, extra: tuple[str, ...], message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data, teacher = setup
    capsys.readouterr()
    args = [a.format(tmp=tmp_path, teacher=teacher) for a in extra]
    assert _search(data, tmp_path / "run", *args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()
