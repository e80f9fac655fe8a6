"""``tinyevo search --strategy dnas``: differentiable NAS as a run (see docs/dnas.md).

DNAS is not an ask/tell strategy (it trains architecture weights jointly with shared weights), so it runs before
the run: :func:`dnas_run` searches with :func:`tinyevo.supernet.dnas.dnas_search` on the run's data, space,
device limits and ``[train]`` recipe, then starts an ordinary run whose only trial is the found genome (a seed
genome of the ``random`` strategy, budget one trial): it is evaluated by the run's estimator, stored like any
trial, retrained by the final stage and exported by ``tinyevo export``. What the search saw (the probabilities per
decision, the argmax genome, the projection onto the hard limits, the penalty per epoch) goes to ``dnas.json`` in
the run directory. The ``[dnas]`` table of the run config (:class:`~tinyevo.run.options.DnasOptions`) sets the
search's epochs and :class:`~tinyevo.supernet.dnas.DnasConfig`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tinyevo.errors import ConfigError
from tinyevo.fsutil import atomic_write_text
from tinyevo.run.assembly import CostFunction, cached_dataset, make_limits, make_space, train_config
from tinyevo.run.config import RunConfig
from tinyevo.run.engine import RunResult, new_run_dir, start_run
from tinyevo.run.options import DnasOptions
from tinyevo.supernet.dnas import DnasConfig, DnasResult, decisions, dnas_search

DNAS_STRATEGY = "dnas"
#: The ask/tell strategy of the run that evaluates the found genome (its only trial is the seed).
CARRIER_STRATEGY = "random"


@dataclass(frozen=True)
class DnasRun:
    run: RunResult
    search: DnasResult


def dnas_genome(config: RunConfig, cfg: DnasConfig | None = None) -> DnasResult:
    """The DNAS search of ``config``'s data, space, limits and ``[train]`` recipe (no run is created)."""
    d = config.data
    data = cached_dataset(d.spec, config.seed, d.val_fraction, d.val_min_per_class)
    space = make_space(config.space, input_shape=data.input_shape, num_classes=data.num_classes)
    decisions(space)  # a space DNAS cannot search fails here
    limits = make_limits(config.limits)
    cost = CostFunction(space, device=limits.device, precision=config.limits.precision,
                        sram_convention=config.limits.sram_convention, planner=config.limits.planner)
    bounds = dict(limits.bounds())
    if config.limits.soft:
        raise ConfigError("dnas takes hard limits only (its penalty is already soft)")
    recipe = train_config(config.estimator.train).recipe
    if config.dnas is not None and config.dnas.epochs is not None:
        recipe = replace(recipe, epochs=config.dnas.epochs)
    return dnas_search(space, data, recipe, seed=config.seed, cfg=cfg or default_config(space, config.dnas),
                       cost=cost, limits=bounds)


def default_config(space: object, options: DnasOptions | None = None) -> DnasConfig:
    """The CLI's settings: :class:`DnasConfig`'s defaults, and on ``nb201`` the ``none`` op excluded (a guard
    against DARTS' collapse; an all-``none`` cell predicts one class); the ``[dnas]`` ``options`` over them."""
    base = DnasConfig(exclude=("none",)) if getattr(space, "name", None) == "nb201" else DnasConfig()
    given = {} if options is None else options.given()
    given.pop("epochs", None)  # the search's length: the recipe's (dnas_genome)
    return replace(base, **given)


def dnas_run(config: RunConfig, *, cfg: DnasConfig | None = None, run_dir: Path | None = None,
             runs_root: Path = Path("runs"), progress: Any = None) -> DnasRun:
    """Search with DNAS, then store, evaluate, retrain and (with ``[final]``) export the found genome as the one
    trial of an ordinary run; ``dnas.json`` in the run directory records the search."""
    found = dnas_genome(config, cfg)
    carrier = replace(config, strategy=CARRIER_STRATEGY, init=(str(found.genome),),
                      budget=replace(config.budget, trials=1, max_trials=1, time_s=None))
    run_dir = Path(run_dir) if run_dir is not None else new_run_dir(Path(runs_root), carrier)
    result = start_run(carrier, run_dir=run_dir, progress=progress)
    atomic_write_text(result.run_dir / "dnas.json", json.dumps(describe(found, found.config), indent=1))
    return DnasRun(result, found)


def describe(found: DnasResult, cfg: DnasConfig) -> dict[str, Any]:
    """JSON-able record of a DNAS search."""
    p = found.projection
    return {
        "genome": str(found.genome), "argmax": str(found.argmax), "seconds": round(found.seconds, 2),
        "projected": bool(p and p.moves), "feasible": None if p is None else p.feasible,
        "moves": [] if p is None else [[n, str(a), str(b)] for n, a, b in p.moves],
        "probabilities": [list(map(float, r)) for r in found.probabilities],
        "penalty_log": list(found.log), "config": asdict(cfg),
        "history": [asdict(h) for h in found.history],  # type: ignore[call-overload]
    }


__all__ = ["CARRIER_STRATEGY", "DNAS_STRATEGY", "DnasRun", "default_config", "describe", "dnas_genome", "dnas_run"]
