"""The typed teacher record of a run config (:class:`tinyevo.run.teacher.Teacher`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyevo.errors import ConfigError
from tinyevo.run.config import RunConfig, build_config
from tinyevo.run.teacher import Teacher


@pytest.mark.parametrize(("value", "specs"), [
    ("runs/big", ("runs/big",)),
    (["runs/big:7"], ("runs/big:7",)),
    (("a", "b:2"), ("a", "b:2")),
])
def test_parse_accepts_one_spec_or_a_list(value: object, specs: tuple[str, ...]) -> None:
    assert Teacher.parse(value) == Teacher(specs)


@pytest.mark.parametrize("value", ["", " ", [], [1], 3, {"a": 1}, ["ok", ""]])
def test_parse_rejects_what_is_no_run_directory(value: object) -> None:
    with pytest.raises(ConfigError, match="final teacher must be a run directory"):
        Teacher.parse(value, "final teacher")


def test_models_name_the_run_and_the_trial() -> None:
    assert Teacher(("runs/big:7", "runs/other")).models == ((Path("runs/big"), 7), (Path("runs/other"), None))


def test_stored_form_is_unchanged_and_reads_back() -> None:
    """One teacher is stored as its string and several as a list (as before the record), and a stored config
    reads back to the same record."""
    cfg = build_config({"teacher": "runs/big:7", "final": {"teacher": ["x", "y"]}})
    stored = cfg.to_json()
    assert stored["estimator"]["teacher"] == "runs/big:7" and stored["final"]["teacher"] == ["x", "y"]
    back = RunConfig.from_json(stored)
    assert back.estimator.teacher == Teacher(("runs/big:7",)) and back.final.teacher == Teacher(("x", "y"))


def test_a_missing_teacher_fails_when_loaded(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="teacher"):
        Teacher((str(tmp_path / "no-such-run"),)).load()
