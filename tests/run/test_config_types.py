"""Bad types in a run config are named, with the option and the value (not a Python comparison message)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyevo.cli.main import main
from tinyevo.errors import ConfigError
from tinyevo.run.config import build_config


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"train": {"epochs": "one"}}, "train.epochs must be an integer, got 'one'"),
        ({"train": {"epochs": 2.5}}, "train.epochs must be an integer, got 2.5"),
        ({"train": {"batch_size": 32.0}}, "train.batch_size must be an integer, got 32.0"),
        ({"train": {"batch_size": True}}, "train.batch_size must be an integer, got True"),
        ({"train": {"lr": "fast"}}, "train.lr must be a number, got 'fast'"),
        ({"train": {"restore_best": "yes"}}, "train.restore_best must be true or false, got 'yes'"),
        ({"train": {"optimizer": 3}}, "train.optimizer must be one of 'sgd', 'adam', 'adamw', got 3"),
        ({"train": {"augment": "shift"}}, "train.augment must be a list, got 'shift'"),
        ({"train": {"augment": [1]}}, "train.augment item must be a string, got 1"),
        ({"train": {"threads": "2"}}, "train.threads must be an integer, got '2'"),
        ({"final": {"epochs": "thirty"}}, "final.epochs must be an integer, got 'thirty'"),
        ({"final": {"label_smoothing": "0.1"}}, "final.label_smoothing must be a number, got '0.1'"),
        ({"final": {"top_k": 1.5}}, "final.top_k must be an integer, got 1.5"),
        ({"budget": "ten"}, "--budget must be an integer, got 'ten'"),
        ({"val_fraction": "0.2"}, "val_fraction must be a number, got '0.2'"),
        ({"objectives": 3}, "objectives must be a METRIC"),
        ({"scheduler": 8786, "executor": "dask"}, "--scheduler must be a string, got 8786"),
    ],
)
def test_bad_types_name_the_option(values: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as info:
        build_config(values)
    assert message in str(info.value)


def test_good_values_still_pass() -> None:
    cfg = build_config({"train": {"epochs": 2, "lr": 1, "augment": ["shift"], "threads": None},
                        "final": {"epochs": 3, "restore_best": True}})
    assert cfg.estimator.train["epochs"] == 2 and cfg.estimator.train["lr"] == 1
    assert cfg.final.train["epochs"] == 3 and cfg.final.train["restore_best"] is True


def test_cli_says_it_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "run.toml").write_text('[train]\nepochs = "one"\n')
    assert main(["search", "--config", str(tmp_path / "run.toml"), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "tinyevo: error: train.epochs must be an integer, got 'one'"
