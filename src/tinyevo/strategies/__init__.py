"""Search strategies (ask / tell)."""

from __future__ import annotations

import importlib

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
from tinyevo.strategies.evolution import EvolutionaryStrategy
from tinyevo.strategies.init import RandomInit, RichInit, TrivialInit
from tinyevo.strategies.operators import Deduplicator, Mutation, Variation
from tinyevo.strategies.random_search import RandomSearch
from tinyevo.strategies.selection import (
    DiscardOldest,
    DiscardWorst,
    DiscardWorstOldest,
    Elitism,
    Individual,
    RandomSelection,
    RouletteSelection,
    TournamentSelection,
    TruncationSelection,
)

# Strategies register themselves in STRATEGIES on import; a module that is not there yet is simply absent.
for _name in ("presets", "surrogate", "reinforce"):
    try:
        importlib.import_module(f"tinyevo.strategies.{_name}")
    except ModuleNotFoundError as _exc:  # pragma: no cover - only while a strategy is being written
        if _exc.name != f"tinyevo.strategies.{_name}":
            raise

__all__ = [
    "DEFAULT_STRATEGY", "STRATEGIES", "Candidate", "Constraint", "Objective", "Problem", "Status", "Strategy", "Trial", "best_trial",
    "fitness", "rank_key", "replay",
    "EvolutionaryStrategy", "RandomInit", "RichInit", "TrivialInit", "Deduplicator", "Mutation", "Variation",
    "RandomSearch", "DiscardOldest", "DiscardWorst", "DiscardWorstOldest", "Elitism", "Individual",
    "RandomSelection", "RouletteSelection", "TournamentSelection", "TruncationSelection",
]
