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

__all__ = ["MNASNET_EXPONENT", "Constraint", "Objective", "Problem", "SoftTarget"]

MNASNET_EXPONENT = -0.07
"""MnasNet's soft-latency exponent (Tan et al., 2019): ``alpha = beta = -0.07``."""


@dataclass(frozen=True)
class SoftTarget:
    """MnasNet's soft target on a cost metric: the objective is multiplied by ``(value / target) ** w``, with
    ``w = alpha`` when ``value <= target`` and ``w = beta`` otherwise.

    With ``alpha = beta = -0.07`` (the default) a model twice as slow as the target scores about 5 % less
    (``2 ** -0.07 = 0.953``), one twice as fast about 5 % more: a smooth trade-off instead of a cliff. ``alpha = 0,
    beta = -1`` is MnasNet's "hard" variant (no reward below the target, a steep penalty above).

    Written ``METRIC=TARGET`` or ``METRIC=TARGET:ALPHA`` or ``METRIC=TARGET:ALPHA:BETA`` (:meth:`parse`, :meth:`spec`),
    e.g. ``latency_ms=20`` or ``peak_sram=65536:0:-1``.
    """

    metric: str
    target: float
    alpha: float = MNASNET_EXPONENT
    beta: float = MNASNET_EXPONENT

    def __post_init__(self) -> None:
        if not self.metric or any(ch in self.metric for ch in "=:@ "):
            raise ConfigError(f"bad soft-target metric {self.metric!r}")
        for name in ("target", "alpha", "beta"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"soft target on {self.metric}: {name} must be a finite number, got {v!r}")
            object.__setattr__(self, name, float(v))
        if self.target <= 0:
            raise ConfigError(f"soft target on {self.metric}: the target must be > 0, got {self.target:g}")

    def factor(self, value: float) -> float:
        """``(value / target) ** w`` (``w = alpha`` if ``value <= target`` else ``beta``); NaN for NaN.

        A value ``<= 0`` (e.g. a latency of 0) is read as ``1e-6 * target``, so the factor stays finite.
        """
        if math.isnan(value):
            return math.nan
        ratio = max(float(value), 1e-6 * self.target) / self.target
        return ratio ** (self.alpha if value <= self.target else self.beta)

    def spec(self) -> str:
        """The ``METRIC=TARGET[:ALPHA:BETA]`` text (exponents only when not the defaults)."""
        out = f"{self.metric}={self.target!r}"
        if (self.alpha, self.beta) != (MNASNET_EXPONENT, MNASNET_EXPONENT):
            out += f":{self.alpha!r}:{self.beta!r}"
        return out

    @classmethod
    def parse(cls, text: str) -> SoftTarget:
        """``METRIC=TARGET[:ALPHA[:BETA]]`` (``BETA`` defaults to ``ALPHA``) -> :class:`SoftTarget`."""
        metric, eq, rest = str(text).strip().partition("=")
        parts = rest.split(":")
        if not eq or not metric.strip() or not 1 <= len(parts) <= 3:
            raise ConfigError(f"bad soft target {text!r}; write METRIC=TARGET or METRIC=TARGET:ALPHA:BETA, "
                              "e.g. latency_ms=20 or latency_ms=20:-0.07:-0.07")
        try:
            nums = [float(p) for p in parts]
        except ValueError:
            raise ConfigError(f"bad soft target {text!r}: TARGET, ALPHA and BETA must be numbers") from None
        alpha = nums[1] if len(nums) > 1 else MNASNET_EXPONENT
        beta = nums[2] if len(nums) > 2 else alpha
        return cls(metric.strip(), nums[0], alpha, beta)


@dataclass(frozen=True)
class Objective:
    """A metric to optimise, optionally scaled by MnasNet soft targets on other metrics.

    With ``soft_targets`` the score is ``metric * prod(t.factor(metrics[t.metric]))`` (MnasNet's
    ``ACC(m) * [LAT(m) / T] ** w``); this needs ``direction="max"`` and a non-negative metric (accuracy).
    Every strategy ranks by :meth:`score`, so every strategy optimises the soft objective.

    Written ``METRIC[:max|min][@METRIC=TARGET[:ALPHA:BETA]]...`` (:meth:`parse`, :meth:`spec`), e.g.
    ``val_acc:max@latency_ms=20``.
    """

    metric: str
    direction: Literal["max", "min"] = "max"
    soft_targets: tuple[SoftTarget, ...] = ()

    def __post_init__(self) -> None:
        if self.direction not in ("max", "min"):
            raise ConfigError(f"objective direction must be 'max' or 'min', got {self.direction!r}")
        object.__setattr__(self, "soft_targets", tuple(self.soft_targets))
        if self.soft_targets and self.direction != "max":
            raise ConfigError(f"soft targets (MnasNet reward) scale an objective to maximise (e.g. val_acc:max); "
                              f"{self.metric} is minimised")
        names = [t.metric for t in self.soft_targets]
        if len(set(names)) != len(names):
            raise ConfigError(f"one soft target per metric, got {', '.join(names)}")

    def score(self, metrics: Mapping[str, float]) -> float:
        """The metric as a value to maximise (negated for ``min``), times every soft target's factor; ``-inf``
        when a needed metric is missing or NaN."""
        v = metrics.get(self.metric)
        if v is None or math.isnan(v):
            return -math.inf
        out = float(v) if self.direction == "max" else -float(v)
        for t in self.soft_targets:
            c = metrics.get(t.metric)
            if c is None or math.isnan(c):
                return -math.inf
            out *= t.factor(float(c))
        return out

    def spec(self) -> str:
        """The text :meth:`parse` reads back: ``val_acc:max`` or ``val_acc:max@latency_ms=20.0``."""
        return "@".join([f"{self.metric}:{self.direction}", *(t.spec() for t in self.soft_targets)])

    @classmethod
    def parse(cls, text: str) -> Objective:
        """``"val_acc"`` / ``"val_acc:max"`` / ``"latency_ms:min"`` / ``"val_acc:max@latency_ms=20"``."""
        head, *targets = str(text).split("@")
        metric, _, direction = head.partition(":")
        metric = metric.strip()
        if not metric:
            raise ConfigError(f"bad objective {text!r}; write METRIC or METRIC:max / METRIC:min, optionally "
                              "followed by @METRIC=TARGET soft targets")
        return cls(metric, (direction.strip() or "max"),  # type: ignore[arg-type]
                   tuple(SoftTarget.parse(t) for t in targets))


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
