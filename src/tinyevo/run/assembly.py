"""Turning a :class:`RunConfig` into the working parts of a run: data, space, problem, cost and evaluation.

The evaluation function travels to workers (process pool, Dask), so it is a small picklable object holding
only configuration; each worker process loads the data set, the space and the estimator once and caches them.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinyevo.run.config import (
    DataConfig,
    EstimatorConfig,
    FidelityConfig,
    LimitsConfig,
    RunConfig,
    SpaceConfig,
)
from tinyevo.run.options import TrainOptions
from tinyevo.run.teacher import Teacher
from tinyevo.spaces.base import Genome, SearchSpace
from tinyevo.strategies.base import Objective, Problem

log = logging.getLogger(__name__)

Metrics = Mapping[str, float]


@dataclass(frozen=True)
class EvalTask:
    """One evaluation job, as sent to a worker."""

    number: int
    genome: str
    seed: int
    parents: tuple[str, ...] = ()
    finished_scores: tuple[float, ...] = ()
    store_dir: str | None = None  # the run's weight store (weight inheritance), shared by every worker


CURVE_METRIC = "val_acc"
"""The metric of the learning curves that early-stopping estimators extrapolate (``lc``; the
``finished_scores`` of :class:`EvalTask` and :class:`~tinyevo.estimators.EvalContext`): the training's validation
accuracy, whatever the run optimises (an objective such as ``latency_ms`` has no learning curve)."""

Evaluate = Callable[[EvalTask], Metrics]
"""A picklable callable scoring one task (``val_acc`` and friends); it may raise (the trial is then
failed)."""

CostFn = Callable[[Genome], Metrics]
"""Cost metrics of a genome (cheap; runs in the driver before anything is trained)."""


def derive_seed(run_seed: int, number: int, stream: int = 0) -> int:
    """A 32-bit seed for trial ``number`` of a run, independent of evaluation order and executor."""
    return int(np.random.SeedSequence([run_seed, number, stream]).generate_state(1, dtype=np.uint32)[0])


# --- per-process caches ---


@functools.lru_cache(maxsize=4)
def cached_dataset(spec: str, seed: int, val_fraction: float, val_min_per_class: int = 0) -> Any:
    from tinyevo.data import load_dataset

    return load_dataset(spec, seed=seed, val_fraction=val_fraction, val_min_per_class=val_min_per_class)


def _options_key(options: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    def hashable(v: Any) -> Any:
        if isinstance(v, Mapping):
            return tuple(sorted((k, hashable(x)) for k, x in v.items()))
        if isinstance(v, (list, tuple)):
            return tuple(hashable(x) for x in v)
        return v

    return tuple(sorted((k, hashable(v)) for k, v in options.items()))


@functools.lru_cache(maxsize=8)
def _cached_space(
    name: str, options: tuple[tuple[str, Any], ...], input_shape: tuple[int, ...], num_classes: int
) -> SearchSpace:
    from tinyevo.spaces import create_space

    return create_space(name, input_shape=input_shape, num_classes=num_classes, **dict(options))


def make_space(cfg: SpaceConfig, *, input_shape: tuple[int, ...], num_classes: int) -> SearchSpace:
    """The configured space for data of ``input_shape`` with ``num_classes`` classes (cached per process)."""
    from tinyevo.errors import ConfigError

    try:
        return _cached_space(cfg.name, _options_key(cfg.options), tuple(input_shape), int(num_classes))
    except TypeError as exc:
        raise ConfigError(f"bad option for space {cfg.name!r}: {exc}") from None


def train_config(options: TrainOptions | Mapping[str, Any], *, threads: int | None = None,
                 where: str = "[train]") -> Any:
    """The :class:`~tinyevo.training.TrainConfig` of the typed :class:`~tinyevo.run.options.TrainOptions`
    ``options`` (e.g. :attr:`EstimatorConfig.options`; a mapping is checked as the table ``where`` first);
    ``threads`` fills in an unset thread count."""
    from tinyevo.run.options import train_options
    from tinyevo.training import TrainConfig

    opts = options if isinstance(options, TrainOptions) else train_options(where, options)
    if threads is not None and opts.threads is None:
        opts = opts.model_copy(update={"threads": threads})
    return TrainConfig(**opts.model_dump())


def search_estimator(name: str, train: TrainOptions | Mapping[str, Any], *, threads: int | None = None,
                     fidelity: FidelityConfig = FidelityConfig()) -> Any:
    """The estimator ``name`` with the training options ``train`` at the low fidelity ``fidelity`` (the
    ``[fidelity]`` table): ``epochs_fraction`` scales the epochs (at least 1), the other knobs replace the fields
    of each training part's :class:`~tinyevo.estimators.Fidelity`."""
    from dataclasses import replace

    from tinyevo.errors import ConfigError
    from tinyevo.estimators import create_estimator
    from tinyevo.run.options import train_options

    opts = train if isinstance(train, TrainOptions) else train_options("[train]", train)
    if fidelity.epochs_fraction is not None:
        opts = opts.model_copy(update={"epochs": max(1, round(opts.epochs * fidelity.epochs_fraction))})
    est = create_estimator(name, config=train_config(opts, threads=threads))
    knobs = {field: value for field, value in (("data_fraction", fidelity.data_fraction),
                                                ("width_multiplier", fidelity.width),
                                                ("resolution_scale", fidelity.resolution)) if value is not None}
    if knobs:
        if not _trainers(est):
            raise ConfigError(f"estimator {name!r} trains no candidate, so [fidelity] {', '.join(fidelity.given())} "
                              "cannot apply; use a training estimator (e.g. train, lowfi, lc)")
        est = _with_trainers(est, lambda p: p.configured(fidelity=replace(p.fidelity, **knobs)))
    return est


