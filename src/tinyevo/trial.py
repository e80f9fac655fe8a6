"""The records that flow between strategy, driver and storage: :class:`Candidate`, :class:`Trial`, :class:`Status`.

Framework-free and low in the layer order (see ``tests/test_layers.py``), so storages, devices, deploy and the
tabular benchmarks read trials without importing the strategies (as optuna's ``FrozenTrial`` is shared by its
samplers and storages).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - annotation only
    from tinyevo.spaces.base import Genome

__all__ = ["Candidate", "Status", "Trial"]


class Status(StrEnum):
    OK = "ok"
    INFEASIBLE = "infeasible"  # violates a hard constraint; never evaluated
    FAILED = "failed"  # evaluation raised, returned NaN or ran out of memory


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
