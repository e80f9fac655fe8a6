"""The storage protocol and the records it keeps.

A run is stored as one :class:`RunMeta` (seed and configuration, written once) plus one :class:`TrialRecord`
per finished trial, committed the moment the driver has it, the :class:`RetrainedModel` records of the final
retraining, and the :class:`DerivedModel` records of models made from trained ones after the search (``tinyevo
deepen``), which are not search trials. Only the driver writes; readers (``tinyevo show`` / ``report``) may open
the store while a run is going.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from tinyevo.trial import Candidate, Status, Trial


@dataclass(frozen=True)
class RunMeta:
    """What a run was started with. ``config`` is the JSON form of :class:`tinyevo.run.config.RunConfig`."""

    seed: int
    config: Mapping[str, Any]
    created_at: float
    version: str


@dataclass(frozen=True)
class TrialRecord:
    """A finished trial plus what the driver knows about how it was produced.

    ``trial.metrics`` holds every metric (cost and fitness); ``cost`` is the cost-model subset computed before
    any training. ``parent_ids`` are the trial numbers of ``trial.parents`` within this run, where known.
    ``batch`` is the index of the ask batch the trial belongs to (the engine asks, evaluates and tells in
    batches).
    """

    trial: Trial
    cost: Mapping[str, float] = field(default_factory=dict)
    parent_ids: tuple[int, ...] = ()
    batch: int = 0
    eval_seed: int | None = None
    started_at: float = 0.0
    finished_at: float = 0.0
    duration_s: float = 0.0
    worker: str = ""

    @property
    def number(self) -> int:
        return self.trial.number

    @property
    def candidate(self) -> Candidate:
        """The candidate as the strategy proposed it (genome as its canonical string)."""
        t = self.trial
        return Candidate(genome=t.genome, parents=t.parents, generation=t.generation, origin=t.origin)


@dataclass(frozen=True)
class RetrainedModel:
    """A model retrained after the search (weights and metrics files live in the run directory)."""

    trial: int
    genome: str
    metrics: Mapping[str, float]
    weights: str  # path relative to the run directory
    created_at: float = 0.0


FinalModel = RetrainedModel
"""The former name of :class:`RetrainedModel` (kept for code written against it)."""


@dataclass(frozen=True)
class DerivedModel:
    """A model made from a trained model of the run after the search (``origin`` ``"deepen"``: a deeper copy).

    It is not a search trial: a resumed search never replays it. ``number`` addresses it like a trial number
    (``--trial N`` of ``retrain``, ``export``, ``deepen``; its final model is ``final/trial-NNNN``) and lies at or
    above the run's trial limit (``max_trials``), which no search trial reaches, so the two never collide.
    ``parent`` is the number of the trial (or derived model) it was made from; ``cost`` the cost-model metrics of
    ``genome``; ``weights`` the model it started as (relative to the run directory; retraining it replaces its
    :class:`RetrainedModel`); ``info`` what the derivation recorded (e.g. the inserted layer).
    """

    number: int
    genome: str
    parent: int
    origin: str
    cost: Mapping[str, float]
    weights: str
    info: Mapping[str, Any] = field(default_factory=dict)
    created_at: float = 0.0

    def as_trial(self) -> Trial:
        """The model as an (ok) trial, for code that retrains or exports trials by number."""
        return Trial(number=self.number, genome=self.genome, status=Status.OK, metrics=dict(self.cost),
                     origin=self.origin)


@runtime_checkable
class Storage(Protocol):
    """Where a run's meta data, trials and final models are kept: :class:`~tinyevo.storage.SQLiteStorage` (a run
    directory) or :class:`~tinyevo.storage.InMemoryStorage`. The run driver uses nothing else."""

    def create(self, meta: RunMeta) -> None:
        """Record the run's seed and configuration; fails if the store already holds a run."""
        ...

    def meta(self) -> RunMeta:
        """The run's seed and configuration."""
        ...

    def add(self, record: TrialRecord) -> None:
        """Commit one finished trial (durably, before returning)."""
        ...

    def records(self) -> list[TrialRecord]:
        """Every stored trial, ordered by trial number."""
        ...

    def numbers_of(self, genomes: tuple[str, ...]) -> tuple[int, ...]:
        """Trial numbers of the given genome strings (first occurrence), skipping genomes not stored."""
        ...

    def add_final(self, model: RetrainedModel) -> None:
        """Commit (or replace) the final model of one trial."""
        ...

    def add_final_checked(self, model: RetrainedModel, sha256: str) -> None:
        """:meth:`add_final` and the SHA-256 of its weights file (state ``final_sha256:N``), atomically."""
        ...

    def remove_final(self, trial: int) -> None:
        """Forget the final model of ``trial`` and its fingerprint (its files stay)."""
        ...

    def finals(self) -> list[RetrainedModel]:
        """The final models, ordered by trial number."""
        ...

    def add_derived(self, model: DerivedModel) -> None:
        """Commit a derived model (its number must be new)."""
        ...

    def derived(self) -> list[DerivedModel]:
        """The derived models, ordered by number."""
        ...

    def set_state(self, key: str, value: str) -> None:
        """Set a small mutable run-state value (e.g. ``phase``)."""
        ...

    def get_state(self, key: str) -> str | None: ...

    def close(self) -> None: ...
