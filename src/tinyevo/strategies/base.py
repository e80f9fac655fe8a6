"""Strategy protocol (ask / tell); the records it exchanges live in :mod:`tinyevo.trial` and :mod:`tinyevo.problem`
(re-exported here for compatibility).

A strategy proposes :class:`Candidate` genomes (``ask``) and learns from finished :class:`Trial` records
(``tell``). It never evaluates anything itself. The driver decides, per candidate, whether hard constraints hold
(if not, the trial is recorded ``infeasible`` with its violation and never evaluated), evaluates it otherwise, and
tells the strategy. ``Problem`` says what is optimised and under which constraints.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from tinyevo.errors import ConfigError
from tinyevo.problem import Constraint, Objective, Problem
from tinyevo.registry import Registry
from tinyevo.trial import Candidate, Status, Trial

__all__ = [
    "DEFAULT_STRATEGY", "STRATEGIES", "Candidate", "Constraint", "Objective", "Problem", "Status", "Strategy", "Trial",
    "best_trial", "fitness", "rank_key", "replay",
]


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
