"""Run a strategy on a tabular benchmark over several seeds (what ``tinyevo bench`` and ``benchmarks/`` use).

Seeds are ``0 .. seeds-1``; each seed runs one independent search with ``STRATEGIES.create(name, space, problem,
seed=seed)`` (or an Optuna peer) through :func:`~tinyevo.strategies.loop.run_search`. The budget counts evaluated
table queries; with a hard constraint (e.g. latency on a device column) the constrained column is read first as a
free cost metric, so infeasible genomes cost nothing, as in a real search where latency is estimated before
training. A seed's *best* is the metric value of the best feasible evaluated trial within the budget (best by the
objective's score: the metric itself, or with MnasNet soft targets ``metric * (cost / target) ** w``); it *hits*
when that equals the table's optimum among feasible architectures.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyevo.errors import ConfigError, UnknownNameError
from tinyevo.problem import Constraint, Objective, Problem, SoftTarget
from tinyevo.spaces.base import create_space
from tinyevo.strategies.base import DEFAULT_STRATEGY, STRATEGIES, Strategy
from tinyevo.strategies.loop import run_search
from tinyevo.tabular.benchmarks import TableLookup, TabularBenchmark
from tinyevo.tabular.peers import PEERS, OptunaPeer
from tinyevo.tabular.table import Table
from tinyevo.trial import Status

LATENCY_PREFIX = "latency_ms_"


def strategy_names() -> list[str]:
    """Every strategy the bench accepts: the registered ones and the Optuna peers."""
    return [*STRATEGIES.names(), *PEERS]


def latency_constraint(table: Table, *, device: str, max_ms: float) -> Constraint:
    """A hard ``latency_ms_<device> <= max_ms`` constraint; :class:`ConfigError` if the table lacks the column."""
    if max_ms <= 0 or not math.isfinite(max_ms):
        raise ConfigError(f"--max-latency-ms must be a positive number, got {max_ms}")
    column = f"{LATENCY_PREFIX}{device}"
    if column not in table.columns:
        devices = [c[len(LATENCY_PREFIX):] for c in table.metrics if c.startswith(LATENCY_PREFIX)]
        raise ConfigError(
            f"table {table.name!r} has no latency column for device {device!r}; devices: "
            f"{', '.join(devices) or '(none)'}"
        )
    return Constraint(column, upper=float(max_ms), hard=True)


def latency_target(table: Table, *, device: str, target_ms: float) -> SoftTarget:
    """A MnasNet soft target ``latency_ms_<device> = target_ms``; :class:`ConfigError` if the table lacks the
    column."""
    column = latency_constraint(table, device=device, max_ms=target_ms).metric  # same checks and messages
    return SoftTarget(column, float(target_ms))


@dataclass(frozen=True)
class SeedResult:
    seed: int
    best: float  # best metric of a feasible evaluated trial (NaN if none)
    best_arch: str
    hit: bool
    evaluations: int
    trials: int
    infeasible: int
    curve: tuple[float, ...]  # best-so-far metric after each evaluation (length = budget; NaN before any)
    best_metrics: dict[str, float] = field(default_factory=dict)  # the best arch's row (e.g. test_acc)


@dataclass(frozen=True)
class BenchResult:
    benchmark: str
    table: str
    metric: str
    direction: str
    strategy: str
    budget: int
    seeds: int
    constraint: dict[str, Any] | None
    optimum: float
    optimum_arch: str
    mean_best: float
    std_best: float
    hit_rate: float
    elapsed_s: float
    per_seed: tuple[SeedResult, ...]
    objective: str = ""  # the objective's spec, e.g. ``valid_acc:max@latency_ms_raspi4=20.0`` (soft targets)

    def mean_of_best(self, metric: str) -> float:
        """Mean over seeds of another column (e.g. ``test_acc``) of each seed's best architecture."""
        vals = [s.best_metrics.get(metric, math.nan) for s in self.per_seed]
        return float(np.mean(vals)) if vals else math.nan

    def mean_curve(self) -> np.ndarray:
        """Mean best-so-far value after each evaluation (NaN where no seed has a feasible result yet)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(np.array([s.curve for s in self.per_seed], dtype=np.float64), axis=0)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["seed_list"] = [s.seed for s in self.per_seed]
        names = dict.fromkeys(m for s in self.per_seed for m in s.best_metrics if m != self.metric)
        extra = {m: self.mean_of_best(m) for m in names}
        out["mean_of_best"] = extra
        return _json_safe(out)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def make_strategy(
    name: str, benchmark: TabularBenchmark, space: Any, problem: Problem, *, seed: int
) -> Strategy:
    if name in PEERS:
        return OptunaPeer(benchmark, space, problem, sampler=name, seed=seed)
    return STRATEGIES.create(name, space, problem, seed=seed)


def run_benchmark(
    benchmark: TabularBenchmark,
    *,
    strategy: str = DEFAULT_STRATEGY,
    budget: int = 100,
    seeds: int = 10,
    table: str | Path | None = None,
    metric: str | None = None,
    constraint: Constraint | None = None,
    soft_targets: Sequence[SoftTarget] = (),
    on_seed: Callable[[SeedResult], None] | None = None,
) -> BenchResult:
    """Run ``strategy`` for ``seeds`` seeds (0..seeds-1) with ``budget`` evaluated queries each.

    ``soft_targets`` make the objective MnasNet's reward (every strategy then ranks by it); each seed's best is
    the best trial by that reward, reported with its metric value and its row (``best_metrics``)."""
    if budget < 1:
        raise ConfigError(f"--budget must be >= 1, got {budget}")
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    if strategy not in PEERS and strategy not in STRATEGIES:
        raise UnknownNameError(f"unknown strategy {strategy!r}; known: {', '.join(strategy_names())}")
    tab = benchmark.load(table)
    metric = metric or benchmark.metric
    tab.require(metric)
    direction = benchmark.direction
    mask = None
    if constraint is not None:
        tab.require(constraint.metric)
        col = tab.column(constraint.metric)
        mask = np.array([constraint.violation({constraint.metric: float(v)}) == 0 for v in col])
    optimum_arch, optimum = tab.best(metric, direction=direction, mask=mask)
    for t in soft_targets:
        tab.require(t.metric)
    objective = Objective(metric, direction, tuple(soft_targets))
    problem = Problem((objective,), (constraint,) if constraint is not None else ())
    evaluate = TableLookup(tab)
    cost = TableLookup(tab, metrics=(constraint.metric,)) if constraint is not None else None
    space = create_space(benchmark.space)
    sign = 1.0 if direction == "max" else -1.0
    tol = 1e-9 * max(1.0, abs(optimum))

    results: list[SeedResult] = []
    start = time.perf_counter()
    with _single_threaded_blas():  # tiny matrices: BLAS threads only add contention
        for seed in range(seeds):
            results.append(_run_seed(strategy, benchmark, space, problem, evaluate, cost, seed=seed,
                                     budget=budget, metric=metric, sign=sign, optimum=optimum, tol=tol))
            if on_seed is not None:
                on_seed(results[-1])
    bests = np.array([r.best for r in results], dtype=np.float64)
    return BenchResult(
        benchmark=benchmark.name, table=tab.source, metric=metric, direction=direction, strategy=strategy,
        budget=budget, seeds=seeds,
        constraint=None if constraint is None else {"metric": constraint.metric, "upper": constraint.upper},
        optimum=optimum, optimum_arch=optimum_arch,
        mean_best=float(np.nanmean(bests)) if np.isfinite(bests).any() else math.nan,
        std_best=float(np.nanstd(bests)) if np.isfinite(bests).any() else math.nan,
        hit_rate=float(np.mean([r.hit for r in results])), elapsed_s=time.perf_counter() - start,
        per_seed=tuple(results), objective=objective.spec(),
    )


def _run_seed(
    strategy: str, benchmark: TabularBenchmark, space: Any, problem: Problem, evaluate: TableLookup,
    cost: TableLookup | None, *, seed: int, budget: int, metric: str, sign: float, optimum: float, tol: float,
) -> SeedResult:
    strat = make_strategy(strategy, benchmark, space, problem, seed=seed)
    loop = run_search(strat, problem, evaluate, budget=budget, cost=cost)
    curve: list[float] = []
    objective = problem.objectives[0]
    best, best_score, best_trial = math.nan, -math.inf, None
    for t in loop.trials:
        if t.status is Status.INFEASIBLE:
            continue
        if t.status is Status.OK:
            score = objective.score(t.metrics)  # sign * metric without soft targets
            if best_trial is None or score > best_score:
                best, best_score, best_trial = float(t.metrics[metric]), score, t
        curve.append(best)
    curve += [best] * (budget - len(curve))
    return SeedResult(
        seed=seed, best=best, best_arch=best_trial.genome if best_trial else "",
        hit=bool(best_trial is not None and sign * (best - optimum) >= -tol),
        evaluations=loop.evaluations, trials=len(loop.trials),
        infeasible=sum(t.status is Status.INFEASIBLE for t in loop.trials), curve=tuple(curve),
        best_metrics=dict(best_trial.metrics) if best_trial else {},
    )


@contextmanager
def _single_threaded_blas() -> Iterator[None]:
    try:
        from threadpoolctl import threadpool_limits
    except ModuleNotFoundError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def plot_curves(results: Sequence[BenchResult], path: str | Path, *, title: str | None = None) -> Path:
    """Write a PNG of mean best-so-far curves (with the 25-75 % band over seeds) of each result."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    fig = Figure(figsize=(7, 4.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    with warnings.catch_warnings():  # all-NaN columns (nothing feasible yet) are expected
        warnings.simplefilter("ignore", RuntimeWarning)
        for r in results:
            curves = np.array([s.curve for s in r.per_seed], dtype=np.float64)
            x = np.arange(1, curves.shape[1] + 1)
            mean = np.nanmean(curves, axis=0)
            lo, hi = np.nanpercentile(curves, 25, axis=0), np.nanpercentile(curves, 75, axis=0)
            (line,) = ax.plot(x, mean, label=f"{r.strategy} ({r.mean_best:.3f}, hit {r.hit_rate:.0%})")
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.15, linewidth=0)
        starts = [r.mean_curve()[min(9, r.budget - 1)] for r in results]
    if results:
        r0 = results[0]
        ax.axhline(r0.optimum, color="black", linestyle="--", linewidth=0.8, label=f"optimum {r0.optimum:g}")
        start = float(np.nanmedian(starts)) if np.isfinite(starts).any() else math.nan
        if math.isfinite(start):  # zoom on the interesting part: from the 10th query's mean to the optimum
            span = abs(r0.optimum - start) or 1.0
            if r0.direction == "max":
                ax.set_ylim(start - 0.1 * span, r0.optimum + 0.1 * span)
            else:
                ax.set_ylim(r0.optimum - 0.1 * span, start + 0.1 * span)
        ax.set_ylabel(f"best {r0.metric} so far (mean over {r0.seeds} seeds)")
    ax.set_xlabel("evaluated queries")
    ax.set_title(title or (f"{results[0].benchmark}: best-so-far" if results else "best-so-far"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