def _trainers(est: Any) -> list[Any]:
    """The parts of ``est`` that train candidates (:class:`~tinyevo.estimators.TrainingEstimator` and the like:
    they have ``configured``)."""
    return [p for p in getattr(est, "parts", (est,)) if callable(getattr(p, "configured", None))]


def _with_trainers(est: Any, make: Callable[[Any], Any]) -> Any:
    """``est`` built again with each training part ``p`` replaced by ``make(p)`` (the others kept)."""
    from tinyevo.estimators.base import Combined

    if not hasattr(est, "parts"):
        return make(est) if callable(getattr(est, "configured", None)) else est
    return Combined([make(p) if callable(getattr(p, "configured", None)) else p for p in est.parts])


@functools.lru_cache(maxsize=4)
def _cached_estimator(name: str, train: TrainOptions, threads: int | None,
                      teacher: Teacher | None = None, fidelity: FidelityConfig = FidelityConfig(),
                      supernet: str | None = None, scoring: tuple[tuple[str, int | float], ...] = ()) -> Any:
    from tinyevo.errors import ConfigError

    if supernet is not None:  # search --supernet DIR: inherited weights, loaded once per process
        from tinyevo.estimators.supernet import SupernetEstimator
        from tinyevo.supernet.score import ScoreConfig

        options: dict[str, object] = dict(scoring)
        if options.get("validation_rows") == 0:  # [supernet_scoring] validation_rows = 0: the whole split
            options["validation_rows"] = None
        return SupernetEstimator(supernet, config=ScoreConfig(**options))  # type: ignore[arg-type]
    est = search_estimator(name, train, threads=threads, fidelity=fidelity)
    if teacher is not None:
        if not _trainers(est):
            raise ConfigError(f"estimator {name!r} trains no candidate, so it cannot distil from a teacher; "
                              "use a training estimator (e.g. train, lc, lowfi) or drop the teacher")
        model = teacher.load()  # once per process: every candidate this worker trains learns from it
        est = _with_trainers(est, lambda p: p.configured(teacher=model))
    return est


def check_teacher(cfg: EstimatorConfig) -> None:
    """Load ``cfg``'s teacher into its estimator now: a missing teacher, or an estimator that trains nothing, is a
    :class:`ConfigError` before the search starts instead of a failed trial each."""
    _cached_estimator(cfg.name, cfg.options, None, cfg.teacher, cfg.fidelity)


