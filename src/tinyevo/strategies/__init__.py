"""Search strategies (ask / tell)."""

from __future__ import annotations

from tinyevo.strategies.base import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    Candidate,
    Constraint,
    Objective,
    Problem,
    Status,
    Strategy,
    Trial,
    best_trial,
    fitness,
    rank_key,
    replay,
)

__all__ = [
    "DEFAULT_STRATEGY", "STRATEGIES", "Candidate", "Constraint", "Objective", "Problem", "Status", "Strategy", "Trial", "best_trial",
    "fitness", "rank_key", "replay",
]
