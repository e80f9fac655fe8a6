"""The estimator protocol (IR + data -> metrics), the evaluation context, and the estimator registry.

An estimator scores one architecture: ``evaluate(ir, data, *, seed, context=None) -> dict[str, float]`` with
at least ``val_acc`` (a fraction in [0, 1]) for training-based estimators; zero-cost proxies return their
score instead (e.g. ``synflow``). An estimator may say which metrics it returns (a ``metric_names`` attribute,
read by :func:`metric_names`), so that a run can reject an objective nothing produces before it starts. ``context`` carries what the run engine knows about the candidate: its
genome string (the key of stored weights), its parents (for weight inheritance) and the scores of finished
candidates (for learning-curve early stopping).

Registered names are named compositions (presets) created as ``ESTIMATORS.create(name, config=None)``;
:func:`create_estimator` also accepts ``"a+b"`` to run several and merge their metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from tinyevo.errors import ConfigError
from tinyevo.registry import Registry

if TYPE_CHECKING:
    from tinyevo.cost import MCUCostModel
    from tinyevo.data import Dataset
    from tinyevo.ir import ArchIR
    from tinyevo.training import TrainConfig


@dataclass(frozen=True)
class EvalContext:
    """What an estimator may know about a candidate besides its architecture (all optional).

    * ``genome``: the candidate's canonical genome string (key under which weight inheritance stores weights);
    * ``parents``: genome strings of its parents, first = the one to inherit from;
    * ``parent_state``: the parent's ``state_dict`` when the caller has it at hand (wins over a store lookup);
    * ``finished_scores``: ``val_acc`` of finished candidates of this run, for learning-curve early stopping
      (an estimator also keeps its own record of the candidates it finished);
    * ``cost_model``: the :class:`~tinyevo.cost.MCUCostModel` (precision, planner, SRAM convention) with which
      the run prices networks, for metrics an estimator prices itself (the ``pruned_*`` costs; None: the cost
      model's defaults);
    * ``store_dir``: the run's weight store directory: an estimator that inherits weights keeps them there
      instead of in its own memory (shared by all workers and by a resumed run).
    """

    genome: str | None = None
    parents: tuple[str, ...] = ()
    parent_state: Mapping[str, object] | None = None
    finished_scores: tuple[float, ...] = ()
    cost_model: MCUCostModel | None = None
    store_dir: str | None = None


@runtime_checkable
class Estimator(Protocol):
    """Scores an architecture on a data set."""

    name: str

    def evaluate(
        self, ir: ArchIR, data: Dataset, *, seed: int, context: EvalContext | None = None
    ) -> dict[str, float]:
        """Metrics of ``ir`` trained / scored on ``data``; deterministic given ``seed``."""
        ...


def metric_names(estimator: Estimator) -> frozenset[str] | None:
    """The metric names ``estimator`` returns, from its optional ``metric_names`` attribute (the registered
    estimators have one); ``None`` when it does not say."""
    names = getattr(estimator, "metric_names", None)
    return None if names is None else frozenset(names)


ESTIMATORS: Registry[Estimator] = Registry("estimator")
"""Factories are called as ``ESTIMATORS.create(name, config=None)`` (``config``: a TrainConfig or None)."""

DEFAULT_ESTIMATOR = "train"  # tinyevo.run.options.DEFAULT_ESTIMATOR (torch-free) is the same name


class Combined:
    """Runs several estimators on the same candidate and merges their metrics (later ones win on clashes)."""

    def __init__(self, parts: Sequence[Estimator]) -> None:
        if not parts:
            raise ConfigError("a combined estimator needs at least one part")
        self.parts = tuple(parts)
        self.name = "+".join(p.name for p in self.parts)

    @property
    def metric_names(self) -> frozenset[str] | None:
        """The union of the parts' metric names (``None`` when a part does not say)."""
        names = [metric_names(p) for p in self.parts]
        return None if any(n is None for n in names) else frozenset().union(*names)  # type: ignore[arg-type]

    def evaluate(
        self, ir: ArchIR, data: Dataset, *, seed: int, context: EvalContext | None = None
    ) -> dict[str, float]:
        out: dict[str, float] = {}
        for part in self.parts:
            out.update(part.evaluate(ir, data, seed=seed, context=context))
        return out


def create_estimator(spec: str, *, config: TrainConfig | None = None) -> Estimator:
    """The estimator named ``spec``; ``"naswot+train"`` combines registered estimators (metrics merged)."""
    names = [s.strip() for s in spec.split("+")]
    if any(not n for n in names):
        raise ConfigError(f"bad estimator name {spec!r}")
    parts = [ESTIMATORS.create(n, config=config) for n in names]
    return parts[0] if len(parts) == 1 else Combined(parts)
