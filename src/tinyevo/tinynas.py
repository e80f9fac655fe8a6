"""TinyNAS stage 1 (MCUNet): choose the sub-space (width multiplier x input resolution) that suits the limits.

For every cell of a grid of width multipliers and resolutions, sample ``m`` architectures of that sub-space,
keep those within the limits, and pick the sub-space whose satisfying architectures have the highest mean MACs
(MCUNet's FLOPs-CDF heuristic: more computation that still fits tends to mean more accuracy). The evolution
then runs inside the chosen sub-space::

    limits = Limits.from_options(device="stm32f746", sram="128KB")
    result = optimize_space(limits, samples=100, seed=0)
    space = result.space()        # create_space("blocks", width_multipliers=(w,), resolutions=(r,), ...)

A grid in which nothing fits raises :class:`~tinyevo.errors.InfeasibleError` naming the tightest limit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from tinyevo.cost import MCUCostModel
from tinyevo.devices import Limits, describe_bound, format_size
from tinyevo.errors import ConfigError, InfeasibleError
from tinyevo.spaces.base import SearchSpace, create_space

#: MCUNet's grid (Lin et al., 2020): width multipliers 0.3 ... 1.0 and resolutions 48 ... 176.
DEFAULT_WIDTHS: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
DEFAULT_RESOLUTIONS: tuple[int, ...] = (48, 64, 80, 96, 112, 128, 144, 160, 176)

SubspaceFactory = Callable[[float, int], SearchSpace]
"""``factory(width_multiplier, resolution)`` -> the search space restricted to that cell of the grid."""


@dataclass(frozen=True)
class BlocksSubspaces:
    """The default factory: the ``blocks`` space with one width multiplier and one resolution."""

    input_channels: int = 3
    num_classes: int = 10

    def __call__(self, width: float, resolution: int) -> SearchSpace:
        return create_space(
            "blocks", width_multipliers=(width,), resolutions=(resolution,),
            input_shape=(self.input_channels, resolution, resolution), num_classes=self.num_classes,
        )


@dataclass(frozen=True)
class SubspaceStats:
    """One row of the TinyNAS table."""

    width_multiplier: float
    resolution: int
    sampled: int
    feasible: int
    mean_macs: float  # mean MACs of the feasible samples (NaN when none fits)
    max_macs: float  # largest MACs among the feasible samples (NaN when none fits)

    @property
    def fraction_feasible(self) -> float:
        return self.feasible / self.sampled if self.sampled else 0.0

    @property
    def label(self) -> str:
        return f"w{self.width_multiplier:g}-r{self.resolution}"


@dataclass(frozen=True)
class TinyNASResult:
    """The scanned grid (``rows``, in grid order) and the chosen sub-space (``best``)."""

    rows: tuple[SubspaceStats, ...]
    best: SubspaceStats
    limits: Limits
    samples: int
    seed: int
    factory: SubspaceFactory = field(repr=False, compare=False)

    def space(self) -> SearchSpace:
        """The chosen sub-space, ready for the evolution."""
        return self.factory(self.best.width_multiplier, self.best.resolution)


def optimize_space(
    limits: Limits,
    *,
    factory: SubspaceFactory | None = None,
    width_multipliers: Sequence[float] = DEFAULT_WIDTHS,
    resolutions: Sequence[int] = DEFAULT_RESOLUTIONS,
    samples: int = 100,
    seed: int = 0,
    cost_model: MCUCostModel | None = None,
    min_fraction: float = 0.0,
    on_row: Callable[[SubspaceStats], None] | None = None,
) -> TinyNASResult:
    """Scan the grid and choose the sub-space (see the module docstring).

    ``cost_model`` defaults to :class:`~tinyevo.cost.MCUCostModel` on ``limits.device``. Sub-spaces in which
    less than ``min_fraction`` of the samples fit are not chosen. Each cell gets its own random stream spawned
    from ``seed``, so adding a cell to the grid does not change the samples of the others. ``on_row`` is
    called with each finished row (for progress display).
    """
    if samples < 1:
        raise ConfigError(f"samples per sub-space must be >= 1, got {samples}")
    if not width_multipliers or not resolutions:
        raise ConfigError("the TinyNAS grid needs at least one width multiplier and one resolution")
    if limits.is_empty():
        raise ConfigError("TinyNAS needs limits to optimise for: give a device or explicit limits")
    if limits.needs_device:
        raise ConfigError("latency and energy limits need a device to estimate them on")
    if not 0.0 <= min_fraction <= 1.0:
        raise ConfigError(f"min_fraction must be in [0, 1], got {min_fraction}")
    factory = factory or BlocksSubspaces()
    model = cost_model or MCUCostModel(device=limits.device)
    constraints = limits.constraints()
    cells = [(float(w), int(r)) for w in width_multipliers for r in resolutions]
    streams = np.random.default_rng(seed).spawn(len(cells))
    rows: list[SubspaceStats] = []
    fits = {c.metric: 0 for c in constraints}  # per limit: samples satisfying it
    smallest = {c.metric: math.inf for c in constraints}  # per limit: smallest value seen
    for (w, r), rng in zip(cells, streams, strict=True):
        space = factory(w, r)
        feasible_macs: list[float] = []
        for _ in range(samples):
            metrics = model.estimate(space.decode(space.sample(rng))).as_metrics()
            ok = True
            for c in constraints:
                v = metrics[c.metric]
                smallest[c.metric] = min(smallest[c.metric], v)
                if c.violation(metrics) == 0.0:
                    fits[c.metric] += 1
                else:
                    ok = False
            if ok:
                feasible_macs.append(metrics["macs"])
        row = SubspaceStats(
            width_multiplier=w, resolution=r, sampled=samples, feasible=len(feasible_macs),
            mean_macs=float(np.mean(feasible_macs)) if feasible_macs else math.nan,
            max_macs=float(np.max(feasible_macs)) if feasible_macs else math.nan,
        )
        rows.append(row)
        if on_row is not None:
            on_row(row)
    candidates = [row for row in rows if row.feasible and row.fraction_feasible >= min_fraction]
    if not candidates:
        raise InfeasibleError(_infeasible_message(limits, rows, fits, smallest, samples, min_fraction))
    best = max(candidates, key=lambda row: (row.mean_macs, row.fraction_feasible))
    return TinyNASResult(rows=tuple(rows), best=best, limits=limits, samples=samples, seed=seed,
                         factory=factory)


def _infeasible_message(limits: Limits, rows: Sequence[SubspaceStats], fits: dict[str, int],
                        smallest: dict[str, float], samples: int, min_fraction: float) -> str:
    total = len(rows) * samples
    bounds = limits.bounds()
    # the tightest limit: the fewest samples satisfy it; ties broken by how far the best sample is above it
    metric = min(bounds, key=lambda m: (fits[m], -smallest[m] / bounds[m]))
    low = smallest[metric]
    shown = format_size(low) if metric.endswith("_bytes") else f"{low:,.4g}"
    head = (f"no sub-space of the grid ({len(rows)} sub-spaces x {samples} samples) has architectures "
            "within the limits")
    if any(row.feasible for row in rows):
        head = f"no sub-space has at least {min_fraction:.0%} of its samples within the limits"
    return (f"{head}; the tightest limit is {describe_bound(metric, bounds[metric])}: {fits[metric]} of "
            f"{total} samples satisfy it (smallest seen: {shown}). Relax it, or scan smaller widths / "
            "resolutions.")
