"""``search --strategy dnas`` as a run: the found genome is the run's one stored trial, within the hard limits."""

from __future__ import annotations

import json

from tinyevo.run.config import build_config
from tinyevo.run.dnas import dnas_run
from tinyevo.storage import SQLiteStorage
from tinyevo.supernet.dnas import DnasConfig


def test_dnas_run_stores_the_genome(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = build_config({"space": "nb201", "space_options": {"channels": 2, "cells_per_stage": 1}},
                          train={"epochs": 1}, flash="12KB", final={"enabled": False})
    out = dnas_run(config, cfg=DnasConfig(warmup_epochs=0), run_dir=tmp_path / "run")
    record = json.loads((tmp_path / "run" / "dnas.json").read_text())
    assert record["genome"] == str(out.search.genome)
    assert len(out.run.trials) == 1 and str(out.run.trials[0].genome) == record["genome"]
    assert out.run.trials[0].metrics["flash_bytes"] <= 12 * 1024
    storage = SQLiteStorage(tmp_path / "run" / "trials.db")
    try:
        assert [str(t.genome) for t in storage.trials()] == [record["genome"]]
    finally:
        storage.close()