@dataclass(frozen=True)
class TrainingEvaluator:
    """Evaluates genome strings with the configured estimator on the configured data (picklable).

    ``threads`` fills in the torch threads per evaluation when the training options leave them unset (the run
    engine stores them in the run's config, see :func:`tinyevo.run.engine.resolve_run_identity`).
    """

    data: DataConfig
    space: SpaceConfig
    estimator: EstimatorConfig
    seed: int
    threads: int | None = None
    cost_model: Any = None  # the run's MCUCostModel, without a device (prices the pruned_* costs); None: defaults

    def __call__(self, task: EvalTask) -> dict[str, float]:
        from tinyevo.estimators.base import EvalContext

        data = cached_dataset(self.data.spec, self.seed, self.data.val_fraction, self.data.val_min_per_class)
        space = make_space(self.space, input_shape=data.input_shape, num_classes=data.num_classes)
        sn = self.estimator.supernet
        est = _cached_estimator(self.estimator.name, self.estimator.options, self.threads,
                                self.estimator.teacher, self.estimator.fidelity, None if sn is None else sn.path,
                                self.estimator.supernet_scoring)
        ir = space.decode(space.parse(task.genome))
        ctx = EvalContext(genome=task.genome, parents=task.parents, finished_scores=task.finished_scores,
                          cost_model=self.cost_model, store_dir=task.store_dir)
        return dict(est.evaluate(ir, data, seed=task.seed, context=ctx))


@dataclass
class CostFunction:
    """Cost-model metrics of a genome: decode, then :func:`tinyevo.cost.estimate_cost` on the device.

    ``sram_convention``: ``mcunet`` (peak SRAM counts the network input and output buffers) or ``munas``
    (neither counts); see :data:`tinyevo.cost.SRAM_CONVENTIONS`. ``planner``: a name in
    :data:`tinyevo.cost.PLANNERS` (``tflm-mcu``: the whole 32-bit TFLM arena, the default; ``optimal``,
    ``sequential``, ``tflm``, ``tflm-cmsis``).
    """

    space: SearchSpace
    device: Any = None
    precision: str = "int8"
    sram_convention: str = "mcunet"
    planner: str | None = None  # None: tflm-mcu, or optimal under the munas convention (see default_planner)
    _cache: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        from tinyevo.cost import check_planner_convention, default_planner

        if self.planner is None:
            self.planner = default_planner(self.sram_convention)
        check_planner_convention(self.planner, self.sram_convention)

    @property
    def model(self) -> Any:
        """How networks are priced: the typed :class:`~tinyevo.cost.MCUCostModel` on the device (without a
        device it is also given to estimators that price networks themselves, e.g. the ``pruned_*`` costs)."""
        from tinyevo.cost import SRAM_CONVENTIONS, MCUCostModel
        from tinyevo.devices import get_device

        count_input, count_output = SRAM_CONVENTIONS[self.sram_convention]
        device = get_device(self.device) if self.device is not None else None
        return MCUCostModel(device=device, precision=self.precision, planner=self.planner,
                            count_input=count_input, count_output=count_output)

    def __call__(self, genome: Genome) -> dict[str, float]:
        key = str(genome)
        if key not in self._cache:
            ir = self.space.decode(genome)
            report = self.model.estimate(ir)
            self._cache[key] = dict(report.as_metrics())
        return dict(self._cache[key])


def make_limits(cfg: LimitsConfig) -> Any:
    from tinyevo.devices import Limits

    cfg.register_devices()  # a device from the run's own device file (e.g. in a worker process)
    return Limits.from_options(
        device=cfg.device,
        sram=cfg.sram,
        flash=cfg.flash,
        weights=cfg.weights,
        latency_ms=cfg.latency_ms,
        energy_mj=cfg.energy_mj,
        macs=cfg.macs,
        params=cfg.params,
    )


LIMIT_METRICS = {"sram": "peak_sram_bytes", "flash": "flash_bytes", "weights": "weight_bytes",
                 "latency_ms": "latency_ms", "energy_mj": "energy_mj", "macs": "macs", "params": "params"}
"""The cost metric each limit of a run config bounds (the names ``soft`` takes)."""


