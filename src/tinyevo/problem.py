"""What a search optimises: :class:`Objective`, :class:`Constraint` and :class:`Problem` (framework-free records).

Shared by strategies, storage, devices (limits become constraints), the run driver and the tabular benchmarks,
so it sits at the bottom of the layer order (see ``tests/test_layers.py``) and imports nothing but
:mod:`tinyevo.errors`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from tinyevo.errors import ConfigError

__all__ = ["Constraint", "Objective", "Problem"]


@dataclass(frozen=True)
class Objective:
    """A metric to optimise."""

    metric: str
    direction: Literal["max", "min"] = "max"

    def __post_init__(self) -> None:
        if self.direction not in ("max", "min"):
            raise ConfigError(f"objective direction must be 'max' or 'min', got {self.direction!r}")

    def score(self, metrics: Mapping[str, float]) -> float:
        """The metric as a value to maximise (negated for ``min``); ``-inf`` when missing or NaN."""
        v = metrics.get(self.metric)
        if v is None or math.isnan(v):
            return -math.inf
        return float(v) if self.direction == "max" else -float(v)


@dataclass(frozen=True)
class Constraint:
    """``metric <= upper`` (and/or ``metric >= lower``); hard constraints stop evaluation, soft ones penalise."""

    metric: str
    upper: float | None = None
    lower: float | None = None
    hard: bool = True

    def __post_init__(self) -> None:
        if self.upper is None and self.lower is None:
            raise ConfigError(f"constraint on {self.metric!r} needs an upper or a lower bound")

    def violation(self, metrics: Mapping[str, float]) -> float:
        """Relative amount by which the bound is exceeded (0 when satisfied), e.g. 0.25 = 25 % over."""
        v = metrics.get(self.metric)
        if v is None or math.isnan(v):
            return math.inf
        out = 0.0
        if self.upper is not None and v > self.upper:
            out += (v - self.upper) / max(abs(self.upper), 1e-12)
        if self.lower is not None and v < self.lower:
            out += (self.lower - v) / max(abs(self.lower), 1e-12)
        return out


@dataclass(frozen=True)
class Problem:
    """Objectives and constraints of a search.

    ``soft_penalty`` converts soft-constraint violation into objective units for single-objective strategies:
    ``fitness = score - soft_penalty * violation``. Multi-objective strategies use constraint-domination instead.
    """

    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...] = ()
    soft_penalty: float = 100.0

    def __post_init__(self) -> None:
        if not self.objectives:
            raise ConfigError("a problem needs at least one objective")

    @property
    def hard_constraints(self) -> tuple[Constraint, ...]:
        return tuple(c for c in self.constraints if c.hard)

    @property
    def soft_constraints(self) -> tuple[Constraint, ...]:
        return tuple(c for c in self.constraints if not c.hard)

    def hard_violation(self, metrics: Mapping[str, float]) -> float:
        return sum(c.violation(metrics) for c in self.hard_constraints)

    def soft_violation(self, metrics: Mapping[str, float]) -> float:
        return sum(c.violation(metrics) for c in self.soft_constraints)
