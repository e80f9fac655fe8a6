"""Torch-free, typed records of the options a user writes, validated once at the edge with pydantic.

:class:`TrainOptions` is the ``[train]`` / ``[final]`` table of a run config (and ``tinyevo retrain --set``): every
training option's name, type, range and default, checked before anything is stored or searched. The torch-side
:class:`~tinyevo.training.TrainConfig` is built from these options (the names and defaults agree;
``tests/run/test_run_config_options.py`` checks it). Pydantic's multi-line report becomes one line naming the
option (:func:`one_line`), raised as :class:`~tinyevo.errors.ConfigError`, which the CLI prints and exits 2 with.

This module also holds the names that config validation needs without importing torch or the cost model.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tinyevo.errors import ConfigError

DEFAULT_ESTIMATOR = "train"
"""The estimator of a run that names none. :data:`tinyevo.estimators.DEFAULT_ESTIMATOR` is the same name, written
there again because estimators sit below ``run`` in the import layers (``tests/test_layers.py``);
``tests/run/test_run_config_edge.py`` checks that the two agree, as it does for :data:`AUGMENTATIONS` and every
:class:`TrainOptions` default."""
AUGMENTATIONS = ("shift", "flip")
"""The augmentations a training may use (:data:`tinyevo.training.AUGMENTATIONS`)."""
SEED_MAX = 2**63 - 1
"""The largest run seed: seeds are stored as SQLite integers (signed 64-bit)."""
_DEVICE_RE = re.compile(r"cpu|auto|cuda(:\d+)?")


class TrainOptions(BaseModel):
    """How to train, as written in a config (see :class:`~tinyevo.training.TrainConfig` for what each
    option does). Strict: an integer option takes no ``2.5``, ``2.0``, ``"2"`` or ``true``; a number takes no
    string; no number may be infinite or NaN."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid", allow_inf_nan=False)

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(128, ge=1)
    optimizer: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: float | None = Field(None, gt=0)
    weight_decay: float | None = Field(None, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    grad_clip: float | None = Field(5.0, gt=0)
    augment: tuple[str, ...] = ()
    shift_pixels: int = Field(2, ge=0)
    threads: int | None = Field(None, ge=1)
    eval_batch_size: int = Field(1024, ge=1)
    time_limit_s: float | None = Field(None, gt=0)
    prune_ratio: float = Field(0.0, ge=0, lt=1)
    prune_finetune_epochs: int = Field(1, ge=0)
    prune_finetune_lr: float | None = Field(None, gt=0)
    device: str = "cpu"
    channels_last: bool | None = None
    distill_alpha: float = Field(0.9, ge=0, le=1)
    distill_temperature: float = Field(4.0, gt=0)
    restore_best: bool = False
    train_on_val: bool = False

    @field_validator("augment")
    @classmethod
    def _known_augmentations(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [a for a in value if a not in AUGMENTATIONS]
        if bad:
            raise ValueError(f"unknown augmentation {bad[0]!r}; expected one of {AUGMENTATIONS}")
        return value

    @field_validator("device")
    @classmethod
    def _device_name(cls, value: str) -> str:
        if not _DEVICE_RE.fullmatch(value):
            raise ValueError(f"unknown training device {value!r}; expected cpu, cuda, cuda:N or auto")
        return value

    @model_validator(mode="after")
    def _exclusive(self) -> TrainOptions:
        if self.train_on_val and self.restore_best:
            raise ValueError("restore_best picks weights by validation accuracy, which train_on_val trains on; "
                             "use one of them")
        return self


TRAIN_OPTION_NAMES = tuple(TrainOptions.model_fields)

PROXY_NAMES = ("synflow", "naswot", "grad_norm")
"""The zero-cost proxies a ``[prefilter]`` may rank by (:data:`tinyevo.estimators.PROXIES`, torch-side; a test
checks that the two agree)."""
_TRAINED = frozenset({"val_acc", "train_time_s", "epochs"})
_PRUNED = frozenset({"unpruned_val_acc", "prune_time_s", "pruned_fraction", "pruned_params", "pruned_macs",
                     "pruned_flash_bytes", "pruned_peak_sram_bytes"})
ESTIMATOR_METRICS: Mapping[str, frozenset[str]] = {
    "train": _TRAINED, "lowfi": _TRAINED, "lowres": _TRAINED,
    "lc": _TRAINED | {"stopped_early", "predicted_val_acc"},
    "inherit": _TRAINED | {"inherited_fraction"},
    **{p.replace("_", "-"): frozenset({p, f"{p}_time_s"}) for p in PROXY_NAMES},
}
"""The metrics each built-in estimator returns (without pruning), so that a run config is checked without importing
torch: the search driver then never imports it, only the workers that train do. The torch-side registry
(:data:`tinyevo.estimators.ESTIMATORS`, whose estimators say their ``metric_names``) is the reference; a test
checks that the two agree for every registered name."""
TRAINING_ESTIMATORS = frozenset({"train", "lowfi", "lowres", "lc", "inherit"})
"""The built-in estimators that train (and so prune, with ``prune_ratio > 0``)."""


def estimator_metric_names(spec: str, *, prune_ratio: float = 0.0) -> frozenset[str] | None:
    """The metrics the estimator ``spec`` (``"a+b"``: the union of the parts') returns with ``prune_ratio``, from
    :data:`ESTIMATOR_METRICS`; ``None`` when a part is not a built-in name (a plug-in estimator registered in
    :data:`tinyevo.estimators.ESTIMATORS`: ask the registry)."""
    names: set[str] = set()
    if spec == "supernet":  # search --supernet DIR (tinyevo.estimators.supernet; not in the registry)
        return frozenset({"val_acc"})
    for part in (s.strip() for s in spec.split("+")):
        if part not in ESTIMATOR_METRICS:
            return None
        names |= ESTIMATOR_METRICS[part]
        if prune_ratio > 0 and part in TRAINING_ESTIMATORS:
            names |= _PRUNED
    return frozenset(names)


LIMIT_NAMES = ("sram", "flash", "weights", "latency_ms", "energy_mj", "macs", "params")
"""The limits of a run config, each of which ``soft`` may name."""
MAX_PREFILTER_POOL = 10_000
"""The most random genomes a ``[prefilter]`` may score (each costs a forward / backward pass)."""


class StrategyOptions(BaseModel):
    """The ``[strategy_options]`` table: hyper-parameters of the run's strategy (``None``: the preset's own; see
    :mod:`tinyevo.strategies.settings`, which checks which strategy takes which)."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid", allow_inf_nan=False)

    population: int | None = Field(None, ge=1, le=100_000)
    offspring: int | None = Field(None, ge=1, le=100_000)
    generations: int | None = Field(None, ge=0, le=1_000_000)
    selection: Literal["tournament", "truncation", "roulette", "random"] | None = None
    tournament_size: int | None = Field(None, ge=1, le=100_000)
    parents: int | None = Field(None, ge=1, le=100_000)
    mutation_rate: float | None = Field(None, ge=0, le=1)
    crossover_prob: float | None = Field(None, ge=0, le=1)
    initialization: Literal["random", "trivial"] | None = None
    breeds: int | None = Field(None, ge=1, le=10_000)
    # reinforce (tinyevo.strategies.reinforce.Reinforce)
    lr: float | None = Field(None, gt=0, le=100)
    batch_size: int | None = Field(None, ge=1, le=100_000)
    baseline_decay: float | None = Field(None, ge=0, lt=1)
    entropy: float | None = Field(None, ge=0, le=100)
    adam_beta1: float | None = Field(None, ge=0, lt=1)
    adam_beta2: float | None = Field(None, ge=0, lt=1)
    # surrogate-evolution (tinyevo.strategies.surrogate.SurrogateEvolution)
    initial: int | None = Field(None, ge=2, le=100_000)
    elite: int | None = Field(None, ge=1, le=1_000)
    niche_edits: float | None = Field(None, ge=0, le=1_000)
    mutants: int | None = Field(None, ge=1, le=10_000)
    crossovers: int | None = Field(None, ge=0, le=10_000)
    random_pool: int | None = Field(None, ge=0, le=100_000)
    patience: int | None = Field(None, ge=1, le=1_000_000)
    explore: float | None = Field(None, ge=0, le=1)
    max_train: int | None = Field(None, ge=4, le=5_000)
    max_pool: int | None = Field(None, ge=2, le=1_000_000)
    refit_fraction: float | None = Field(None, ge=0, le=1)


class DnasOptions(BaseModel):
    """The ``[dnas]`` table of ``tinyevo search --strategy dnas`` (``None``: :class:`tinyevo.supernet.dnas.DnasConfig`'s
    own value; see docs/dnas.md): ``epochs`` of the DNAS search (default: the ``[train]`` epochs), the
    architecture Adam's ``arch_lr`` / ``arch_weight_decay``, ``warmup_epochs`` of weights-only training first,
    ``gumbel`` sampling at temperature ``tau``, the resource ``penalty`` strength, and the choices to ``exclude``
    (default: ``["none"]`` on ``nb201``, nothing elsewhere; ``[]`` excludes nothing)."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid", allow_inf_nan=False)

    epochs: int | None = Field(None, ge=1, le=10_000)
    arch_lr: float | None = Field(None, gt=0, le=10)
    arch_weight_decay: float | None = Field(None, ge=0, le=10)
    warmup_epochs: int | None = Field(None, ge=0, le=10_000)
    gumbel: bool | None = None
    tau: float | None = Field(None, gt=0, le=100)
    penalty: float | None = Field(None, ge=0, le=1e6)
    exclude: tuple[str, ...] | None = None

    @field_validator("exclude", mode="before")
    @classmethod
    def _list(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    def given(self) -> dict[str, Any]:
        """The options that are set (for the stored run config and :class:`~tinyevo.supernet.dnas.DnasConfig`)."""
        return self.model_dump(exclude_none=True)


class FidelityOptions(BaseModel):
    """The ``[fidelity]`` table: how much cheaper than the estimator's own training each candidate is scored
    (``None``: the estimator's own; see :class:`tinyevo.estimators.Fidelity`). ``epochs_fraction`` scales the
    ``[train]`` epochs (at least 1 epoch stays); ``data_fraction`` is the share of the training split;
    ``width`` scales the channels of every layer but the classifier; ``resolution`` scales the input height and
    width."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid", allow_inf_nan=False)

    epochs_fraction: float | None = Field(None, gt=0, le=1)
    data_fraction: float | None = Field(None, gt=0, le=1)
    width: float | None = Field(None, gt=0, le=1)
    resolution: float | None = Field(None, gt=0, le=1)


class SupernetScoringOptions(BaseModel):
    """The ``[supernet_scoring]`` table of ``tinyevo search --supernet DIR`` (``None``: the scorer's own; see
    :class:`tinyevo.supernet.score.ScoreConfig` and docs/supernet.md): ``calibration_rows`` re-estimate the
    BatchNorm statistics, ``validation_rows`` measure the accuracy (0: the whole validation split);
    ``finetune_steps`` > 0 scores each candidate after that many AdamW steps (``finetune_lr``, batches of ``finetune_batch_size``) from its inherited weights
    (ranks like stand-alone training far better, at seconds per candidate instead of a forward pass)."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid", allow_inf_nan=False)

    calibration_rows: int | None = Field(None, ge=2, le=4096)
    validation_rows: int | None = Field(None, ge=0)  # 0: the whole validation split
    finetune_steps: int | None = Field(None, ge=0, le=1_000_000)
    finetune_lr: float | None = Field(None, gt=0, le=10)
    finetune_batch_size: int | None = Field(None, ge=2, le=65_536)

    def given(self) -> dict[str, Any]:
        """The options that are set (for the stored run config and the scorer's ScoreConfig)."""
        return self.model_dump(exclude_none=True)


class PrefilterOptions(BaseModel):
    """The ``[prefilter]`` table: before the search, score ``pool`` random genomes that meet the hard limits with
    the zero-cost ``proxy`` and evaluate the ``size`` best first (:func:`tinyevo.run.engine.prefilter_genomes`)."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid", allow_inf_nan=False)

    proxy: Literal["synflow", "naswot", "grad_norm"] = "naswot"
    pool: int = Field(100, ge=1, le=MAX_PREFILTER_POOL)
    size: int = Field(10, ge=1, le=MAX_PREFILTER_POOL)

    @model_validator(mode="after")
    def _size_in_pool(self) -> PrefilterOptions:
        if self.size > self.pool:
            raise ValueError(f"size ({self.size}) must be at most pool ({self.pool}): the best size of pool "
                             "random genomes are kept")
        return self


def _positive() -> Any:
    return Field(None, gt=0)


class RunOptions(BaseModel):
    """The top-level options of a run config merged with the command-line flags (``None``: not given), checked
    for type and range before :func:`tinyevo.run.config.build_config` turns them into a
    :class:`~tinyevo.run.config.RunConfig`. Sizes (``sram``, ...) and durations (``time``, ...) keep their text
    here and are parsed by the config builder; the three tables are checked by :class:`TrainOptions`, the
    ``[final]`` keys and the space's own signature."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid", allow_inf_nan=False)

    data: str | None = None
    val_fraction: float | None = Field(None, gt=0, lt=1)
    space: str | None = None
    strategy: str | None = None
    estimator: str | None = None
    supernet: str | None = None  # a trained supernet's directory (search --supernet DIR)
    teacher: str | tuple[str, ...] | None = None
    device: str | None = None
    sram: str | int | float | None = None
    flash: str | int | float | None = None
    weights: str | int | float | None = None
    sram_convention: str | None = None  # the choices are checked by LimitsConfig / ExecutorConfig
    planner: str | None = None
    latency_ms: float | None = _positive()
    energy_mj: float | None = _positive()
    macs: float | None = _positive()
    params: float | None = _positive()
    precision: str | None = None
    objectives: str | tuple[str, ...] | None = None
    soft_targets: str | tuple[str, ...] | None = None  # METRIC=TARGET[:ALPHA[:BETA]], parsed by SoftTarget.parse
    latency_target_ms: float | None = _positive()
    budget: int | None = Field(None, ge=1)
    time: str | float | None = None
    max_trials: int | None = Field(None, ge=1)
    workers: int | None = Field(None, ge=1)
    executor: str | None = None
    scheduler: str | None = None
    batch_size: int | None = Field(None, ge=1)
    trial_timeout: str | float | None = None
    seed: int | None = Field(None, ge=0, le=SEED_MAX)
    init: str | tuple[str, ...] | None = None
    out: str | None = None
    soft: str | tuple[Literal["sram", "flash", "weights", "latency_ms", "energy_mj", "macs", "params"], ...] | None \
        = None
    soft_penalty: float | None = Field(None, ge=0, le=1e12)
    device_file: str | tuple[str, ...] | None = None
    space_options: dict[str, Any] | None = None
    train: dict[str, Any] | None = None
    final: dict[str, Any] | None = None
    strategy_options: StrategyOptions | None = None
    fidelity: FidelityOptions | None = None
    prefilter: PrefilterOptions | None = None
    dnas: DnasOptions | None = None
    supernet_scoring: SupernetScoringOptions | None = None

    @field_validator("soft")
    @classmethod
    def _known_limits(cls, value: Any) -> Any:
        names = (value,) if isinstance(value, str) else value or ()
        bad = [n for n in names if n not in LIMIT_NAMES]
        if bad:
            raise ValueError(f"unknown limit {bad[0]!r}; soft names limits among {', '.join(LIMIT_NAMES)}")
        return value


FLAG_LABELS = {name: f"--{name.replace('_', '-')}" for name in (
    "budget", "seed", "workers", "scheduler", "latency_ms", "energy_mj", "macs", "params", "precision",
    "sram_convention", "planner", "executor", "time", "trial_timeout", "soft", "soft_penalty", "device_file",
    "latency_target_ms")}
"""How the checks name a top-level option that is also a flag (as the existing messages do: ``--budget must be
an integer, got 'ten'``)."""


def run_options(values: Mapping[str, Any]) -> RunOptions:
    """``values`` (config-file keys merged with flags) as a checked :class:`RunOptions`, or a one-line
    :class:`ConfigError` naming the option."""
    try:
        return RunOptions(**{k: _tuples(v) if k not in TABLES else v for k, v in values.items()})
    except ValidationError as exc:
        raise ConfigError(one_line(exc, labels=FLAG_LABELS)) from None


TABLES = ("space_options", "train", "final", "strategy_options", "fidelity", "prefilter", "dnas", "supernet_scoring")
"""The tables of a run config (merged key by key; their values are not turned into tuples)."""


def prefilter_options(values: Mapping[str, Any]) -> PrefilterOptions:
    """``values`` as checked :class:`PrefilterOptions`, or a one-line :class:`ConfigError` naming the option."""
    try:
        return PrefilterOptions(**values)
    except ValidationError as exc:
        raise ConfigError(one_line(exc, "prefilter")) from None


def train_options(where: str, options: Mapping[str, Any]) -> TrainOptions:
    """The :class:`TrainOptions` in ``options`` (keys may use ``-`` or ``_``; lists are tuples), or a one-line
    :class:`ConfigError` naming the option: ``train.epochs must be an integer, got 2.5``, ``unknown training
    option(s) in [train]: epocs; did you mean 'epochs'?``. ``where`` is the table, ``"[train]"`` or ``"[final]"``."""
    opts = {str(k).replace("-", "_"): _tuples(v) for k, v in options.items()}
    unknown = sorted(set(opts) - set(TRAIN_OPTION_NAMES))
    if unknown:
        hint = difflib.get_close_matches(unknown[0], TRAIN_OPTION_NAMES, n=1)
        raise ConfigError(f"unknown training option(s) in {where}: {', '.join(unknown)}"
                          + (f"; did you mean {hint[0]!r}?" if hint else "")
                          + f" (known: {', '.join(sorted(TRAIN_OPTION_NAMES))})")
    try:
        return TrainOptions(**opts)
    except ValidationError as exc:
        raise ConfigError(one_line(exc, where.strip("[]"))) from None


def _tuples(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_tuples(v) for v in value)
    return value


_PHRASES = {
    "int_type": "must be an integer",
    "int_from_float": "must be an integer",
    "int_parsing": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "literal_error": "must be one of {expected}",
    "extra_forbidden": "is not a known option",
    "missing": "is missing",
}


def one_line(exc: ValidationError, prefix: str = "", labels: Mapping[str, str] | None = None) -> str:
    """The first error of a pydantic :class:`ValidationError` as one line: ``PREFIX.FIELD must be ..., got
    VALUE`` (an index in the location reads ``item``: ``train.augment item must be a string, got 1``; ``labels``
    renames a top-level field, e.g. ``budget`` -> ``--budget``)."""
    errors = exc.errors(include_url=False)
    # a union (str | int | None) reports one error per member; the first is as good as any, but a range error
    # (the value had the right type) says more than a type error of another member
    err = next((e for e in errors if e["type"] not in _TYPE_ERRORS), None)
    if err is None:  # only type errors: the deepest names the culprit (``init item must be a string, got 1``)
        err = max(errors, key=lambda e: len(e["loc"]))
    parts = [prefix] if prefix else []
    for i, loc in enumerate(l for l in err["loc"] if not _is_union_member(l)):
        if i == 0 and labels and str(loc) in labels:
            loc = labels[str(loc)]
        parts.append("item" if isinstance(loc, int) else str(loc))
    name = ".".join(p for p in parts if p != "item")
    name += " item" * sum(1 for p in parts if p == "item")
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"unknown option {name!r}"
    if kind == "value_error":  # our own validators: their message names the problem
        message = str(err.get("ctx", {}).get("error", err["msg"]))
        return f"{name}: {message}" if name else message
    ctx = dict(err.get("ctx") or {})
    if kind == "literal_error":
        ctx["expected"] = ctx.get("expected", "").replace(" or ", ", ")
    phrase = _PHRASES.get(kind)
    text = phrase.format(**ctx) if phrase else err["msg"][:1].lower() + err["msg"][1:]
    return f"{name} {text}, got {err['input']!r}".strip()


_TYPE_ERRORS = {"int_type", "float_type", "string_type", "tuple_type", "bool_type", "literal_error", "none_required",
                "is_instance_of", "list_type", "dict_type"}


def _is_union_member(loc: Any) -> bool:
    """A location part that names a member of a union (``str``, ``tuple[str, ...]``), not a field."""
    return isinstance(loc, str) and (loc in ("str", "int", "float", "bool", "none") or "[" in loc)
