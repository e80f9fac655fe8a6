"""Run assembly: the cost function's peak-SRAM convention and the limits built from a run config."""

from __future__ import annotations

import numpy as np

from tinyevo.cost import estimate_cost
from tinyevo.run.assembly import CostFunction, make_limits
from tinyevo.run.config import build_config
from tinyevo.run.engine import assemble_run
from tinyevo.spaces import create_space


def test_cost_function_follows_the_sram_convention() -> None:
    space = create_space("chain", input_shape=(1, 16, 16), num_classes=10)
    rng = np.random.default_rng(0)
    mcunet, munas = CostFunction(space, device="stm32f412"), CostFunction(space, sram_convention="munas")
    lower = 0
    for _ in range(8):
        g = space.sample(rng)
        ir = space.decode(g)
        a, b = mcunet(g), munas(g)
        assert a["peak_sram_bytes"] == estimate_cost(ir).peak_sram_bytes
        assert b["peak_sram_bytes"] == estimate_cost(ir, planner="optimal", count_input=False, count_output=False).peak_sram_bytes
        assert b["peak_sram_bytes"] <= a["peak_sram_bytes"]
        lower += b["peak_sram_bytes"] < a["peak_sram_bytes"]
        assert a["weight_bytes"] == b["weight_bytes"] == estimate_cost(ir).weight_bytes
    assert lower > 0  # the 16x16 input buffer no longer counts


def test_limits_and_cost_of_a_run_use_the_stored_options() -> None:
    cfg = build_config(None, sram="3KB", weights="4.5KB", sram_convention="munas")
    limits = make_limits(cfg.limits)
    assert limits.weight_bytes == 4608 and limits.bounds()["weight_bytes"] == 4608
    parts = assemble_run(cfg)
    assert isinstance(parts.cost, CostFunction) and parts.cost.sram_convention == "munas"
    assert {c.metric for c in parts.problem.constraints} >= {"peak_sram_bytes", "weight_bytes"}
    assert assemble_run(build_config(None)).cost.sram_convention == "mcunet"