def soft_metrics(cfg: LimitsConfig) -> frozenset[str]:
    """The cost metrics whose limits ``cfg`` makes soft."""
    return frozenset(LIMIT_METRICS[name] for name in cfg.soft)


def make_problem(config: RunConfig, limits: Any) -> Problem:
    """Objectives from the config; one constraint per limit: hard (checked on cost metrics before training; a
    network over it is infeasible) unless ``soft`` names it (the network is trained and its fitness pays
    ``soft_penalty`` times the relative excess). A soft limit that is not set is a ConfigError."""
    from tinyevo.errors import ConfigError
    from tinyevo.problem import Constraint

    soft = soft_metrics(config.limits)
    bounds = limits.bounds()
    unset = [n for n in config.limits.soft if LIMIT_METRICS[n] not in bounds]
    if unset:
        raise ConfigError(f"soft names the {unset[0]} limit, but the run sets no {unset[0]} limit "
                          f"(limits in force: {', '.join(bounds) or 'none'})")
    constraints = tuple(Constraint(metric, upper=bound, hard=metric not in soft) for metric, bound in bounds.items())
    return Problem(objectives=tuple(config.objectives), constraints=constraints,
                   soft_penalty=float(config.limits.soft_penalty))


def pareto_objectives(problem: Problem) -> tuple[Objective, ...]:
    """The objectives a Pareto front is drawn on, all taken from the problem: its objectives when it has several;
    with one objective, that objective against each resource the problem bounds (the metric of every constraint
    with an upper bound, minimised, in constraint order: e.g. ``peak_sram_bytes`` and ``flash_bytes`` for a run
    with SRAM and flash limits); only the objective when nothing is bounded."""
    if len(problem.objectives) > 1:
        return problem.objectives
    axes = [problem.objectives[0]]
    for c in problem.constraints:
        if c.upper is not None and all(a.metric != c.metric for a in axes):
            axes.append(Objective(c.metric, "min"))
    return tuple(axes)


def default_threads(workers: int) -> int:
    """Torch threads per evaluation for ``workers`` parallel evaluations on this machine."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus // workers)


def known_metrics(config: RunConfig) -> frozenset[str] | None:
    """The metric names a trial of ``config`` can have: the cost model's (:data:`tinyevo.cost.COST_METRICS`,
    and :data:`~tinyevo.cost.DEVICE_METRICS` with a device) and the configured estimator's
    (:func:`tinyevo.estimators.metric_names`); ``None`` when the estimator does not say which it returns."""
    from tinyevo.cost import COST_METRICS, DEVICE_METRICS
    from tinyevo.run.options import estimator_metric_names

    names = estimator_metric_names(config.estimator.name,
                                   prune_ratio=config.estimator.options.prune_ratio)
    if names is None:  # a plug-in estimator: only the torch-side registry knows it
        from tinyevo.estimators import create_estimator, metric_names

        names = metric_names(create_estimator(config.estimator.name, config=train_config(config.estimator.options)))
    if names is None:
        return None
    return frozenset(COST_METRICS) | (frozenset(DEVICE_METRICS) if config.limits.device else frozenset()) | names


def check_metrics(config: RunConfig, problem: Problem | None = None) -> None:
    """A :class:`~tinyevo.errors.ConfigError` naming the known metrics when an objective (or a constraint of
    ``problem``) is on a metric that nothing in the run produces: every trial would score "-" on it."""
    from tinyevo.errors import ConfigError

    known = known_metrics(config)
    if known is None:
        return
    where = f"estimator {config.estimator.name!r}" + (
        f" and the cost model on {config.limits.device}" if config.limits.device else " and the cost model "
        "(no device: no latency_ms / energy_mj)")
    wanted = [("objective", o.metric) for o in config.objectives]
    wanted += [("soft target", t.metric) for o in config.objectives for t in o.soft_targets]
    wanted += [("constraint", c.metric) for c in (problem.constraints if problem is not None else ())]
    for what, metric in wanted:
        if metric not in known:
            raise ConfigError(f"unknown {what} metric {metric!r}: {where} produce {', '.join(sorted(known))}")
