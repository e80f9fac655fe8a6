"""Strategy protocol (ask / tell) and the typed records that flow between strategy, driver and storage.

A strategy proposes :class:`Candidate` genomes (``ask``) and learns from finished :class:`Trial` records
(``tell``). It never evaluates anything itself. The driver decides, per candidate, whether hard constraints hold
(if not, the trial is recorded ``infeasible`` with its violation and never evaluated), evaluates it otherwise, and
tells the strategy. ``Problem`` says what is optimised and under which constraints.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol, runtime_checkable

from tinyevo.errors import ConfigError
from tinyevo.registry import Registry
from tinyevo.spaces.base import Genome


class Status(StrEnum):
    OK = "ok"
    INFEASIBLE = "infeasible"  # violates a hard constraint; never evaluated
    FAILED = "failed"  # evaluation raised, returned NaN or ran out of memory


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


@dataclass(frozen=True)
class Candidate:
    """A genome proposed by a strategy, with its provenance."""

    genome: Genome
    parents: tuple[str, ...] = ()
    generation: int = 0
    origin: str = "random"  # random | trivial | seed | mutation | crossover | surrogate


@dataclass(frozen=True)
class Trial:
    """A finished (evaluated, infeasible or failed) candidate. ``metrics`` holds cost and fitness metrics."""

    number: int
    genome: str
    status: Status
    metrics: Mapping[str, float] = field(default_factory=dict)
    violation: float = 0.0  # total hard + soft violation
    parents: tuple[str, ...] = ()
    generation: int = 0
    origin: str = "random"
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is Status.OK


def fitness(problem: Problem, trial: Trial) -> float:
    """Scalar fitness to maximise (single-objective view): first objective minus soft penalty.

    Failed and infeasible trials get ``-inf`` so that every selection ranks them last.
    """
    if trial.status is not Status.OK:
        return -math.inf
    score = problem.objectives[0].score(trial.metrics)
    return score - problem.soft_penalty * problem.soft_violation(trial.metrics)


def rank_key(problem: Problem, trial: Trial) -> tuple[int, float, float]:
    """Sort key (larger is better) implementing constraint-domination for one objective.

    Feasible evaluated trials first (by fitness), then infeasible ones by smaller violation, failed ones last.
    """
    if trial.status is Status.OK:
        return (2, 0.0, fitness(problem, trial))
    if trial.status is Status.INFEASIBLE:
        return (1, -trial.violation, -math.inf)
    return (0, -math.inf, -math.inf)


@runtime_checkable
class Strategy(Protocol):
    """Ask / tell search strategy. Deterministic given its ``numpy.random.Generator``."""

    def ask(self) -> Candidate:
        """Propose the next genome to try (never one already asked)."""
        ...

    def tell(self, candidate: Candidate, trial: Trial) -> None:
        """Report the outcome of ``candidate``."""
        ...


def replay(strategy: Strategy, history: Iterable[tuple[Candidate, Trial]]) -> None:
    """Rebuild a strategy's state from stored history by re-asking and re-telling in order.

    Because strategies are deterministic given their seed, re-asking reproduces the same candidates; the stored
    trial outcomes are told instead of re-evaluating.
    """
    for cand, trial in history:
        asked = strategy.ask()
        if str(asked.genome) != str(cand.genome):
            raise ConfigError(
                f"stored trial {trial.number} ({cand.genome}) does not match the strategy's proposal "
                f"({asked.genome}); was the run started with another seed or configuration?"
            )
        strategy.tell(asked, trial)


def best_trial(problem: Problem, trials: Sequence[Trial]) -> Trial | None:
    """The best trial by :func:`rank_key`, or ``None`` if there are none."""
    return max(trials, key=lambda t: rank_key(problem, t), default=None)


STRATEGIES: Registry[Strategy] = Registry("strategy")
"""Factories are called as ``STRATEGIES.create(name, space, problem, seed=seed)`` and return a Strategy."""

DEFAULT_STRATEGY = "surrogate-evolution"
"""The strategy ``tinyevo search`` and ``tinyevo bench`` use when none is named."""
