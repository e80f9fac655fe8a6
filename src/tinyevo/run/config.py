"""Typed, frozen configuration of a run, parsed once at the edge (CLI flags and ``--config run.toml``).

Precedence: built-in defaults < config file < command-line flags. :func:`build_config` validates everything a
user can get wrong (unknown names, bad sizes, bad durations, unknown keys) and raises :class:`ConfigError`
with a message naming the option. The run stores :meth:`RunConfig.to_json` once, and ``tinyevo resume``
rebuilds the same config with :meth:`RunConfig.from_json`.

A config file uses the flag names (``-`` or ``_``) as top-level keys, plus three optional tables::

    data = "digits"
    space = "chain"
    device = "stm32f412"
    sram = "64KB"
    weights = "32KB"           # weight + bias bytes (model size without .tflite metadata)
    sram_convention = "mcunet" # peak SRAM counts the input and output buffers; "munas": neither counts
    budget = 40
    time = "30m"
    objectives = ["val_acc:max"]
    teacher = "big_run:7"      # optional: distil each candidate from a retrained model of another run

    [space_options]    # keyword-only options of the search space
    max_layers = 6

    [train]            # TrainConfig of the search estimator (epochs, batch_size, optimizer, lr, ...)
    epochs = 3

    [final]            # retraining after the search: enabled, pareto, max_models, top_k, workers + TrainConfig
    epochs = 30        # fields (device = "auto" trains on a GPU when there is one)

    soft = ["latency_ms"]      # limits that penalise instead of making infeasible (soft_penalty = 100)
    device_file = "boards.toml"  # your own device profiles (stored with the run as text)

    [strategy_options] # population, offspring, generations, selection, tournament_size, parents, mutation_rate,
    population = 20    # crossover_prob, initialization ("random" / "trivial"); reinforce's lr, batch_size, ...;
                       # surrogate-evolution's initial, elite, ...; see tinyevo.strategies.settings

    [fidelity]         # epochs_fraction, data_fraction, width, resolution, each in (0, 1]
    width = 0.5

    [prefilter]        # the size best of pool random networks within the hard limits, by a zero-cost proxy
    pool = 200         # (proxy = "naswot" / "synflow" / "grad_norm"), are evaluated first
    size = 10

    [dnas]             # with --strategy dnas: epochs, arch_lr, arch_weight_decay, warmup_epochs, gumbel, tau,
    arch_lr = 0.01     # penalty, exclude (docs/dnas.md)

    [supernet_scoring] # with --supernet DIR: calibration_rows, validation_rows, finetune_steps, finetune_lr,
    finetune_steps = 100  # finetune_batch_size (docs/supernet.md)

Examples per use case: ``docs/configs/*.toml``.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from tinyevo.cost import PLANNERS, SRAM_CONVENTIONS, check_planner_convention, default_planner
from tinyevo.errors import ConfigError, StorageError
from tinyevo.problem import Objective, SoftTarget
from tinyevo.run.options import (
    DEFAULT_ESTIMATOR,
    DnasOptions,
    LIMIT_NAMES,
    TABLES,
    TrainOptions,
    prefilter_options,
    run_options,
    train_options,
)
from tinyevo.run.supernet_ref import SUPERNET_ESTIMATOR, SupernetRef, supernet_space
from tinyevo.run.teacher import Teacher
from tinyevo.strategies.base import DEFAULT_STRATEGY
from tinyevo.strategies.settings import StrategySettings

DEFAULT_DEVICE = "stm32f412"
MULTI_OBJECTIVE_STRATEGY = "nsga2"
"""The strategy used when several objectives are given and no strategy is named: the default strategy
(surrogate-evolution) optimises the first objective only, NSGA-II searches for the Pareto front."""
EXECUTOR_CHOICES = ("local", "process", "inprocess", "dask")
DEFAULT_TRIAL_TIMEOUT_S = 1800.0
"""The default per-trial time limit (30 min; ``trial_timeout = "none"`` or ``0`` disables it): a hung evaluation
fails its trial instead of stalling the search forever. Built-in searches train a few epochs per trial (seconds on
``digits``, minutes on CIFAR-10 on a CPU), far below it; longer trainings raise or disable it."""
SRAM_CONVENTION_CHOICES = tuple(SRAM_CONVENTIONS)  # tinyevo.cost is torch-free: one list of names
DEFAULT_PLANNER = "tflm-mcu"
PLANNER_CHOICES = (DEFAULT_PLANNER, *sorted(n for n in PLANNERS.names() if n != DEFAULT_PLANNER))
"""The default peak-SRAM pricing: the whole TFLite-Micro arena of a 32-bit MCU (the runtime tinyevo deploys with),
so an SRAM limit bounds what the device will need. Stored runs without a planner keep ``optimal`` (the default
they were made with)."""
DIGITS_DEMO_LIMITS = {"sram": "4KB", "flash": "64KB"}
"""Limits used on the built-in ``digits`` data when neither a device nor SRAM / flash limits are given: the
default device's 256 KB / 1 MB would let every 8x8-input network through."""

JSONScalar = str | int | float | bool | None


