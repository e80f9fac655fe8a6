"""`tinyevo search` flags of the options that reach the library (issue 18 item 11): end to end on digits."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyevo.cli.main import main
from tinyevo.run.view import open_run

FAST = ["--budget", "3", "--epochs", "1", "--no-final", "--quiet", "--seed", "0"]


def test_population_and_soft_flags_reach_the_stored_run(tmp_path: Path):
    out = tmp_path / "run"
    assert main(["search", "--strategy", "regularized-evolution", "--population", "2", "--soft", "flash",
                 "--soft-penalty", "5", "--out", str(out), *FAST]) == 0
    view = open_run(out)
    assert view.config.strategy_options.population == 2
    assert view.config.limits.soft == ("flash",) and view.problem.soft_penalty == 5.0
    assert [c.hard for c in view.problem.constraints if c.metric == "flash_bytes"] == [False]


def test_population_with_a_strategy_that_has_no_population_is_one_line(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]):
    code = main(["search", "--population", "5", "--out", str(tmp_path / "run"), *FAST])
    err = capsys.readouterr().err
    assert code == 2 and "strategy 'surrogate-evolution' has no option 'population'" in err
    assert "its [strategy_options] are" in err and "refit_fraction" in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


def test_prefilter_seeds_are_evaluated_first_and_stored(tmp_path: Path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('[prefilter]\npool = 6\nsize = 2\n')
    out = tmp_path / "run"
    assert main(["search", "--config", str(cfg), "--out", str(out), *FAST]) == 0
    view = open_run(out)
    chosen = view.config.prefilter.chosen
    assert len(chosen) == 2
    first = sorted(view.trials, key=lambda t: t.number)[:2]
    assert [t.genome for t in first] == list(chosen) and all(t.origin == "seed" for t in first)
