"""Checks of a run config that need its search space or its data, done before a search starts (at the CLI edge).

* :func:`check_space_options`: the ``[space_options]`` of a config against the space's own signature (names,
  types; options that take Python objects, such as ``chain``'s ``mutations``, cannot come from a file).
* :func:`check_limits_reachable`: whether the space, on the run's data, can give any network within the hard
  limits at all. The smallest networks are the space's trivial genome (:meth:`SearchSpace.trivial`, "the
  smallest valid genome"), its neighbours where the space lists them, and a fixed seeded sample; when even the
  smallest value any of them reaches on some limited metric is over the limit (``--sram 1B``), the search would
  only spend its trial limit on infeasible candidates, so it is refused with :class:`InfeasibleError` naming that
  limit. Limits that some checked network meets individually are never refused (the search may combine them).
"""

from __future__ import annotations

import difflib
import inspect
import math
import types
import typing
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import ConfigDict, TypeAdapter, ValidationError

from tinyevo.errors import ConfigError, InfeasibleError, TinyEvoError

SAMPLES = 256
"""Random genomes checked besides the trivial one (seeded: the verdict is the same every time)."""
_RESERVED = ("input_shape", "num_classes")
_PLAIN = (int, float, str, bool, type(None))


def _settable(hint: Any) -> bool:
    """Whether a value of type ``hint`` can be written in TOML (numbers, strings, booleans, tuples of them,
    literals and unions of those)."""
    origin = typing.get_origin(hint)
    if origin is None:
        return hint in _PLAIN
    if origin is typing.Literal:
        return True
    return origin in (tuple, typing.Union, types.UnionType) and all(
        a is Ellipsis or _settable(a) for a in typing.get_args(hint))


def check_space_options(space: str, options: Mapping[str, Any]) -> None:
    """Raise a one-line :class:`ConfigError` for an unknown, unsettable or mistyped option of space ``space``."""
    from tinyevo.run.options import one_line
    from tinyevo.spaces import SPACES

    factory = SPACES.get(space)
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        hints = typing.get_type_hints(target)
        params = inspect.signature(target).parameters
    except (TypeError, ValueError, NameError):  # pragma: no cover - a factory we cannot introspect
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return  # takes anything: the space checks its own options
    known = sorted(n for n, p in params.items()
                   if n not in ("self", *_RESERVED) and p.kind is not inspect.Parameter.VAR_POSITIONAL)
    for key, value in options.items():
        if key in _RESERVED:
            continue  # SpaceConfig says it is set from the data set
        if key not in known:
            hint = difflib.get_close_matches(key, known, n=1)
            raise ConfigError(f"unknown option {key!r} in [space_options] of space {space!r}"
                              + (f"; did you mean {hint[0]!r}?" if hint else "") + f" (known: {', '.join(known)})")
        if key not in hints:
            continue
        if not _settable(hints[key]):
            raise ConfigError(f"space_options.{key} of space {space!r} takes Python objects "
                              f"({getattr(hints[key], '__name__', hints[key])}); it cannot be set in a run config")
        adapter: TypeAdapter[Any] = TypeAdapter(hints[key], config=ConfigDict(strict=True, allow_inf_nan=False))
        try:
            adapter.validate_python(value)
        except ValidationError as exc:
            raise ConfigError(one_line(exc, f"space_options.{key}")) from None


def _space_error(config: Any, exc: Exception) -> ConfigError:
    given = ", ".join(f"{k} = {v!r}" for k, v in config.space.options.items()) or "defaults"
    return ConfigError(f"space {config.space.name!r} with [space_options] {given} gives no valid network: {exc}")


def check_limits_reachable(config: Any, data: Any, *, samples: int = SAMPLES) -> None:
    """Raise :class:`InfeasibleError` when no network of the configured space on ``data`` (its input shape and
    classes) can meet some hard limit of ``config`` (see the module text); :class:`ConfigError` when the space's
    options give no valid network at all (``channels = 0``)."""
    from tinyevo.devices.limits import describe_bound
    from tinyevo.run.assembly import CostFunction, make_limits, make_space, soft_metrics
    from tinyevo.spaces.base import NeighbourSpace

    try:
        space = make_space(config.space, input_shape=data.input_shape, num_classes=data.num_classes)
        trivial = space.trivial()
        space.decode(trivial)
    except ConfigError:
        raise
    except (TinyEvoError, TypeError, ValueError, AttributeError, ZeroDivisionError) as exc:
        raise _space_error(config, exc) from None
    limits = make_limits(config.limits)
    soft = soft_metrics(config.limits)  # a soft limit may be exceeded: it only lowers the fitness
    bounds = {m: b for m, b in limits.bounds().items() if m not in soft}
    if not bounds:
        return
    cost = CostFunction(space, device=limits.device, precision=config.limits.precision,
                        sram_convention=config.limits.sram_convention, planner=config.limits.planner)
    genomes = [trivial, *(space.neighbours(trivial) if isinstance(space, NeighbourSpace) else ())]
    rng = np.random.default_rng(0)
    for _ in range(samples):
        genomes.append(space.sample(rng))
    smallest = dict.fromkeys(bounds, math.inf)
    checked = 0
    for genome in dict.fromkeys(genomes):  # unique, in order
        try:
            metrics = cost(genome)
        except TinyEvoError:
            continue  # a genome the cost model cannot price is not evidence either way
        checked += 1
        if all(metrics.get(m, math.inf) <= b for m, b in bounds.items()):
            return  # one network fits every limit
        for m in bounds:
            smallest[m] = min(smallest[m], metrics.get(m, math.inf))
    over = [m for m, b in bounds.items() if smallest[m] > b and math.isfinite(smallest[m])]
    if checked and over:
        m = max(over, key=lambda k: smallest[k] / bounds[k])
        low = describe_bound(m, smallest[m]).split(" <= ")[1]
        raise InfeasibleError(
            f"no network of space {config.space.name!r} on this data can meet {describe_bound(m, bounds[m])}: "
            f"the smallest of {checked} checked (the space's trivial network and a sample) needs {low}; "
            "relax the limit (or use a smaller space / input)")