def _freeze(value: Any) -> Any:
    """TOML/JSON lists -> tuples (spaces and TrainConfig take tuples), recursively."""
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, Mapping):
        return {str(k): _freeze(v) for k, v in value.items()}
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _thaw(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class DataConfig:
    """``spec``: ``digits`` or a path (see :func:`tinyevo.data.load_dataset`)."""

    spec: str = "digits"
    val_fraction: float = 0.1
    val_min_per_class: int = 0
    """A small class gives at least ``min(val_min_per_class, class size // 3)`` validation samples
    (:func:`tinyevo.data.dataset.stratified_split`); :func:`build_config` sets it unless ``val_fraction`` is
    given."""

    def __post_init__(self) -> None:
        if not self.spec:
            raise ConfigError("--data must not be empty")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        m = self.val_min_per_class
        if isinstance(m, bool) or not isinstance(m, int) or m < 0:
            raise ConfigError(f"val_min_per_class must be an integer >= 0, got {m!r}")


@dataclass(frozen=True)
class SpaceConfig:
    """A registered search space and its keyword-only options (``input_shape``/``num_classes`` come from
    data)."""

    name: str = "chain"
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for reserved in ("input_shape", "num_classes"):
            if reserved in self.options:
                raise ConfigError(f"space option {reserved!r} is set from the data set; remove it")


@dataclass(frozen=True)
class EstimatorConfig:
    """An estimator spec (``train``, ``naswot+train``, ...) and the options of its TrainConfig. ``teacher``: train
    each candidate by knowledge distillation from a retrained model of another run (as :class:`FinalConfig`'s)."""

    name: str = DEFAULT_ESTIMATOR
    train: Mapping[str, Any] = field(default_factory=lambda: {"epochs": 4, "batch_size": 64})
    teacher: Teacher | None = None
    auto: tuple[str, ...] = ()
    """Training options in ``train`` that hold defaults to adapt to the data set's size before the run is
    stored (:func:`tinyevo.run.sizing.size_run`; :func:`build_config` lists those the user did not set)."""
    fidelity: FidelityConfig = field(default_factory=lambda: FidelityConfig())
    """The ``[fidelity]`` table: low-fidelity knobs over the estimator's own."""
    supernet: SupernetRef | None = None
    """``search --supernet DIR``: candidates are scored with the weights they inherit from the trained supernet in
    ``DIR`` (the estimator is then ``supernet``); the digest of its files is stored with the run."""
    supernet_scoring: tuple[tuple[str, int | float], ...] = ()
    """The ``[supernet_scoring]`` table (the options set, sorted by name; given to the scorer's
    :class:`~tinyevo.supernet.score.ScoreConfig`): only with ``supernet``."""
    options: TrainOptions = field(init=False, repr=False, compare=False)
    """``train`` parsed once (here, also for a stored config) into the typed, torch-free
    :class:`~tinyevo.run.options.TrainOptions` record that the estimator's TrainConfig is built from; ``train``
    stays the stored form (the options the run sets)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "teacher", Teacher.parse(self.teacher, "teacher"))
        object.__setattr__(self, "supernet", SupernetRef.parse(self.supernet))
        if (self.name == SUPERNET_ESTIMATOR) != (self.supernet is not None):
            raise ConfigError("the supernet estimator needs a trained supernet (--supernet DIR), and --supernet "
                              f"scores with it (not with --estimator {self.name})")
        if self.supernet is not None and (self.teacher is not None or self.fidelity.given()):
            raise ConfigError("--supernet scores with inherited weights: a teacher or [fidelity] does not apply")
        scoring = dict(self.supernet_scoring)
        if scoring and self.supernet is None:
            raise ConfigError("[supernet_scoring] sets how a supernet scores candidates: it needs --supernet DIR")
        object.__setattr__(self, "supernet_scoring", tuple(sorted(scoring.items())))
        _check_auto(self.auto)
        object.__setattr__(self, "options", train_options("[train]", self.train))


@dataclass(frozen=True)
class FidelityConfig:
    """Low-fidelity knobs of the search estimator (``None``: the estimator's own). ``epochs_fraction`` scales the
    ``[train]`` epochs (at least one epoch stays); ``data_fraction``, ``width`` and ``resolution`` replace the
    estimator's :class:`~tinyevo.estimators.Fidelity` fields ``data_fraction``, ``width_multiplier`` and
    ``resolution_scale``. Each is in (0, 1]."""

    epochs_fraction: float | None = None
    data_fraction: float | None = None
    width: float | None = None
    resolution: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1):
                raise ConfigError(f"fidelity.{f.name} must be a number in (0, 1], got {v!r}")

    def given(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class PrefilterConfig:
    """Zero-cost pre-filtering: before the search, ``pool`` random genomes that meet the hard limits are ranked by
    the zero-cost proxy ``proxy`` (:func:`tinyevo.estimators.rank_genomes`) and the ``size`` best are evaluated
    first. ``chosen`` holds them once the run has picked them (:func:`tinyevo.run.engine.start_run` stores them,
    so a resume computes no proxy)."""

    proxy: str = "naswot"
    pool: int = 100
    size: int = 10
    chosen: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        prefilter_options({"proxy": self.proxy, "pool": self.pool, "size": self.size})  # as in a config file
        object.__setattr__(self, "chosen", tuple(self.chosen))


def _teacher_json(teacher: Teacher | None) -> str | list[str] | None:
    return None if teacher is None else teacher.to_json()


def _check_auto(auto: Any) -> None:
    from tinyevo.run.sizing import ADAPTIVE_TRAIN_KEYS

    if not isinstance(auto, tuple) or not set(auto) <= set(ADAPTIVE_TRAIN_KEYS):
        raise ConfigError(f"auto must list options among {', '.join(ADAPTIVE_TRAIN_KEYS)}, got {auto!r}")


@dataclass(frozen=True)
class LimitsConfig:
    """Device and explicit limits (explicit values win over the device's SRAM / flash).

    ``weights``: bound on weight + bias bytes (``weight_bytes``). ``sram_convention``: how the run's cost
    model counts peak SRAM, ``mcunet`` (the network input and output buffers count, as in the TFLM arena) or
    ``munas`` (neither counts). ``planner``: how peak SRAM is priced: ``tflm-mcu`` (default: the whole
    TFLite Micro arena of a 32-bit MCU, the greedy planner's head plus the interpreter's persistent tail: the
    arena you will need), ``tflm`` / ``tflm-cmsis`` (the head only: activations and scratch), ``optimal``
    (activations in the best execution order: what a memory-aware code generator achieves; no runtime
    tinyevo ships realises it), ``sequential`` (activations in IR order).
    """

    device: str | None = DEFAULT_DEVICE
    sram: int | None = None  # bytes
    flash: int | None = None  # bytes
    latency_ms: float | None = None
    energy_mj: float | None = None
    macs: float | None = None
    params: float | None = None
    precision: Literal["int8", "float32"] = "int8"
    weights: int | None = None  # bytes
    sram_convention: Literal["mcunet", "munas"] = "mcunet"
    planner: str | None = None  # None: default_planner(sram_convention)
    soft: tuple[str, ...] = ()
    """Limits (names in :data:`~tinyevo.run.options.LIMIT_NAMES`) that are soft: a network over them is still
    trained, and its fitness pays ``soft_penalty`` per unit of relative excess (:class:`~tinyevo.problem.Problem`);
    the others are hard (a network over them is infeasible and never trained)."""
    soft_penalty: float = 100.0
    device_files: tuple[str, ...] = ()
    """The TOML text of each user device file (``device_file``), stored with the run so that it needs no file to
    resume; :meth:`register_devices` adds their devices to :data:`tinyevo.devices.DEVICES`."""

    def register_devices(self) -> None:
        """Register the devices of :attr:`device_files` (an identical definition again is a no-op)."""
        if self.device_files:
            from tinyevo.devices import register_device_text

            for i, text in enumerate(self.device_files):
                register_device_text(text, origin=f"device_file {i + 1} of the run")

    def __post_init__(self) -> None:
        object.__setattr__(self, "soft", tuple(self.soft))
        object.__setattr__(self, "device_files", tuple(self.device_files))
        bad = [n for n in self.soft if n not in LIMIT_NAMES]
        if bad:
            raise ConfigError(f"soft names limits among {', '.join(LIMIT_NAMES)}, got {bad[0]!r}")
        sp = self.soft_penalty
        if isinstance(sp, bool) or not isinstance(sp, (int, float)) or not 0 <= sp < math.inf:
            raise ConfigError(f"--soft-penalty must be a finite number >= 0, got {sp!r}")
        if self.planner is None:
            object.__setattr__(self, "planner", default_planner(self.sram_convention))
        if self.planner not in PLANNER_CHOICES:
            raise ConfigError(f"--planner must be one of {', '.join(PLANNER_CHOICES)}, got {self.planner!r}")
        check_planner_convention(self.planner, self.sram_convention)
        if self.sram_convention not in SRAM_CONVENTION_CHOICES:
            choices = " or ".join(SRAM_CONVENTION_CHOICES)
            raise ConfigError(f"--sram-convention must be {choices}, got {self.sram_convention!r}")
        for name in ("sram", "flash", "weights", "latency_ms", "energy_mj", "macs", "params"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool)
                                      and 0 < v < math.inf):
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive number, got {v!r}")
        if self.precision not in ("int8", "float32"):
            raise ConfigError(f"--precision must be int8 or float32, got {self.precision!r}")
        if self.device is None and (self.latency_ms is not None or self.energy_mj is not None):
            raise ConfigError("--latency-ms and --energy-mj need a --device to estimate them on")


@dataclass(frozen=True)
class BudgetConfig:
    """``trials``: evaluations (infeasible trials are free); ``time_s``: wall time of one search session;
    ``max_trials``: bound on all trials including infeasible ones (default ``20 * trials``)."""

    trials: int = 40
    time_s: float | None = None
    max_trials: int | None = None

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ConfigError(f"--budget must be at least 1 trial, got {self.trials}")
        if self.time_s is not None and not self.time_s > 0:
            raise ConfigError(f"--time must be positive, got {self.time_s}")
        if self.max_trials is not None and self.max_trials < 1:
            raise ConfigError(f"max_trials must be at least 1, got {self.max_trials}")

    @property
    def trial_limit(self) -> int:
        return self.max_trials if self.max_trials is not None else 20 * self.trials


@dataclass(frozen=True)
class ExecutorConfig:
    """Where evaluations run. ``batch_size`` (default: ``workers``) is how many candidates are asked at once;
    it is part of the run's identity (it fixes the ask/tell order), so resuming keeps it even with other
    workers."""

    name: str = "local"
    workers: int = 1
    scheduler: str | None = None
    batch_size: int | None = None
    trial_timeout_s: float | None = DEFAULT_TRIAL_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.name not in EXECUTOR_CHOICES:
            raise ConfigError(f"unknown executor {self.name!r}; known: {', '.join(EXECUTOR_CHOICES)}")
        if self.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {self.workers}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.scheduler is not None and self.name != "dask":
            raise ConfigError("--scheduler needs --executor dask")
        if self.scheduler is not None and "://" not in self.scheduler:
            raise ConfigError(f"--scheduler must look like tcp://HOST:PORT, got {self.scheduler!r}")
        t = self.trial_timeout_s
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t < math.inf):
            raise ConfigError(f"--trial-timeout must be a positive duration or none, got {t!r}")

    @property
    def batch(self) -> int:
        return self.batch_size if self.batch_size is not None else self.workers


@dataclass(frozen=True)
class FinalConfig:
    """Retraining after the search: the ``top_k`` best feasible models (default the best one), or (``pareto``)
    each Pareto-front model (at most ``max_models``), trained with ``train`` (TrainConfig options, e.g.
    ``device = "cuda"``) and evaluated on the test split. ``workers`` > 1 retrains that many models at once, each
    in its own process. Of several retrained models, the one with the best final validation accuracy is the
    run's model (:func:`tinyevo.run.retraining.best_retrained`). ``teacher``: a retrained model of another run, ``"RUN_DIR"``
    (its run's model) or ``"RUN_DIR:N"`` (trial N), that each model learns from too (knowledge distillation; the
    ``distill_alpha`` / ``distill_temperature`` training options weigh it); a list of several is an ensemble
    teacher (the mean of their logits). A list of one is that one."""

    enabled: bool = True
    pareto: bool = False
    max_models: int = 5
    train: Mapping[str, Any] = field(default_factory=lambda: {"epochs": 30, "batch_size": 64})
    top_k: int = 1
    workers: int = 1
    teacher: Teacher | None = None
    auto: tuple[str, ...] = ()  # as EstimatorConfig.auto
    options: TrainOptions = field(init=False, repr=False, compare=False)  # as EstimatorConfig.options

    def __post_init__(self) -> None:
        _check_auto(self.auto)
        object.__setattr__(self, "options", train_options("[final]", self.train))
        for name in ("max_models", "top_k", "workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"final {name} must be an integer >= 1, got {value!r}")
        object.__setattr__(self, "teacher", Teacher.parse(self.teacher, "final teacher"))


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run. Same config and seed -> same trials."""

    data: DataConfig = field(default_factory=DataConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    strategy: str = DEFAULT_STRATEGY
    estimator: EstimatorConfig = field(default_factory=EstimatorConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    objectives: tuple[Objective, ...] = (Objective("val_acc", "max"),)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    final: FinalConfig = field(default_factory=FinalConfig)
    seed: int = 0
    init: tuple[str, ...] = ()
    """Seed genomes evaluated first (rich initialisation): genome strings, zoo names (``resnet8-like``,
    ``zoo:ds-cnn-like``) or ``zoo`` for every known architecture valid in the space
    (:func:`tinyevo.spaces.zoo.resolve_seeds`)."""
    strategy_options: StrategySettings = field(default_factory=StrategySettings)
    """The ``[strategy_options]`` table: hyper-parameters over the strategy preset's own."""
    prefilter: PrefilterConfig | None = None
    """The ``[prefilter]`` table: zero-cost pre-filtering of the initial genomes (None: off)."""
    dnas: DnasOptions | None = None
    """The ``[dnas]`` table: settings of ``tinyevo search --strategy dnas`` (:mod:`tinyevo.run.dnas`)."""

    def __post_init__(self) -> None:
        if not isinstance(self.init, tuple) or not all(isinstance(i, str) and i.strip() for i in self.init):
            raise ConfigError(f"init must be a list of genome strings or zoo names, got {self.init!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"--seed must be a non-negative integer, got {self.seed!r}")
        if not self.objectives:
            raise ConfigError("at least one objective is needed")
        if not self.strategy:
            raise ConfigError("--strategy must not be empty")
        if not isinstance(self.strategy_options, StrategySettings):
            raise ConfigError(f"strategy_options must be StrategySettings, got {self.strategy_options!r}")

    # --- JSON (stored once in the run database) ---
    def to_json(self) -> dict[str, Any]:
        return {
            "data": {"spec": self.data.spec, "val_fraction": self.data.val_fraction,
                     "val_min_per_class": self.data.val_min_per_class},
            "space": {"name": self.space.name, "options": _thaw(self.space.options)},
            "strategy": self.strategy,
            "estimator": {"name": self.estimator.name, "train": _thaw(self.estimator.train),
                          "teacher": _teacher_json(self.estimator.teacher), "auto": list(self.estimator.auto),
                          "fidelity": self.estimator.fidelity.given(),
                          "supernet": None if self.estimator.supernet is None else self.estimator.supernet.to_json(),
                          "supernet_scoring": dict(self.estimator.supernet_scoring)},
            "limits": {f.name: _thaw(getattr(self.limits, f.name)) for f in fields(LimitsConfig)},
            "objectives": [o.spec() for o in self.objectives],  # with MnasNet soft targets: val_acc:max@...
            "budget": {f.name: getattr(self.budget, f.name) for f in fields(BudgetConfig)},
            "executor": {f.name: getattr(self.executor, f.name) for f in fields(ExecutorConfig)},
            "final": {
                "enabled": self.final.enabled,
                "pareto": self.final.pareto,
                "max_models": self.final.max_models,
                "train": _thaw(self.final.train),
                "top_k": self.final.top_k,
                "workers": self.final.workers,
                "teacher": _teacher_json(self.final.teacher),
                "auto": list(self.final.auto),
            },
            "seed": self.seed,
            "init": list(self.init),
            "strategy_options": self.strategy_options.as_dict(),
            "prefilter": None if self.prefilter is None else {
                "proxy": self.prefilter.proxy, "pool": self.prefilter.pool, "size": self.prefilter.size,
                "chosen": list(self.prefilter.chosen)},
            "dnas": None if self.dnas is None else self.dnas.given(),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> RunConfig:
        try:
            config = cls(
                data=DataConfig(**obj["data"]),
                space=SpaceConfig(name=obj["space"]["name"], options=_freeze(obj["space"]["options"])),
                strategy=obj["strategy"],
                estimator=EstimatorConfig(
                    name=obj["estimator"]["name"], train=_freeze(obj["estimator"]["train"]),
                    teacher=obj["estimator"].get("teacher"), auto=tuple(obj["estimator"].get("auto", ())),
                    fidelity=FidelityConfig(**obj["estimator"].get("fidelity", {})),
                    supernet=obj["estimator"].get("supernet"),
                    supernet_scoring=tuple(obj["estimator"].get("supernet_scoring", {}).items()),
                ),
                limits=LimitsConfig(**{"planner": "optimal", **obj["limits"]}),  # old runs: optimal
                objectives=tuple(parse_objective(s) for s in obj["objectives"]),
                budget=BudgetConfig(**obj["budget"]),
                executor=ExecutorConfig(**obj["executor"]),
                final=FinalConfig(
                    enabled=obj["final"]["enabled"],
                    pareto=obj["final"]["pareto"],
                    max_models=obj["final"]["max_models"],
                    train=_freeze(obj["final"]["train"]),
                    top_k=obj["final"].get("top_k", 1),
                    workers=obj["final"].get("workers", 1),
                    teacher=obj["final"].get("teacher"),
                    auto=tuple(obj["final"].get("auto", ())),
                ),
                seed=obj["seed"],
                init=tuple(obj.get("init", ())),
                strategy_options=StrategySettings(**obj.get("strategy_options", {})),
                prefilter=None if obj.get("prefilter") is None else PrefilterConfig(**obj["prefilter"]),
                dnas=None if obj.get("dnas") is None else DnasOptions(**obj["dnas"]),
            )
        except (KeyError, TypeError) as exc:
            raise ConfigError(
                f"stored run configuration is incomplete or from another version ({exc})"
            ) from None
        config.limits.register_devices()  # the run's own device files: it resumes without them
        return config


# --- small parsers ---

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d)?\s*$", re.IGNORECASE)
_DURATION_UNITS = {
    None: 1.0,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "d": 86400.0,
}


def parse_duration(value: str | float) -> float:
    """Seconds in ``"90"``, ``"90s"``, ``"30m"``, ``"1.5h"``, ``"1h30m"`` (or a number of seconds)."""
    if isinstance(value, bool):
        raise ConfigError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(f"a duration must be positive, got {value!r}")
        return float(value)
    text = str(value).strip().lower()
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text)
    if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*([a-z]*)", "", text).strip():
        raise ConfigError(f"cannot read duration {value!r}; write e.g. 90s, 30m or 1h30m")
    total = 0.0
    for number, unit in parts:
        m = _DURATION_RE.match(number + unit)
        if m is None:
            raise ConfigError(f"cannot read duration {value!r}; units are s, m, h, d")
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2).lower() if m.group(2) else None]
    if total <= 0:
        raise ConfigError(f"a duration must be positive, got {value!r}")
    return total


def parse_timeout(value: str | float | None) -> float | None:
    """A time limit: a duration (:func:`parse_duration`), or ``None`` / ``0`` / ``"0"`` / ``"none"`` for no
    limit."""
    if value is None or (not isinstance(value, bool) and isinstance(value, (int, float)) and value == 0):
        return None
    if isinstance(value, str) and value.strip().lower() in ("0", "none", "off", "no"):
        return None
    return parse_duration(value)


def parse_objective(text: str) -> Objective:
    """``"val_acc"`` / ``"val_acc:max"`` / ``"latency_ms:min"`` / ``"val_acc:max@latency_ms=20"`` (MnasNet soft
    target) -> :class:`Objective` (:meth:`Objective.parse`)."""
    return Objective.parse(text)


def _with_soft_targets(objectives: list[Objective], texts: tuple[str, ...], latency_ms: float | None) -> list[Objective]:
    """The first objective scaled by the MnasNet soft targets ``texts`` (``METRIC=TARGET[:ALPHA[:BETA]]``) and
    ``latency_ms=latency_ms`` (``--latency-target-ms``)."""
    targets = [SoftTarget.parse(t) for t in texts]
    if latency_ms is not None:
        targets.append(SoftTarget("latency_ms", float(latency_ms)))
    if not targets:
        return objectives
    first = objectives[0]
    return [replace(first, soft_targets=first.soft_targets + tuple(targets)), *objectives[1:]]


# --- building a config from file values + flags ---

_TOP_KEYS = {
    "data",
    "val_fraction",
    "space",
    "strategy",
    "estimator",
    "supernet",
    "teacher",
    "device",
    "sram",
    "flash",
    "weights",
    "sram_convention",
    "planner",
    "latency_ms",
    "energy_mj",
    "macs",
    "params",
    "precision",
    "objectives",
    "soft_targets",
    "latency_target_ms",
    "budget",
    "time",
    "max_trials",
    "workers",
    "executor",
    "scheduler",
    "batch_size",
    "trial_timeout",
    "seed",
    "init",
    "out",
    "soft",
    "soft_penalty",
    "device_file",
    "space_options",
    "train",
    "final",
    "strategy_options",
    "fidelity",
    "prefilter",
    "dnas",
    "supernet_scoring",
}
_FINAL_KEYS = {"enabled", "pareto", "max_models", "top_k", "workers", "teacher"}


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML run config; keys may use ``-`` or ``_``; unknown keys are an error."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {p} is a directory, not a TOML file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {p} is not UTF-8 text (byte {exc.start}); TOML files are UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"config file {p} nests arrays or tables too deeply") from None
    if _depth(raw) > _MAX_DEPTH:
        raise ConfigError(f"config file {p} nests arrays or tables more than {_MAX_DEPTH} levels deep")
    out = {str(k).replace("-", "_"): v for k, v in raw.items()}
    unknown = sorted(set(out) - _TOP_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown key(s) in {p}: {', '.join(unknown)}; known: {', '.join(sorted(_TOP_KEYS))}"
        )
    for table in TABLES:
        if table in out and not isinstance(out[table], dict):
            raise ConfigError(f"{table} in {p} must be a table ([{table}])")
    if "out" in out and not isinstance(out["out"], str):
        raise ConfigError(f"out in {p} must be a directory path (a string), got {out['out']!r}")
    files = out.get("device_file")
    if isinstance(files, (str, list)):  # a relative device file is beside the config file
        listed = [files] if isinstance(files, str) else files
        out["device_file"] = [str(p.parent / f) if isinstance(f, str) else f for f in listed]
    return out


_MAX_DEPTH = 16
"""Deepest nesting of arrays / tables a run config may have (the deepest real option, a list of lists inside
``[space_options]``, is 3 levels); deeper values are refused before anything recurses over them."""


def _depth(value: Any) -> int:
    """Nesting depth of a TOML value, without recursion (a hostile file may nest thousands of levels)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > _MAX_DEPTH:
            break
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((c, level + 1) for c in children)
    return deepest


_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if set(kinds) == {int, float}:
        return "a number"
    return " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)


def _typed(name: str, value: Any, kind: type | tuple[type, ...]) -> Any:
    """``value`` if it is of ``kind`` (an int is a float too; a bool is no number), else a
    :class:`ConfigError` like ``train.epochs must be an integer, got 'one'``."""
    if value is None:
        return None
    if isinstance(value, bool) and kind is not bool:
        raise ConfigError(f"{name} must be {_kind_name(kind)}, got {value!r}")
    if kind is float and isinstance(value, int):
        return float(value)
    if not isinstance(value, kind):
        raise ConfigError(f"{name} must be {_kind_name(kind)}, got {value!r}")
    return value


def _check_train_options(where: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Validate TrainConfig options early (names and values) without importing torch when it is not needed."""
    opts = {str(k).replace("-", "_"): _freeze(v) for k, v in options.items()}
    checked = train_options(where, opts)  # names, types and ranges (torch-free; one line per error)
    return {k: getattr(checked, k) for k in opts}


def build_config(file_values: Mapping[str, Any] | None = None, **flags: Any) -> RunConfig:
    """Merge config-file values and command-line ``flags`` (``None`` = not given) into a :class:`RunConfig`.

    Flag names are the ``_`` forms of the long options (``latency_ms``, ``time``, ...). Sizes may be strings
    (``"64KB"``), durations strings (``"30m"``).
    """
    from tinyevo.devices import parse_size  # light import; parse sizes at the edge

    v: dict[str, Any] = dict(file_values or {})
    unknown = sorted(set(flags) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"unknown option(s): {', '.join(unknown)}")
    for k, val in flags.items():
        if val is None:
            continue
        if k in TABLES:  # tables merge key by key
            v[k] = {**(v.get(k) or {}), **val}
        else:
            v[k] = val
    if v.get("scheduler") is not None and v.get("executor") is None:
        v["executor"] = "dask"  # joining a cluster implies the Dask executor

    if (
        str(v.get("data", "digits")) == "digits"
        and "device" not in v
        and v.get("sram") is None
        and v.get("flash") is None
    ):
        v.update(DIGITS_DEMO_LIMITS)  # the built-in demo: limits tight enough that the trade-off shows

    def size(name: str) -> int | None:  # a user-facing size needs a unit: --sram 64 is not 64 bytes
        label = f"--{name}" if flags.get(name) is not None else name
        if v.get(name) is None:
            return None
        try:
            return parse_size(v[name], unit_required=True, name=label)
        except (OverflowError, ValueError) as exc:  # 1e400KB is infinite; a ConfigError is a ValueError too
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"{label} must be a finite size, got {v[name]!r}") from None

    final_tbl = dict(v.get("final") or {})
    final_train_defaults = dict(FinalConfig().train)
    final_train = {k: val for k, val in final_tbl.items() if k not in _FINAL_KEYS}
    est_train = dict(EstimatorConfig().train)
    est_train.update(v.get("train") or {})
    objectives = v.get("objectives")
    if isinstance(objectives, str):
        objectives = [objectives]
    if objectives is not None and not (
        isinstance(objectives, (list, tuple)) and all(isinstance(o, str) for o in objectives)
    ):
        raise ConfigError(f"objectives must be a METRIC[:max|min] string or a list of them, got {objectives!r}")
    seed = v.get("seed", 0)
    if isinstance(seed, str):
        try:
            seed = int(seed)
        except ValueError:
            raise ConfigError(f"--seed must be an integer, got {seed!r}") from None
    checked = run_options({**v, "seed": seed})  # every top-level option's type and range, one line per error
    device_files = _device_files(checked.device_file)  # read and registered now: --device may name their devices
    device = v.get("device", DEFAULT_DEVICE)
    if isinstance(device, str) and device.lower() in ("", "none"):
        device = None
    if device is not None:
        from tinyevo.devices import DEVICES

        DEVICES.get(device)  # unknown name -> UnknownNameError with the known names
    time_s = None if v.get("time") is None else parse_duration(v["time"])
    supernet = None if v.get("supernet") is None else SupernetRef.of(_typed("--supernet", v["supernet"], str))
    if supernet is not None:  # the space is the supernet's: the search asks only genomes it covers
        if v.get("estimator") not in (None, SUPERNET_ESTIMATOR):
            raise ConfigError(f"--supernet scores candidates with the supernet; drop --estimator {v['estimator']}")
        v["space_options"] = supernet_space(supernet, v.get("space"), v.get("space_options") or {})
        v["space"], v["estimator"] = "blocks", SUPERNET_ESTIMATOR
    return RunConfig(
        data=DataConfig(
            spec=str(v.get("data", "digits")),
            val_fraction=_typed("val_fraction", v.get("val_fraction", 0.1), float),
            val_min_per_class=0 if v.get("val_fraction") is not None else _sizing().VAL_MIN_PER_CLASS,
        ),
        space=SpaceConfig(name=str(v.get("space", "chain")), options=_freeze(v.get("space_options") or {})),
        strategy=str(v.get("strategy", DEFAULT_STRATEGY if len(objectives or ()) <= 1 else MULTI_OBJECTIVE_STRATEGY)),
        estimator=EstimatorConfig(
            name=str(v.get("estimator", DEFAULT_ESTIMATOR)),
            train=_check_train_options("[train]", est_train),
            teacher=v.get("teacher"),
            auto=tuple(k for k in _sizing().ADAPTIVE_TRAIN_KEYS if k not in (v.get("train") or {})),
            fidelity=FidelityConfig(**(checked.fidelity.model_dump() if checked.fidelity else {})),
            supernet=supernet,
            supernet_scoring=tuple(checked.supernet_scoring.given().items()) if checked.supernet_scoring else (),
        ),
        limits=LimitsConfig(
            device=device,
            sram=size("sram"),
            flash=size("flash"),
            latency_ms=_typed("--latency-ms", v.get("latency_ms"), float),
            energy_mj=_typed("--energy-mj", v.get("energy_mj"), float),
            macs=_typed("--macs", v.get("macs"), (int, float)),
            params=_typed("--params", v.get("params"), (int, float)),
            precision=v.get("precision", "int8"),
            weights=size("weights"),
            sram_convention=v.get("sram_convention", "mcunet"),
            planner=v.get("planner", default_planner(v.get("sram_convention", "mcunet"))),
            soft=_as_tuple(checked.soft),
            soft_penalty=100.0 if checked.soft_penalty is None else checked.soft_penalty,
            device_files=device_files,
        ),
        objectives=tuple(_with_soft_targets([parse_objective(o) for o in (objectives or ["val_acc:max"])],
                                            _as_tuple(checked.soft_targets), checked.latency_target_ms)),
        budget=BudgetConfig(
            trials=_typed("--budget", v.get("budget", BudgetConfig().trials), int),
            time_s=time_s,
            max_trials=_typed("max_trials", v.get("max_trials"), int),
        ),
        executor=ExecutorConfig(
            name=str(v.get("executor", "local")),
            workers=_typed("--workers", v.get("workers", 1), int),
            scheduler=_typed("--scheduler", v.get("scheduler"), str),
            batch_size=_typed("batch_size", v.get("batch_size"), int),
            trial_timeout_s=parse_timeout(v.get("trial_timeout", DEFAULT_TRIAL_TIMEOUT_S)),
        ),
        final=FinalConfig(
            enabled=_typed("final.enabled", final_tbl.get("enabled", True), bool),
            pareto=_typed("final.pareto", final_tbl.get("pareto", False), bool),
            max_models=_typed("final.max_models", final_tbl.get("max_models", 5), int),
            top_k=_typed("final.top_k", final_tbl.get("top_k", 1), int),
            workers=_typed("final.workers", final_tbl.get("workers", 1), int),
            teacher=final_tbl.get("teacher"),
            auto=tuple(k for k in _sizing().ADAPTIVE_TRAIN_KEYS if k not in final_train),
            train=_check_final_train(_check_train_options("[final]", {**final_train_defaults, **final_train})),
        ),
        seed=_typed("--seed", seed, int),
        init=_init_list(v.get("init")),
        strategy_options=StrategySettings(**(checked.strategy_options.model_dump() if checked.strategy_options
                                             else {})),
        prefilter=(None if checked.prefilter is None else PrefilterConfig(**checked.prefilter.model_dump())),
        dnas=checked.dnas,
    )


def _as_tuple(value: str | tuple[str, ...] | None) -> tuple[str, ...]:
    return () if value is None else (value,) if isinstance(value, str) else tuple(value)


def _device_files(value: str | tuple[str, ...] | None) -> tuple[str, ...]:
    """The text of each ``device_file``, whose devices are registered (the run stores the text, not the path)."""
    from tinyevo.devices import read_device_file, register_device_text

    texts = []
    for path in _as_tuple(value):
        texts.append(read_device_file(path))
        register_device_text(texts[-1], origin=f"device file {path}")
    return tuple(texts)


def _sizing() -> Any:
    import tinyevo.run.sizing as sizing  # (no torch)

    return sizing


def _check_final_train(opts: dict[str, Any]) -> dict[str, Any]:
    if opts.get("prune_ratio"):
        raise ConfigError("prune_ratio in [final] is not supported: the retrained model keeps its genome; prune it "
                          "at export (`tinyevo export RUN --prune 0.25`) or score pruned candidates with "
                          "[train] prune_ratio")
    return opts


def _init_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(i, str) for i in value):
        raise ConfigError(f"init must be a genome string or zoo name, or a list of them; got {value!r}")
    out: list[str] = []
    for item in value:
        out.extend(seeds_from_run(item) if item.startswith("run:") else [item])
    return tuple(out)


def seeds_from_run(item: str) -> list[str]:
    """The genomes an ``init`` item ``run:DIR[:K]`` stands for: the K (default 10) best successfully evaluated
    trials of the earlier run in DIR, best first (e.g. to continue a low-fidelity search at a higher fidelity or
    on another machine). They are expanded when the config is built, so the new run stores the genomes."""
    from tinyevo.run.view import open_run
    from tinyevo.strategies.base import Status

    body = item[len("run:"):]
    path, k = body, 10
    head, sep, tail = body.rpartition(":")
    if sep and tail.isdigit():
        path, k = head, int(tail)
    if not path or k < 1:
        raise ConfigError(f"init item {item!r}: expected run:DIR or run:DIR:K with K >= 1")
    try:
        view = open_run(path)
    except StorageError as exc:
        raise ConfigError(f"init item {item!r}: {exc}") from None
    genomes = [t.genome for t in view.ranked() if t.status is Status.OK]
    if not genomes:
        raise ConfigError(f"init item {item!r}: the run in {path} has no successfully evaluated trial")
    return list(dict.fromkeys(genomes))[:k]


def validate_names(config: RunConfig) -> None:
    """Check every registered name in ``config`` (space, strategy, estimator parts, device) before a run
    starts."""
    from tinyevo.run.precheck import check_space_options
    from tinyevo.spaces import SPACES
    from tinyevo.strategies import STRATEGIES

    from tinyevo.strategies.settings import check_settings

    SPACES.get(config.space.name)
    check_space_options(config.space.name, config.space.options)  # names and types; ranges need the data
    STRATEGIES.get(config.strategy)
    check_settings(config.strategy, config.strategy_options)  # [strategy_options] the strategy does not take
    if config.limits.device is not None:
        from tinyevo.devices import DEVICES

        DEVICES.get(config.limits.device)
    from tinyevo.run.options import ESTIMATOR_METRICS

    for part in () if config.estimator.supernet is not None else config.estimator.name.split("+"):
        if not part.strip():
            raise ConfigError(f"bad estimator name {config.estimator.name!r}")
        if part.strip() not in ESTIMATOR_METRICS:  # a built-in name needs no torch; others ask the registry
            from tinyevo.estimators import ESTIMATORS

            ESTIMATORS.get(part.strip())
    from tinyevo.run.assembly import check_metrics

    check_metrics(config)  # objectives on metrics that the estimator and the cost model produce


def with_final_options(config: RunConfig, *, train: Mapping[str, Any] | None = None, **final: Any) -> RunConfig:
    """``config`` with its ``[final]`` section changed: ``final`` sets FinalConfig fields (``top_k``,
    ``workers``, ``pareto``, ``max_models``, ``teacher``; None = unchanged) and ``train`` overrides training options (e.g.
    ``{"device": "cuda", "epochs": 200}``), validated as in a config file."""
    unknown = sorted(set(final) - (_FINAL_KEYS - {"enabled"}))
    if unknown:
        raise ConfigError(f"unknown [final] option(s): {', '.join(unknown)}")
    fc = config.final
    changes = {k: v for k, v in final.items() if v is not None}
    opts = _check_final_train(_check_train_options("[final]", {**_thaw(fc.train), **dict(train or {})}))
    auto = tuple(k for k in fc.auto if k not in (train or {}))  # an option set here is explicit
    return replace(config, final=replace(fc, **changes, train=_freeze(opts), auto=auto))
