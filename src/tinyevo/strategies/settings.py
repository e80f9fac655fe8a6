"""User settings of a strategy's hyper-parameters (``[strategy_options]`` in a run config, ``--population``).

:class:`StrategySettings` holds what a user may change on a registered preset; ``None`` keeps the preset's value.
A preset that takes settings declares which (:func:`register_settings`; the run config checks a run's settings
against them before anything is searched) and builds its operators with :func:`evolution_operators`, so every
knob has one meaning in every preset:

* ``population``: members kept between generations (``population_size``);
* ``offspring``: children per generation (1 = steady state);
* ``generations``: evolved generations after the initial one (then the strategy is exhausted);
* ``selection``: how parents are picked: ``tournament`` (best of ``tournament_size``), ``truncation``
  (uniform among the ``parents`` best), ``roulette`` (fitness-proportional) or ``random`` (uniform);
* ``tournament_size`` / ``parents``: the size of that tournament / pool (only with that selection);
* ``mutation_rate``: per-gene mutation probability (:class:`~tinyevo.strategies.operators.Mutation`);
* ``crossover_prob``: share of the children made by crossover
  (:class:`~tinyevo.strategies.operators.Variation`);
* ``initialization``: ``random`` samples, or ``trivial`` (the space's smallest network, then mutations of
  earlier members: :class:`~tinyevo.strategies.init.TrivialInit`).
* ``breeds``: children bred per ask before a child already seen is mutated further
  (:class:`~tinyevo.strategies.operators.Deduplicator`; presets: 1, or ``GENERATIONAL_BREEDS`` for ``mcunet``,
  ``nsga2``, ``evolution-discard-worst`` and ``evolution-worst-oldest``).

``reinforce`` (:class:`~tinyevo.strategies.reinforce.Reinforce`) takes ``lr``, ``batch_size`` (trials per policy
update), ``baseline_decay``, ``entropy`` (the entropy bonus) and ``adam_beta1`` / ``adam_beta2``.
``surrogate-evolution`` (:class:`~tinyevo.strategies.surrogate.SurrogateEvolution`) takes ``initial``, ``elite``,
``niche_edits``, ``mutants``, ``crossovers``, ``random_pool``, ``patience``, ``explore``, ``max_train``,
``max_pool`` and ``refit_fraction``; each has the meaning of that class's keyword argument.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Literal

from tinyevo.errors import ConfigError
from tinyevo.strategies.init import Initialization, RandomInit, TrivialInit
from tinyevo.strategies.operators import Mutation, Variation
from tinyevo.strategies.selection import (
    ParentSelection,
    RandomSelection,
    RouletteSelection,
    TournamentSelection,
    TruncationSelection,
)

SELECTIONS = ("tournament", "truncation", "roulette", "random")
INITIALIZATIONS = ("random", "trivial")


@dataclass(frozen=True)
class StrategySettings:
    """Hyper-parameters a user sets on a preset (``None``: the preset's own value); see the module text."""

    population: int | None = None
    offspring: int | None = None
    generations: int | None = None
    selection: Literal["tournament", "truncation", "roulette", "random"] | None = None
    tournament_size: int | None = None
    parents: int | None = None
    mutation_rate: float | None = None
    crossover_prob: float | None = None
    initialization: Literal["random", "trivial"] | None = None
    breeds: int | None = None
    # reinforce
    lr: float | None = None
    batch_size: int | None = None
    baseline_decay: float | None = None
    entropy: float | None = None
    adam_beta1: float | None = None
    adam_beta2: float | None = None
    # surrogate-evolution
    initial: int | None = None
    elite: int | None = None
    niche_edits: float | None = None
    mutants: int | None = None
    crossovers: int | None = None
    random_pool: int | None = None
    patience: int | None = None
    explore: float | None = None
    max_train: int | None = None
    max_pool: int | None = None
    refit_fraction: float | None = None

    def __post_init__(self) -> None:
        for name, allowed in _RANGES.items():
            v = getattr(self, name)
            if v is not None and not allowed.holds(v):
                raise ConfigError(f"strategy option {name} must be {allowed.describe()}, got {v!r}")
        if self.selection is not None and self.selection not in SELECTIONS:
            raise ConfigError(f"strategy option selection must be one of {', '.join(SELECTIONS)}, "
                              f"got {self.selection!r}")
        if self.initialization is not None and self.initialization not in INITIALIZATIONS:
            raise ConfigError(f"strategy option initialization must be one of {', '.join(INITIALIZATIONS)}, "
                              f"got {self.initialization!r}")

    def given(self) -> tuple[str, ...]:
        """The names of the settings that are set, in field order."""
        return tuple(f.name for f in fields(self) if getattr(self, f.name) is not None)

    def over(self, defaults: StrategySettings) -> StrategySettings:
        """``defaults`` with the settings given here put over them."""
        return replace(defaults, **{name: getattr(self, name) for name in self.given()})

    def as_dict(self) -> dict[str, object]:
        """The given settings (for the stored run config)."""
        return {name: getattr(self, name) for name in self.given()}


@dataclass(frozen=True)
class _Range:
    """The type and range of a numeric setting: ``lo`` (``> lo`` when ``open_lo``) up to ``hi`` (``< hi`` when
    ``open_hi``; ``None``: unbounded)."""

    kind: type
    lo: float
    hi: float | None = None
    open_lo: bool = False
    open_hi: bool = False

    def holds(self, v: object) -> bool:
        if isinstance(v, bool):
            return False
        if self.kind is int:
            return isinstance(v, int) and v >= self.lo
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            return False
        above = v > self.lo if self.open_lo else v >= self.lo
        below = self.hi is None or (v < self.hi if self.open_hi else v <= self.hi)
        return above and below

    def describe(self) -> str:
        if self.kind is int:
            return f"an integer >= {self.lo:g}"
        if self.hi is None:
            return f"a number {'>' if self.open_lo else '>='} {self.lo:g}"
        return f"a number in [{self.lo:g}, {self.hi:g}{')' if self.open_hi else ']'}"


_RANGES: dict[str, _Range] = {
    "population": _Range(int, 1), "offspring": _Range(int, 1), "generations": _Range(int, 0),
    "tournament_size": _Range(int, 1), "parents": _Range(int, 1), "breeds": _Range(int, 1, 10_000),
    "mutation_rate": _Range(float, 0, 1), "crossover_prob": _Range(float, 0, 1),
    "lr": _Range(float, 0, open_lo=True), "batch_size": _Range(int, 1),
    "baseline_decay": _Range(float, 0, 1, open_hi=True), "entropy": _Range(float, 0),
    "adam_beta1": _Range(float, 0, 1, open_hi=True), "adam_beta2": _Range(float, 0, 1, open_hi=True),
    "initial": _Range(int, 2), "elite": _Range(int, 1), "niche_edits": _Range(float, 0), "mutants": _Range(int, 1),
    "crossovers": _Range(int, 0), "random_pool": _Range(int, 0), "patience": _Range(int, 1),
    "explore": _Range(float, 0, 1), "max_train": _Range(int, 4), "max_pool": _Range(int, 2),
    "refit_fraction": _Range(float, 0, 1),
}
"""The type and range of every numeric setting (``run/options.py``'s ``StrategyOptions`` states the same)."""


_SUPPORTED: dict[str, frozenset[str]] = {}


def register_settings(strategy: str, names: tuple[str, ...]) -> None:
    """Declare that the registered strategy ``strategy`` takes the settings ``names``."""
    unknown = set(names) - {f.name for f in fields(StrategySettings)}
    if unknown:
        raise ValueError(f"unknown strategy settings {sorted(unknown)}")
    _SUPPORTED[strategy] = frozenset(names)


def supported_settings(strategy: str) -> frozenset[str]:
    """The settings ``strategy`` takes (none for a strategy that declared none)."""
    return _SUPPORTED.get(strategy, frozenset())


def check_settings(strategy: str, settings: StrategySettings) -> None:
    """A :class:`ConfigError` when ``settings`` sets something ``strategy`` does not take, naming what it takes
    (or the strategies that take that setting)."""
    supported = supported_settings(strategy)
    bad = [name for name in settings.given() if name not in supported]
    if not bad:
        return
    if supported:
        raise ConfigError(f"strategy {strategy!r} has no option {bad[0]!r}; its [strategy_options] are "
                          f"{', '.join(sorted(supported))}")
    takers = sorted(name for name, names in _SUPPORTED.items() if bad[0] in names)
    raise ConfigError(f"strategy {strategy!r} takes no [strategy_options] (got {bad[0]!r}); strategies that take "
                      f"{bad[0]!r}: {', '.join(takers) or 'none'}")


def parent_selection(s: StrategySettings) -> ParentSelection:
    """The parent selection of complete settings ``s`` (``tournament_size`` only with a tournament, ``parents``
    only with truncation: a setting that would be ignored is an error)."""
    if s.selection != "tournament" and s.tournament_size is not None:
        raise ConfigError(f"tournament_size needs selection = 'tournament', not {s.selection!r}")
    if s.selection != "truncation" and s.parents is not None:
        raise ConfigError(f"parents (the pool of best members parents come from) needs selection = 'truncation', "
                          f"not {s.selection!r}")
    if s.selection == "tournament":
        return TournamentSelection(size=s.tournament_size or 10)
    if s.selection == "truncation":
        return TruncationSelection(top=s.parents or 20)
    if s.selection == "roulette":
        return RouletteSelection()
    return RandomSelection()


def initialization(s: StrategySettings) -> Initialization:
    return TrivialInit() if s.initialization == "trivial" else RandomInit()


def variation(s: StrategySettings, *, mutate_crossover_children: bool = False) -> Variation:
    return Variation(crossover_prob=float(s.crossover_prob or 0.0),
                     mutation=Mutation(rate=None if s.mutation_rate is None else float(s.mutation_rate)),
                     mutate_crossover_children=mutate_crossover_children)


def given_over(user: StrategySettings, defaults: StrategySettings) -> StrategySettings:
    """``defaults`` with ``user``'s settings over them; a user's ``selection`` drops the preset's pool size of
    another selection (``tournament_size`` of a tournament preset when the user picks truncation)."""
    merged = user.over(defaults)
    if user.selection is not None and user.selection != defaults.selection:
        keep = {"tournament": "tournament_size", "truncation": "parents"}.get(user.selection)
        drop = {n: None for n in ("tournament_size", "parents") if n != keep and n not in user.given()}
        merged = replace(merged, **drop)
    return merged
