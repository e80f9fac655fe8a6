"""TinyNAS stage 1: sub-space choice, infeasible grids, the blocks space and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tinyevo.cli.main import main
from tinyevo.cost import MCUCostModel
from tinyevo.devices import Limits
from tinyevo.errors import ConfigError, InfeasibleError
from tinyevo.ir import ArchIR, Conv2d, Dense, GlobalPool, GraphBuilder
from tinyevo.spaces import SPACES
from tinyevo.tinynas import optimize_space

ACTIVATIONS = MCUCostModel(planner="optimal")
"""The toy sizes below are worked out by hand as activation bytes in the best order (the ``optimal`` planner), not
as a TFLM arena, which adds its interpreter's persistent data."""


class ToySpace:
    """``depth`` 3x3 convs with ``8 * w`` channels on a 1 x r x r input (a space with sample, decode only)."""

    name = "toy"

    def __init__(self, width: float, resolution: int, *, depths: tuple[int, ...] = (1,)) -> None:
        self.channels = max(1, int(8 * width))
        self.resolution = resolution
        self.depths = depths

    def sample(self, rng: np.random.Generator) -> int:
        return int(self.depths[int(rng.integers(len(self.depths)))])

    def decode(self, depth: int) -> ArchIR:
        b = GraphBuilder((1, self.resolution, self.resolution))
        x = b.input
        for _ in range(depth):
            x = b.add(Conv2d(self.channels, kernel=3), x)
        return b.build(b.add(Dense(2), b.add(GlobalPool(), x)))


def toy(width: float, resolution: int) -> ToySpace:
    return ToySpace(width, resolution)


def test_chooses_highest_mean_macs_among_fitting() -> None:
    # peak SRAM of one conv = (1 + c) r^2 bytes: fits 1000 B for (c, r) in (2, 8), (4, 8), (8, 8), (2, 16)
    limits = Limits.from_options(sram=1000)
    res = optimize_space(limits, cost_model=ACTIVATIONS, factory=toy, width_multipliers=(0.25, 0.5, 1.0), resolutions=(8, 16),
                         samples=3)
    table = {(r.width_multiplier, r.resolution): r for r in res.rows}
    assert [k for k, r in table.items() if r.feasible] == [(0.25, 8), (0.25, 16), (0.5, 8), (1.0, 8)]
    assert table[(0.5, 16)].fraction_feasible == 0.0 and math.isnan(table[(0.5, 16)].mean_macs)
    # MACs = 9 c r^2 + 2 c: (8, 8) -> 4624 beats (2, 16) -> 4612
    assert table[(1.0, 8)].mean_macs == 4624 and table[(0.25, 16)].mean_macs == 4612
    assert (res.best.width_multiplier, res.best.resolution) == (1.0, 8)
    assert isinstance(res.space(), ToySpace) and res.space().channels == 8


def test_fraction_and_mean_over_fitting_samples_only() -> None:
    def mixed(w: float, r: int) -> ToySpace:
        return ToySpace(w, r, depths=(1, 2))

    # c = 8, r = 8: depth 1 peaks at 576 B, depth 2 at 1024 B -> only depth-1 samples fit 600 B
    res = optimize_space(Limits.from_options(sram=600), cost_model=ACTIVATIONS, factory=mixed, width_multipliers=(1.0,),
                         resolutions=(8,), samples=40, seed=3)
    row = res.rows[0]
    assert 0 < row.feasible < 40
    assert row.mean_macs == row.max_macs == 9 * 8 * 64 + 16


def test_infeasible_grid_names_the_tightest_limit() -> None:
    limits = Limits.from_options(sram=100, flash="1MB", macs=1e9)
    with pytest.raises(InfeasibleError, match=r"tightest limit is peak_sram_bytes <= 100 B: 0 of 4 samples"):
        optimize_space(limits, cost_model=ACTIVATIONS, factory=toy, width_multipliers=(0.5, 1.0), resolutions=(8,), samples=2)
    both = Limits.from_options(sram=300, macs=10)  # MACs fit nowhere, SRAM fits in one cell
    with pytest.raises(InfeasibleError, match="tightest limit is macs <= 10:"):
        optimize_space(both, cost_model=ACTIVATIONS, factory=toy, width_multipliers=(0.25, 1.0), resolutions=(8,), samples=2)


def test_min_fraction_and_bad_options() -> None:
    def mixed(w: float, r: int) -> ToySpace:
        return ToySpace(w, r, depths=(1, 2))

    with pytest.raises(InfeasibleError, match="at least 100%"):
        optimize_space(Limits.from_options(sram=600), cost_model=ACTIVATIONS, factory=mixed, width_multipliers=(1.0,),
                       resolutions=(8,), samples=20, min_fraction=1.0)
    with pytest.raises(ConfigError, match="limits"):
        optimize_space(Limits(), factory=toy)
    with pytest.raises(ConfigError, match="device"):
        optimize_space(Limits.from_options(latency_ms=5), factory=toy)
    with pytest.raises(ConfigError, match="samples"):
        optimize_space(Limits.from_options(sram=1000), cost_model=ACTIVATIONS, factory=toy, samples=0)


@pytest.mark.skipif("blocks" not in SPACES, reason="the blocks space is not available")
def test_blocks_space_is_deterministic_and_gives_the_subspace() -> None:
    limits = Limits.from_options(device="stm32f746", sram="96KB")
    kw = dict(width_multipliers=(0.3, 0.5), resolutions=(48, 96), samples=3, seed=5)
    a = optimize_space(limits, **kw)  # type: ignore[arg-type]
    b = optimize_space(limits, **kw)  # type: ignore[arg-type]
    assert a.rows == b.rows and a.best == b.best
    space = a.space()
    assert space.width_multipliers == (a.best.width_multiplier,)  # type: ignore[attr-defined]
    assert space.resolutions == (a.best.resolution,)  # type: ignore[attr-defined]
    g = space.sample(np.random.default_rng(0))
    assert space.decode(g).input_shape == (3, a.best.resolution, a.best.resolution)


@pytest.mark.skipif("blocks" not in SPACES, reason="the blocks space is not available")
def test_cli_tinynas(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["tinynas", "--device", "stm32f746", "--sram", "96KB", "--widths", "0.3,0.5",
            "--resolutions", "48,96", "--samples", "2"]
    assert main(argv + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["rows"]) == 4 and out["limits"]["peak_sram_bytes"] == 96 * 1024
    best = out["best"]
    fitting = [r for r in out["rows"] if r["feasible"]]
    assert best["mean_macs"] == max(r["mean_macs"] for r in fitting)
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "chosen sub-space" in text and "w0.3-r48" in text
    assert main(["tinynas", "--sram", "16B", "--widths", "0.3", "--resolutions", "48", "--samples", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "peak_sram_bytes" in err
