"""After the search: pick the best feasible model (or the Pareto front), retrain it longer, test it, save it.

Each retrained model gets a folder ``final/trial-NNNN/`` in the run directory with ``model.pt`` (a
``state_dict``, loadable with ``torch.load(path, weights_only=True)``), ``genome.txt``, ``metrics.json`` and
``history.json``. Files are written atomically, then the model is committed to storage, so a run killed during
retraining redoes only the unfinished models on resume.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from tinyevo.storage.base import FinalModel
from tinyevo.strategies.base import Objective, Problem, Status, Trial, rank_key

Trainer = Callable[..., Any]
"""``trainer(ir, data, *, config, seed) -> TrainResult`` (default: :func:`tinyevo.estimators.train_model`)."""

FINAL_DIR = "final"


def dominates(a: Mapping[str, float], b: Mapping[str, float], objectives: Sequence[Objective]) -> bool:
    sa = [o.score(a) for o in objectives]
    sb = [o.score(b) for o in objectives]
    return all(x >= y for x, y in zip(sa, sb, strict=True)) and any(
        x > y for x, y in zip(sa, sb, strict=True)
    )


def pareto_front(trials: Sequence[Trial], objectives: Sequence[Objective]) -> list[Trial]:
    """Non-dominated ``ok`` trials (first occurrence of equal points kept), best first objective first."""
    ok = [t for t in trials if t.status is Status.OK and not math.isinf(objectives[0].score(t.metrics))]
    front: list[Trial] = []
    seen: set[tuple[float, ...]] = set()
    for t in ok:
        if any(dominates(o.metrics, t.metrics, objectives) for o in ok):
            continue
        point = tuple(o.score(t.metrics) for o in objectives)
        if point in seen:
            continue
        seen.add(point)
        front.append(t)
    return sorted(front, key=lambda t: [-o.score(t.metrics) for o in objectives])


def select_for_retraining(
    problem: Problem,
    trials: Sequence[Trial],
    *,
    pareto: bool,
    max_models: int,
    objectives: Sequence[Objective] | None = None,
) -> list[Trial]:
    """The best feasible trial, or up to ``max_models`` Pareto-front trials (best first objective first)."""
    ok = [t for t in trials if t.status is Status.OK]
    if not ok:
        return []
    if not pareto:
        return [max(ok, key=lambda t: rank_key(problem, t))]
    return pareto_front(ok, objectives or problem.objectives)[:max_models]


def _json_default(obj: object) -> object:
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def model_dir(run_dir: Path, trial: int) -> Path:
    return run_dir / FINAL_DIR / f"trial-{trial:04d}"


def retrain(
    trial: Trial,
    *,
    space: Any,
    data: Any,
    train_config: Any,
    seed: int,
    run_dir: Path,
    cost: Mapping[str, float],
    trainer: Trainer | None = None,
) -> FinalModel:
    """Retrain ``trial``'s architecture from scratch with ``train_config``, test it and save it under
    ``run_dir``."""
    import torch

    if trainer is None:
        from tinyevo.estimators import train_model as trainer
    ir = space.decode(space.parse(trial.genome))
    start = time.perf_counter()
    result = trainer(ir, data, config=train_config, seed=seed)
    seconds = time.perf_counter() - start
    out = model_dir(run_dir, trial.number)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
    _atomic_write(out / "model.pt", lambda p: torch.save(state, p))
    _atomic_write(out / "genome.txt", lambda p: p.write_text(trial.genome + "\n"))
    metrics = {k: float(v) for k, v in result.metrics.items()}
    metrics.setdefault("final_train_s", seconds)
    doc = {
        "trial": trial.number,
        "genome": trial.genome,
        "seed": seed,
        "final": metrics,
        "search": dict(trial.metrics),
        "cost": dict(cost),
        "train_config": train_config,
    }
    _atomic_write(
        out / "metrics.json",
        lambda p: p.write_text(json.dumps(doc, indent=2, default=_json_default, allow_nan=True)),
    )
    history = [asdict(h) if is_dataclass(h) else h for h in getattr(result, "history", ())]
    _atomic_write(out / "history.json", lambda p: p.write_text(json.dumps(history, indent=1, allow_nan=True)))
    return FinalModel(
        trial=trial.number,
        genome=trial.genome,
        metrics={**dict(cost), **metrics},
        weights=str((out / "model.pt").relative_to(run_dir)),
        created_at=time.time(),
    )
