"""Every option is checked once, at the edge, into typed records: each bad value is one ConfigError line naming
the option (issue 17 "Bad input" / "Silently broken settings", issue 18 item 3)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest

from tinyevo.errors import ConfigError
from tinyevo.run.config import build_config, load_config_file
from tinyevo.run.options import TrainOptions, train_options


@pytest.mark.parametrize(
    "values, message",
    [
        ({"train": {"epochs": 2.5}}, "train.epochs must be an integer, got 2.5"),
        ({"train": {"batch_size": 64.0}}, "train.batch_size must be an integer, got 64.0"),
        ({"train": {"lr": math.inf}}, "train.lr must be a finite number, got inf"),
        ({"train": {"weight_decay": math.nan}}, "train.weight_decay must be a finite number, got nan"),
        ({"train": {"weight_decay": -0.1}}, "train.weight_decay must be >= 0"),
        ({"train": {"grad_clip": -1}}, "train.grad_clip must be > 0"),  # was gradient ascent, silently
        ({"train": {"momentum": 1.5}}, "train.momentum must be < 1"),
        ({"train": {"warmup_epochs": -2}}, "train.warmup_epochs must be >= 0"),
        ({"train": {"time_limit_s": math.inf}}, "train.time_limit_s must be a finite number"),
        ({"train": {"epochs": "3"}}, "train.epochs must be an integer, got '3'"),
        ({"final": {"lr": "0.1"}}, "final.lr must be a number, got '0.1'"),
        ({"final": {"shift_pixels": -1}}, "final.shift_pixels must be >= 0"),
        ({"objectives": 5}, "objectives must be a METRIC"),
        ({"scheduler": 8786, "executor": "dask"}, "--scheduler must be a string, got 8786"),
        ({"budget": "40"}, "--budget must be an integer, got '40'"),
        ({"workers": 2.0}, "--workers must be an integer, got 2.0"),
        ({"max_trials": 0}, "max_trials must be >= 1, got 0"),
        ({"seed": 2**70}, "--seed must be <= 9223372036854775807"),
        ({"macs": math.inf}, "--macs must be a finite number"),
        ({"latency_ms": "5"}, "--latency-ms must be a number, got '5'"),
        ({"init": [1]}, "init item must be a string, got 1"),
        ({"teacher": ["a", 2]}, "teacher item must be a string, got 2"),
        ({"data": 3}, "data must be a string, got 3"),
        ({"space": ["chain"]}, "space must be a string"),
        ({"sram": "1e400KB"}, "sram must be a finite size, got '1e400KB'"),
        ({"flash": "1e400B"}, "flash must be a finite size"),
        ({"weights": "1e400KB"}, "weights must be a finite size"),
    ],
)
def test_bad_value_is_one_line_naming_the_option(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_config(values)
    text = str(info.value)
    assert message in text and "\n" not in text


def test_flag_sizes_that_overflow_name_the_flag() -> None:
    with pytest.raises(ConfigError, match="^--sram must be a finite size"):
        build_config(None, sram="1e400KB")


def test_seed_bounds_are_inclusive() -> None:
    assert build_config({"seed": 2**63 - 1}).seed == 2**63 - 1
    assert build_config({"seed": 0}).seed == 0


def test_unknown_training_option_suggests_the_close_name() -> None:
    with pytest.raises(ConfigError, match=r"unknown training option\(s\) in \[train\]: epocs; did you mean 'epochs'\?"):
        build_config({"train": {"epocs": 3}})


def test_good_values_are_normalised_not_refused() -> None:
    cfg = build_config({"train": {"lr": 1, "grad_clip": None, "augment": ["flip"], "momentum": 0},
                        "final": {"weight_decay": 0}})
    assert cfg.estimator.train["lr"] == 1.0 and isinstance(cfg.estimator.train["lr"], float)
    assert cfg.estimator.train["grad_clip"] is None and cfg.estimator.train["augment"] == ("flip",)
    assert cfg.final.train["weight_decay"] == 0.0


def test_train_options_defaults_are_trainconfigs() -> None:
    """One set of names and defaults: the torch-free record and the torch-side TrainConfig agree field by field."""
    from tinyevo.training import TrainConfig

    from tinyevo.estimators import DEFAULT_ESTIMATOR
    from tinyevo.training import AUGMENTATIONS
    from tinyevo.run import options

    torch_side = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    edge = {name: f.default for name, f in TrainOptions.model_fields.items()}
    assert edge == torch_side
    assert options.AUGMENTATIONS == AUGMENTATIONS and options.DEFAULT_ESTIMATOR == DEFAULT_ESTIMATOR


def test_every_valid_train_options_builds_a_trainconfig() -> None:
    """What the edge accepts, TrainConfig accepts too (so no error surfaces late in a worker)."""
    from tinyevo.training import TrainConfig

    for opts in ({"optimizer": "sgd", "lr": 0.1, "momentum": 0.0}, {"augment": ("shift", "flip"), "threads": 2},
                 {"prune_ratio": 0.5, "prune_finetune_epochs": 0}, {"distill_alpha": 1, "distill_temperature": 0.5}):
        checked = train_options("[train]", opts)
        TrainConfig(**{k: getattr(checked, k) for k in opts})


@pytest.mark.parametrize(
    "content, message",
    [
        (b"budget = 3\n# \xff\xfe\n", "is not UTF-8 text"),
        (b"x = " + b"[" * 5000 + b"]" * 5000, "nests arrays or tables"),  # RecursionError before
        (b"[space_options]\nchannels = " + b"[" * 40 + b"1" + b"]" * 40, "more than 16 levels deep"),
        (b"out = 3\n", "out in"),
    ],
)
def test_unreadable_config_files_are_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    p = tmp_path / "run.toml"
    p.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        load_config_file(p)


def test_a_directory_is_no_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config_file(tmp_path)


def test_the_torch_side_config_is_built_from_checked_options() -> None:
    """assembly.train_config goes through TrainOptions: a value TrainConfig alone took (grad_clip = -1 clipped
    nothing and ascended) is refused wherever a TrainConfig is built from options."""
    from tinyevo.run.assembly import train_config

    assert train_config({"lr": 1, "epochs": 2}, threads=2).lr == 1.0
    with pytest.raises(ConfigError, match="train.grad_clip must be > 0"):
        train_config({"grad_clip": -1.0})
