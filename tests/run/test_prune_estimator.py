"""A search through the library with ``[train] prune_ratio = 0.5``: every trained candidate is scored after pruning."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tinyevo.errors import ConfigError
from tinyevo.run.config import build_config, load_config_file
from tinyevo.run.engine import start_run
from tinyevo.strategies.base import Status

CONFIG = """
data = "digits"
space = "chain"
strategy = "random"
budget = 2
seed = 2  # samples one network with convs (pruned) and one without (nothing to prune)

[space_options]
max_layers = 2
max_dense = 1
channels = [4, 8]

[train]
epochs = 1
batch_size = 64
prune_ratio = 0.5
prune_finetune_epochs = 1

[final]
enabled = false
"""


def test_search_with_pruned_evaluation(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text(CONFIG)
    cfg = build_config(load_config_file(path))
    assert cfg.estimator.train["prune_ratio"] == 0.5
    res = start_run(cfg, run_dir=tmp_path / "run")
    ok = [t for t in res.trials if t.status is Status.OK]
    assert len(ok) == 2
    for t in ok:
        m = t.metrics
        assert math.isfinite(m["val_acc"]) and math.isfinite(m["unpruned_val_acc"])
        assert 0 < m["pruned_params"] <= m["params"] and m["pruned_macs"] <= m["macs"]
        assert m["pruned_flash_bytes"] <= m["flash_bytes"] and m["pruned_peak_sram_bytes"] > 0
        has_conv = "conv" in t.genome or "dsc" in t.genome
        assert (m["pruned_params"] < m["params"]) == has_conv
    assert any("conv" in t.genome for t in ok)


def test_a_bad_prune_ratio_is_rejected_when_the_config_is_built() -> None:
    with pytest.raises(ConfigError, match="prune_ratio"):
        build_config(train={"prune_ratio": 1.5})


def test_the_evaluator_prices_pruned_candidates_like_the_run(tmp_path: Path) -> None:
    from tinyevo.run.engine import assemble_run

    path = tmp_path / "run.toml"
    path.write_text(CONFIG)
    cfg = build_config(load_config_file(path), sram_convention="munas", planner="tflm", precision="float32")
    model = assemble_run(cfg).evaluate.cost_model
    assert (model.device, model.precision, model.planner, model.count_input, model.count_output) == (
        None, "float32", "tflm", False, False)
