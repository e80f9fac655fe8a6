"""A read-only view of a stored run (for ``tinyevo show`` and ``tinyevo report``); safe while the run is
going."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyevo.errors import StorageError
from tinyevo.run.assembly import make_limits, make_problem, pareto_objectives
from tinyevo.run.config import RunConfig
from tinyevo.run.retraining import best_retrained, pareto_front
from tinyevo.storage import DB_NAME, DerivedModel, RetrainedModel, RunMeta, SQLiteStorage, TrialRecord
from tinyevo.strategies.base import Objective, Problem, Status, Trial, rank_key


@dataclass(frozen=True)
class RunView:
    run_dir: Path
    meta: RunMeta
    config: RunConfig
    records: tuple[TrialRecord, ...]
    finals: tuple[RetrainedModel, ...]
    phase: str | None
    problem: Problem
    bounds: Mapping[str, float]  # metric -> upper limit
    derived: tuple[DerivedModel, ...] = ()  # models made after the search (tinyevo deepen); not trials

    @property
    def trials(self) -> tuple[Trial, ...]:
        return tuple(r.trial for r in self.records)

    @property
    def objective(self) -> Objective:
        return self.problem.objectives[0]

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in Status}
        for t in self.trials:
            out[t.status.value] += 1
        return out

    def ranked(self) -> list[Trial]:
        """Every trial, best first (feasible by fitness, then infeasible by violation, failed last)."""
        return sorted(self.trials, key=lambda t: rank_key(self.problem, t), reverse=True)

    def best(self) -> Trial | None:
        ranked = self.ranked()
        return ranked[0] if ranked and ranked[0].status is Status.OK else None

    def pareto_objectives(self) -> tuple[Objective, ...]:
        return pareto_objectives(self.problem)

    def pareto(self) -> list[Trial]:
        return pareto_front(self.trials, self.pareto_objectives())

    def run_model_objective(self) -> Objective:
        """What picks the run's model among the retrained ones: the run's first objective when the retrained
        models report it (their metrics hold the final training's and the cost model's), else ``val_acc``."""
        first = self.problem.objectives[0]
        return first if any(first.metric in f.metrics for f in self.finals) else Objective("val_acc")

    def run_model(self) -> RetrainedModel | None:
        """The run's model: the best retrained model by :meth:`run_model_objective` (:func:`best_retrained`)."""
        return best_retrained(self.finals, self.run_model_objective())

    def best_so_far(self) -> list[tuple[int, float]]:
        """(trial number, best first-objective value among feasible ok trials up to it), for ok trials
        onwards."""
        out, best = [], -math.inf
        obj = self.objective
        for t in self.trials:
            if t.status is Status.OK:
                best = max(best, obj.score(t.metrics))
            if best > -math.inf:
                out.append((t.number, best if obj.direction == "max" else -best))
        return out


def open_run(run_dir: str | Path) -> RunView:
    """Load a run directory (or its database file) read-only."""
    path = Path(run_dir)
    db = path / DB_NAME if path.is_dir() else path
    if not db.is_file():
        raise StorageError(f"{run_dir} is not a tinyevo run directory (no {DB_NAME})")
    with SQLiteStorage(db, readonly=True) as s:
        meta = s.meta()
        records = tuple(s.records())
        finals = tuple(s.finals())
        derived = tuple(s.derived())
        phase = s.get_state("phase")
    config = RunConfig.from_json(meta.config)
    limits = make_limits(config.limits)
    return RunView(
        run_dir=db.parent,
        meta=meta,
        config=config,
        records=records,
        finals=finals,
        phase=phase,
        problem=make_problem(config, limits),
        bounds=dict(limits.bounds()),
        derived=derived,
    )


def _clean(v: float) -> float | None:
    return None if (isinstance(v, float) and not math.isfinite(v)) else v


def record_json(r: TrialRecord) -> dict[str, Any]:
    """One trial as a JSON-safe object (non-finite numbers become ``null``)."""
    t = r.trial
    return {
        "number": t.number,
        "genome": t.genome,
        "status": t.status.value,
        "metrics": {k: _clean(v) for k, v in t.metrics.items()},
        "cost": {k: _clean(v) for k, v in r.cost.items()},
        "violation": _clean(t.violation),
        "error": t.error,
        "parents": list(t.parents),
        "parent_ids": list(r.parent_ids),
        "generation": t.generation,
        "origin": t.origin,
        "batch": r.batch,
        "eval_seed": r.eval_seed,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "duration_s": r.duration_s,
        "worker": r.worker,
    }


def final_json(f: RetrainedModel) -> dict[str, Any]:
    return {
        "trial": f.trial,
        "genome": f.genome,
        "metrics": {k: _clean(v) for k, v in f.metrics.items()},
        "weights": f.weights,
    }


# --- formatting helpers shared by show and report ---


def fmt_metric(name: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if name.endswith("_bytes"):
        from tinyevo.devices import format_size

        return format_size(value)
    if name.endswith("acc"):
        return f"{100 * value:.2f}%"
    if name in ("macs", "params"):
        return f"{value:,.0f}"
    if name.endswith(("_ms", "_s")):
        return f"{value:.2f}"
    if name.endswith("_mj"):
        return f"{value:.4f}"
    return f"{value:.4g}"


TABLE_METRICS = ("peak_sram_bytes", "flash_bytes", "latency_ms", "macs", "params")
