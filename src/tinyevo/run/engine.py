"""The run engine: a search driver that stores every trial, resumes after any crash, and retrains the winners.

Determinism with parallel workers
---------------------------------
The driver works in **batches** of ``B = config.executor.batch`` candidates (default: the number of workers):

1. ask the strategy for ``min(B, evaluations left, trials left)`` candidates;
2. compute each candidate's cost in the driver; a candidate that violates a hard limit is recorded
   ``infeasible`` at once and never trained;
3. evaluate the others in parallel; each trial is committed to the database the moment its result arrives
   (in any order);
4. tell the strategy every trial of the batch **in ask order**.

Trial numbers are ask positions, and each evaluation's seed is derived from (run seed, trial number), so the
sequence of asks and tells -- and therefore the trials -- depends only on the seed and the configuration, not
on which worker finished first. ``resume`` runs the very same loop: a candidate whose trial is already stored
is not evaluated again; its stored outcome is used instead (the re-asked genome must match, else the run was
changed). A kill at any point loses at most the unfinished evaluations of the current batch.

Only the driver writes the database. Library code never prints: progress goes to a callback.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tinyevo.errors import ConfigError, StorageError, TinyEvoError
from tinyevo.executors import Executor, LocalPoolExecutor, create_executor
from tinyevo.run.assembly import (
    CURVE_METRIC,
    CostFn,
    CostFunction,
    EvalTask,
    Evaluate,
    TrainingEvaluator,
    cached_dataset,
    check_metrics,
    check_teacher,
    default_threads,
    derive_seed,
    make_limits,
    make_problem,
    make_space,
    pareto_objectives,
    search_estimator,
    train_config,
)
from tinyevo.run.config import ExecutorConfig, RunConfig
from tinyevo.run.retraining import (
    RetrainPlan,
    RetrainTask,
    Trainer,
    commit_final,
    load_teacher,
    repair_finals,
    retrain_many,
    select_for_retraining,
)
from tinyevo.spaces.zoo import resolve_seeds
from tinyevo.storage import (
    DB_NAME,
    MAX_SEED,
    RetrainedModel,
    SQLiteStorage,
    Storage,
    TrialRecord,
    create_run_database,
    new_meta,
)
from tinyevo.strategies.base import STRATEGIES, Candidate, Problem, Status, Strategy, Trial, rank_key
from tinyevo.strategies.loop import StopReason, drive, finish_trial
from tinyevo.strategies.settings import check_settings
from tinyevo.strategies.warmstart import WarmStart

log = logging.getLogger(__name__)

WEIGHTS_DIR = "weights"
"""Where the ``inherit`` estimator keeps each trained candidate's weights inside a run directory (so that workers
share them and a resumed run inherits exactly as an uninterrupted one)."""

EventKind = Literal["start", "trial", "search-done", "final-start", "final-model", "done"]


@dataclass(frozen=True)
class ProgressEvent:
    """What the engine reports to its ``progress`` callback (the CLI renders it with rich)."""

    kind: EventKind
    trials: int  # trials stored so far (all statuses)
    evaluations: int  # trials evaluated so far (ok + failed)
    budget: int  # evaluations the search may spend
    ok: int
    infeasible: int
    failed: int
    best: Trial | None
    elapsed_s: float
    trial: Trial | None = None
    final: RetrainedModel | None = None
    message: str = ""
    time_limit_s: float | None = None
    run_dir: Path | None = None  # the run's directory (its stored config says what runs)

    @property
    def feasible_fraction(self) -> float:
        """Fraction of trials that met every hard limit (``nan`` before the first trial)."""
        return (self.trials - self.infeasible) / self.trials if self.trials else math.nan


Progress = Callable[[ProgressEvent], None]


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    trials: tuple[Trial, ...]
    best: Trial | None
    finals: tuple[RetrainedModel, ...]
    stopped: StopReason
    problem: Problem


@dataclass
class _Counts:
    trials: int = 0
    evaluations: int = 0
    ok: int = 0
    infeasible: int = 0
    failed: int = 0
    best: Trial | None = None

    def add(self, trial: Trial, problem: Problem) -> None:
        self.trials += 1
        if trial.status is Status.INFEASIBLE:
            self.infeasible += 1
        else:
            self.evaluations += 1
            if trial.status is Status.OK:
                self.ok += 1
            else:
                self.failed += 1
        if self.best is None or rank_key(problem, trial) > rank_key(problem, self.best):
            self.best = trial


@dataclass
class RunAssembly:
    """The assembled working parts of a run (space, problem, cost function, evaluator, data, ...).
    :func:`assemble_run` makes them from a config; tests may swap any of them."""

    space: Any
    problem: Problem
    cost: CostFn
    evaluate: Evaluate
    data: Any = None  # the data set (for final retraining); loaded lazily when None
    trainer: Trainer | None = None  # final retraining (default: tinyevo.estimators.train_model)
    strategy_factory: Callable[[], Strategy] | None = None
    limits: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def check_search_device(config: RunConfig) -> None:
    """Local workers train where the driver runs: a search asking for a GPU that is not there fails before it
    starts (not once per trial). Dask workers may run elsewhere and are not checked."""
    device = config.estimator.options.device
    if config.executor.name != "dask" and device != "cpu":  # the CPU is always there: no torch to ask
        from tinyevo.training import resolve_device

        resolve_device(device)


def check_final_teacher(config: RunConfig) -> None:
    """A missing or unusable ``[final] teacher`` is a :class:`ConfigError` before the search starts, not after it
    (``tinyevo retrain --teacher`` may then name another)."""
    if config.final.enabled and config.final.teacher is not None:
        load_teacher(config.final.teacher)


def assemble_run(config: RunConfig) -> RunAssembly:
    """Data (for shapes), space, limits, problem, cost function and the picklable evaluator of ``config``."""
    if config.estimator.supernet is not None:  # a resume refuses a supernet changed since the run started
        config.estimator.supernet.check()
    d = config.data
    data = cached_dataset(d.spec, config.seed, d.val_fraction, d.val_min_per_class)
    space = make_space(config.space, input_shape=data.input_shape, num_classes=data.num_classes)
    limits = make_limits(config.limits)
    problem = make_problem(config, limits)
    cost = CostFunction(space, device=limits.device, precision=config.limits.precision,
                        sram_convention=config.limits.sram_convention, planner=config.limits.planner)
    evaluate = TrainingEvaluator(
        data=config.data, space=config.space, estimator=config.estimator, seed=config.seed,
        cost_model=replace(cost.model, device=None),
    )
    make_strategy(config, space, problem)  # bad seeds and options the strategy does not take fail here, before a
    # run directory exists
    if config.estimator.fidelity.given():  # and [fidelity] on an estimator that trains nothing
        search_estimator(config.estimator.name, config.estimator.options, fidelity=config.estimator.fidelity)
    if config.estimator.teacher is not None:  # so do a bad teacher and an estimator that cannot distil
        check_teacher(config.estimator)
    return RunAssembly(space=space, problem=problem, cost=cost, evaluate=evaluate, data=data, limits=limits)


def make_strategy(config: RunConfig, space: Any, problem: Problem) -> Strategy:
    """The run's strategy: the registered preset with the ``[strategy_options]`` over its own settings (a
    ConfigError when it does not take one of them), behind a :class:`WarmStart` when the run has seed genomes
    (``init``, then the ``[prefilter]`` choice)."""
    settings = config.strategy_options
    if settings.given():
        check_settings(config.strategy, settings)
        strategy = STRATEGIES.create(config.strategy, space, problem, seed=config.seed, settings=settings)
    else:
        strategy = STRATEGIES.create(config.strategy, space, problem, seed=config.seed)
    seeds = resolve_seeds(space, config.init) if config.init else ()
    if config.prefilter is not None:
        seeds = (*seeds, *(space.parse(g) for g in config.prefilter.chosen))
    return WarmStart(strategy, seeds) if seeds else strategy


def prefilter_genomes(config: RunConfig, parts: RunAssembly, data: Any) -> tuple[str, ...]:
    """The genomes the ``[prefilter]`` of ``config`` picks: up to ``pool`` distinct random genomes (drawn from the
    run's seed) that meet the hard limits (priced by the run's cost model; at most ``20 * pool`` draws), ranked
    by the zero-cost proxy (:func:`tinyevo.estimators.rank_genomes`); the ``size`` best."""
    from tinyevo.estimators import rank_genomes

    pf = config.prefilter
    if pf is None:
        return ()
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, PREFILTER_STREAM]))
    pool: dict[str, Any] = {}
    seen: set[str] = set()
    for _ in range(20 * pf.pool):
        g = parts.space.sample(rng)
        if str(g) in seen:
            continue
        seen.add(str(g))
        try:
            fits = parts.problem.hard_violation(parts.cost(g)) == 0
        except TinyEvoError:
            fits = False  # a genome the cost model cannot price is not a seed
        if fits:
            pool[str(g)] = g
            if len(pool) >= pf.pool:
                break
    ranked = rank_genomes(parts.space, list(pool.values()), data, proxy=pf.proxy, seed=config.seed)
    return tuple(str(g) for g, _ in ranked[: pf.size])


PREFILTER_STREAM = 7
"""The random stream of the ``[prefilter]`` samples (apart from the strategy's, which is seeded by the run seed)."""


def new_run_dir(root: Path, config: RunConfig) -> Path:
    """A fresh directory under ``root`` named after the time, space and data set."""
    data = Path(config.data.spec).stem or config.data.spec
    base = f"{datetime.now():%Y%m%d-%H%M%S}-{config.space.name}-{data}"
    for i in range(1000):
        path = root / (base if i == 0 else f"{base}-{i}")
        if not path.exists():
            return path
    raise StorageError(f"cannot find a free run directory name under {root}")


class Engine:
    """Drives one run (fresh or resumed) against its storage. Use :func:`start_run` / :func:`resume_run`."""

    def __init__(
        self,
        run_dir: Path,
        config: RunConfig,
        storage: Storage,
        parts: RunAssembly,
        *,
        executor: Executor,
        progress: Progress | None = None,
        time_s: float | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.config = config
        self.storage = storage
        self.parts = parts
        self.problem = parts.problem
        self.executor = executor
        self.progress = progress
        self.time_s = time_s
        self._counts = _Counts()
        self._start = time.monotonic()

    # --- helpers ---
    def _emit(self, kind: EventKind, **extra: Any) -> None:
        if self.progress is None:
            return
        c = self._counts
        self.progress(
            ProgressEvent(
                kind=kind,
                trials=c.trials,
                evaluations=c.evaluations,
                budget=self.config.budget.trials,
                ok=c.ok,
                infeasible=c.infeasible,
                failed=c.failed,
                best=c.best,
                elapsed_s=time.monotonic() - self._start,
                time_limit_s=self.time_s,
                run_dir=self.run_dir,
                **extra,
            )
        )

    def _strategy(self) -> Strategy:
        if self.parts.strategy_factory is not None:
            return self.parts.strategy_factory()
        return make_strategy(self.config, self.parts.space, self.problem)

    def _commit(
        self,
        trial: Trial,
        *,
        cost: Mapping[str, float],
        batch: int,
        started: float,
        duration: float = 0.0,
        worker: str = "",
        eval_seed: int | None = None,
    ) -> None:
        parent_ids = self.storage.numbers_of(tuple(trial.parents))
        self.storage.add(
            TrialRecord(
                trial=trial,
                cost=dict(cost),
                parent_ids=parent_ids,
                batch=batch,
                eval_seed=eval_seed,
                started_at=started,
                finished_at=time.time(),
                duration_s=duration,
                worker=worker,
            )
        )
        self._counts.add(trial, self.problem)
        self._emit("trial", trial=trial)

    def _over_time(self) -> bool:
        return self.time_s is not None and time.monotonic() - self._start >= self.time_s

    # --- the search ---
    def search(self) -> tuple[list[Trial], StopReason]:
        stored = {r.number: r for r in self.storage.records()}
        for r in stored.values():
            self._counts.add(r.trial, self.problem)
        if stored:
            self._emit("start", message=f"resuming: {len(stored)} stored trials")
        else:
            self._emit("start")
        if self.storage.get_state("phase") not in ("final", "done"):  # a resume never undoes a finished search
            self.storage.set_state("phase", "search")
        strategy = self._strategy()
        batches = itertools.count()  # the batch number of each run_batch call

        def run_batch(n0: int, cands: Sequence[Candidate], told: Sequence[Trial]) -> list[Trial]:
            results = self._run_batch(next(batches), n0, list(cands), stored, list(told))
            return [results[i] for i in range(len(cands))]

        def out_of_time(n0: int, k: int) -> bool:  # (stored trials of the batch are replayed, whatever the time)
            return self._over_time() and not any(n in stored for n in range(n0, n0 + k))

        loop = drive(strategy, run_batch, budget=self.config.budget.trials,
                     max_trials=self.config.budget.trial_limit, batch_size=self.config.executor.batch,
                     out_of_time=out_of_time)
        told, stop = list(loop.trials), loop.stop
        extra = sorted(n for n in stored if n >= len(told))
        if extra:
            log.warning("stored trials %s were not reached by the search (config changed?)", extra)
        return told, stop

    def _run_batch(
        self,
        batch: int,
        n0: int,
        cands: list[Candidate],
        stored: Mapping[int, TrialRecord],
        told: list[Trial],
    ) -> dict[int, Trial]:
        results: dict[int, Trial] = {}
        todo: list[tuple[int, Candidate, dict[str, float], float]] = []
        for i, cand in enumerate(cands):
            number = n0 + i
            rec = stored.get(number)
            if rec is not None:
                if rec.trial.genome != str(cand.genome):
                    raise ConfigError(
                        f"stored trial {number} ({rec.trial.genome}) does not match the strategy's proposal "
                        f"({cand.genome}); was the run changed since it started?"
                    )
                results[i] = rec.trial
                continue
            started = time.time()
            try:
                cost = {k: float(v) for k, v in self.parts.cost(cand.genome).items()}
            except Exception as exc:  # noqa: BLE001 - a genome the cost model cannot handle is a failed trial
                trial = Trial(
                    number=number,
                    genome=str(cand.genome),
                    status=Status.FAILED,
                    error=f"cost model: {type(exc).__name__}: {exc}",
                    parents=cand.parents,
                    generation=cand.generation,
                    origin=cand.origin,
                )
                self._commit(trial, cost={}, batch=batch, started=started)
                results[i] = trial
                continue
            trial = finish_trial(number, cand, self.problem, cost=cost, evaluate=None)
            if trial.status is Status.INFEASIBLE:
                self._commit(trial, cost=cost, batch=batch, started=started)
                results[i] = trial
            else:
                todo.append((i, cand, cost, started))
        if todo:
            scores = tuple(  # the learning curves an estimator extrapolates are of CURVE_METRIC, whatever the objective
                float(t.metrics[CURVE_METRIC]) for t in told if t.status is Status.OK and CURVE_METRIC in t.metrics
            )
            tasks = [
                EvalTask(
                    number=n0 + i,
                    genome=str(c.genome),
                    seed=derive_seed(self.config.seed, n0 + i),
                    parents=tuple(c.parents),
                    finished_scores=scores,
                    store_dir=str(self.run_dir / WEIGHTS_DIR),
                )
                for i, c, _, _ in todo
            ]
            for res in self.executor.map(self.parts.evaluate, tasks):
                i, cand, cost, started = todo[res.index]
                number = n0 + i
                if res.error is not None:
                    trial = Trial(
                        number=number,
                        genome=str(cand.genome),
                        status=Status.FAILED,
                        metrics=cost,
                        error=res.error,
                        parents=cand.parents,
                        generation=cand.generation,
                        origin=cand.origin,
                    )
                else:
                    value = res.value
                    trial = finish_trial(
                        number, cand, self.problem, cost=cost, evaluate=lambda _g, v=value: _as_metrics(v)
                    )
                self._commit(
                    trial,
                    cost=cost,
                    batch=batch,
                    started=started,
                    duration=res.duration_s,
                    worker=res.worker,
                    eval_seed=tasks[res.index].seed,
                )
                results[i] = trial
        return results

    # --- final retraining ---
    def retrain_best(
        self,
        trials: list[Trial],
        *,
        force: bool = False,
        enabled: bool | None = None,
        only: Sequence[int] | None = None,
        plan: RetrainPlan | None = None,
    ) -> list[RetrainedModel]:
        """Retrain the chosen trials (``[final]``, or the trial numbers ``only``) not retrained yet (all of them
        with ``force``); returns the chosen trials' final models. ``enabled`` overrides ``[final] enabled``
        (``tinyevo retrain``). ``plan``: how each model is retrained (:class:`~tinyevo.run.retraining.RetrainPlan`:
        start from scratch or from its earlier final weights, accept always or if better, data train or train+val);
        default: from scratch, always, on the data ``[final.train] train_on_val`` says."""
        fcfg = self.config.final
        repair_finals(self.storage, self.run_dir)  # files and database agree again after a kill (see commit_final)
        if not (fcfg.enabled if enabled is None else enabled):
            return []
        if only is not None:
            by_number = {t.number: t for t in trials}
            bad = [n for n in only if n not in by_number or by_number[n].status is not Status.OK]
            if bad:
                raise ConfigError(f"trial {bad[0]} cannot be retrained: only successfully evaluated trials can "
                                  f"(the run has trials 0..{len(trials) - 1})")
            chosen = [by_number[n] for n in dict.fromkeys(only)]
        else:
            chosen = select_for_retraining(
                self.problem,
                trials,
                pareto=fcfg.pareto,
                max_models=fcfg.max_models,
                objectives=pareto_objectives(self.problem),
                top_k=fcfg.top_k,
            )
        if fcfg.teacher is not None:
            load_teacher(fcfg.teacher)  # a missing or unusable teacher fails here, before anything changes
        self.storage.set_state("phase", "final")
        done = set() if force else {f.trial for f in self.storage.finals()}
        todo = [t for t in chosen if t.number not in done]
        earlier = {f.trial: self.run_dir / f.weights for f in self.storage.finals()}
        plan = plan if plan is not None else RetrainPlan.for_config(fcfg.train)
        if plan.start == "weights":
            missing = [t.number for t in todo if t.number not in earlier or not earlier[t.number].is_file()]
            if missing:
                raise ConfigError(f"trial {missing[0]} has no retrained weights to continue from; retrain it "
                                  "without --continue first")
        if todo:
            at_once = min(fcfg.workers, len(todo))
            self._emit("final-start", message=f"retraining {len(todo)} model(s)"
                       + (f", {at_once} at a time" if at_once > 1 else ""))
            d = self.config.data
            spec = (d.spec, self.config.seed, d.val_fraction, d.val_min_per_class)
            if at_once > 1:  # worker processes load the data set themselves and share the CPUs (unless
                data, threads = None, default_threads(at_once)  # [final] threads says otherwise)
            else:
                data, threads = self.parts.data if self.parts.data is not None else cached_dataset(*spec), None
            tcfg = train_config(fcfg.options, threads=threads)
            costs = {r.number: r.cost for r in self.storage.records()}
            costs.update({d.number: d.cost for d in self.storage.derived()})
            tasks = [
                RetrainTask(trial=t, space=self.parts.space, train_config=tcfg,
                            seed=derive_seed(self.config.seed, t.number, 1), run_dir=self.run_dir,
                            cost=costs.get(t.number, {}), data=data, data_spec=spec, trainer=self.parts.trainer,
                            continue_from=earlier[t.number] if plan.start == "weights" else None,
                            teacher=fcfg.teacher, plan=plan, staged=True,
                            inherit_from=None if self.config.estimator.supernet is None
                            else self.config.estimator.supernet.path)
                for t in todo
            ]

            def commit(model: RetrainedModel) -> None:
                commit_final(self.storage, self.run_dir, model)
                self._emit("final-model", final=model)

            retrain_many(tasks, workers=fcfg.workers, on_done=commit)
        wanted = {t.number for t in chosen}
        return [f for f in self.storage.finals() if f.trial in wanted]

    def run(self) -> RunResult:
        try:
            trials, stop = self.search()
            if self.storage.get_state("phase") == "search":  # the search is over, whatever the retraining does
                self.storage.set_state("phase", "final")
            self._emit("search-done", message=stop)
            finals = self.retrain_best(trials)
            self.storage.set_state("phase", "done")
            self._emit("done", message=stop)
        finally:
            self.executor.close()
        best = max(trials, key=lambda t: rank_key(self.problem, t), default=None)
        return RunResult(self.run_dir, tuple(trials), best, tuple(finals), stop, self.problem)


def _as_metrics(value: object) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise TypeError(f"the evaluator returned {type(value).__name__}, not a mapping of metrics")
    return {str(k): float(v) for k, v in value.items()}


def _executor_for(config: RunConfig, override: Executor | None) -> Executor:
    """The run's executor: local worker processes get the per-trial time limit and the torch threads per
    evaluation (``[train] threads``, fixed by :func:`resolve_run_identity`) as their default thread count."""
    if override is not None:
        return override
    cfg = config.executor
    return create_executor(
        cfg.name,
        workers=cfg.workers,
        scheduler=cfg.scheduler,
        timeout_s=cfg.trial_timeout_s,
        threads=config.estimator.options.threads,
    )


PRELOAD = ("tinyevo.run.assembly", "tinyevo.estimators")
"""What a local worker started ahead imports while the driver loads the data and builds the run (torch, through
the estimators): the two start-ups overlap."""


def _preload(parts: RunAssembly | None) -> tuple[str, ...]:
    """What workers started ahead import: the estimators for the built-in evaluator; nothing for another one (a
    test's or a plug-in's function, which may not need torch at all)."""
    return PRELOAD if parts is None or isinstance(parts.evaluate, TrainingEvaluator) else ()


def _start_ahead(config: RunConfig, override: Executor | None, evaluations: int,
                 preload: tuple[str, ...] = PRELOAD) -> Executor | None:
    """The run's local worker pool with its first workers started now (:meth:`LocalPoolExecutor.start`: at most
    ``min(workers, batch, evaluations)``, so a 1-trial search starts one), or ``None`` for a given or Dask executor
    and when the executor cannot be made (its error is then raised where it always was: after the data and the
    configuration are checked). The workers compute the same whatever their start time: the trials are the same."""
    if override is not None or config.executor.name not in ("local", "process"):
        return None
    try:
        ex = _executor_for(config, None)
    except TinyEvoError:
        return None
    if isinstance(ex, LocalPoolExecutor):
        ex.start(count=min(config.executor.workers, config.executor.batch, evaluations), preload=preload)
    return ex


def start_workers_ahead(config: RunConfig) -> Executor | None:
    """For a caller that loads the data itself before :func:`start_run` (the CLI sizes the run and checks its
    limits first): the run's local worker pool with its workers started now, importing torch while the caller
    loads the data. Pass it to ``start_run(executor=...)``, which closes it (close it yourself if the run is not
    started). ``None`` where :func:`start_run` makes the executor itself (Dask, or an executor that cannot be made:
    its error is raised there)."""
    config = resolve_run_identity(config)
    return _start_ahead(config, None, config.budget.trials)


def resolve_run_identity(config: RunConfig) -> RunConfig:
    """Fix, before a run is stored, the settings that its trials depend on but that default per machine.

    * the batch size (default: ``workers``) fixes the ask/tell order;
    * the torch threads per evaluation (default: CPUs // workers on this machine, for local executors) fix the
      floating-point summation order of training, so a resume with another ``--workers`` trains identically.
    """
    ex = config.executor
    if ex.batch_size is None:
        config = replace(config, executor=replace(ex, batch_size=ex.workers))
    local = ex.name != "dask" or ex.scheduler is None
    if local and config.estimator.options.threads is None:
        train = {**config.estimator.train, "threads": default_threads(ex.workers)}
        config = replace(config, estimator=replace(config.estimator, train=train))
    return config


def start_run(
    config: RunConfig,
    *,
    run_dir: Path | None = None,
    runs_root: Path = Path("runs"),
    parts: RunAssembly | None = None,
    executor: Executor | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Start a new run in ``run_dir`` (default: a new directory under ``runs_root``) and carry it to the
    end."""
    if config.seed > MAX_SEED:  # the run database stores it as a 64-bit integer: refuse it before anything exists
        raise ConfigError(f"--seed must be at most 2**63-1 = {MAX_SEED}, got {config.seed}")
    config = resolve_run_identity(config)
    ahead = _start_ahead(config, executor, config.budget.trials, _preload(parts))  # they import torch meanwhile
    try:
        if parts is None or getattr(parts.data, "y_train", None) is not None:  # defaults adapted to the data size
            from tinyevo.run.sizing import size_run

            config = size_run(config, None if parts is None else parts.data).config
        if parts is None:
            check_search_device(config)
            parts = assemble_run(config)
            check_metrics(config, parts.problem)  # an objective that nothing produces fails before a run exists
        if config.prefilter is not None and not config.prefilter.chosen:  # stored with the run: a resume re-uses
            d = config.data  # them
            data = parts.data if parts.data is not None else cached_dataset(d.spec, config.seed, d.val_fraction,
                                                                            d.val_min_per_class)
            chosen = prefilter_genomes(config, parts, data)
            config = replace(config, prefilter=replace(config.prefilter, chosen=chosen))
        check_final_teacher(config)
        run_dir = Path(run_dir) if run_dir is not None else new_run_dir(Path(runs_root), config)
        # fails early (bad scheduler, ...) before a run is created
        ex = ahead if ahead is not None else _executor_for(config, executor)
    except BaseException:
        if ahead is not None:
            ahead.close()
        raise
    try:
        # atomic: a kill leaves no database or one holding the run, never one without it
        create_run_database(run_dir / DB_NAME, new_meta(config.seed, config.to_json()))
        storage = SQLiteStorage(run_dir / DB_NAME)
    except BaseException:
        ex.close()
        raise
    try:
        engine = Engine(
            run_dir, config, storage, parts, executor=ex, progress=progress, time_s=config.budget.time_s
        )
        return engine.run()
    finally:
        ex.close()
        storage.close()


def load_run_config(run_dir: Path) -> RunConfig:
    """The configuration a run was started with."""
    with SQLiteStorage(_db(run_dir), readonly=True) as s:
        return RunConfig.from_json(s.meta().config)


def _db(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    db = run_dir / DB_NAME if run_dir.is_dir() else run_dir
    if not db.is_file():
        raise StorageError(f"{run_dir} is not a tinyevo run directory (no {DB_NAME})")
    return db


def resume_run(
    run_dir: Path,
    *,
    executor_config: ExecutorConfig | None = None,
    time_s: float | None = None,
    parts: RunAssembly | None = None,
    executor: Executor | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Continue a run from its database: replay the stored trials, evaluate the rest, then retrain.

    ``executor_config`` may change where evaluations run (workers, Dask); the batch size stays the stored one,
    so the trials are the same as those of an uninterrupted run. ``time_s`` bounds this session's search time
    (default: the stored ``--time``).

    A run directory may come from someone else, so a network address stored in it is never used: a run that
    joined a Dask scheduler (``--scheduler``) resumes on a local Dask cluster unless ``executor_config`` (the
    caller, e.g. ``tinyevo resume --scheduler``) names the scheduler again. (A Dask client unpickles what its
    scheduler sends, so connecting to a scheduler named by a stranger's run would run their code here.)
    """
    db = _db(run_dir)
    run_dir = db.parent
    storage = SQLiteStorage(db)
    try:
        config = RunConfig.from_json(storage.meta().config)
        if config.executor.scheduler is not None:
            log.warning(
                "not connecting to the Dask scheduler stored in %s (%s): resuming on a local cluster; pass "
                "--scheduler again to use a remote one", run_dir, config.executor.scheduler
            )
            config = replace(config, executor=replace(config.executor, scheduler=None))
        if executor_config is not None:
            ex = executor_config
            config = replace(
                config,
                executor=ExecutorConfig(
                    name=ex.name, workers=ex.workers, scheduler=ex.scheduler, batch_size=config.executor.batch,
                    trial_timeout_s=config.executor.trial_timeout_s,
                ),
            )
        searching = storage.get_state("phase") not in ("final", "done")
        ahead = _start_ahead(config, executor, config.budget.trials if searching else 0, _preload(parts))
        try:
            if parts is None:
                check_search_device(config)
            if searching:  # (a finished search: retrain says what failed)
                check_final_teacher(config)
            parts = parts if parts is not None else assemble_run(config)
            ex = ahead if ahead is not None else _executor_for(config, executor)
        except BaseException:
            if ahead is not None:
                ahead.close()
            raise
        engine = Engine(
            run_dir,
            config,
            storage,
            parts,
            executor=ex,
            progress=progress,
            time_s=time_s if time_s is not None else config.budget.time_s,
        )
        return engine.run()
    finally:
        storage.close()


def retrain_run(
    run_dir: Path,
    *,
    config: RunConfig | None = None,
    keep_done: bool = False,
    trials: Sequence[int] | None = None,
    plan: RetrainPlan | None = None,
    parts: RunAssembly | None = None,
    progress: Progress | None = None,
) -> list[RetrainedModel]:
    """(Re)do the final retraining of a run whose search has finished, e.g. on a GPU machine after a search on
    a laptop: ``config`` is the run's config with another ``[final]`` section
    (:func:`tinyevo.run.config.with_final_options`; default: as stored). Every chosen model is retrained and
    replaces its earlier final model, except with ``keep_done`` those already retrained. ``trials`` retrains
    these trial numbers (or numbers of derived models, ``tinyevo deepen``) instead of the ``[final]`` choice.
    ``plan`` (:class:`~tinyevo.run.retraining.RetrainPlan`): ``start="weights"`` starts from each model's earlier
    final weights (a warm restart: one more cosine cycle) instead of from scratch; with ``accept="if_better"`` a
    cycle that ends with a lower validation accuracy leaves the earlier model in place (its files go to
    ``final/trial-NNNN/rejected/``); default: from scratch, on the data ``[final.train] train_on_val`` says. The search trials are
    not touched, and the changed ``[final]`` options are not stored: each model's ``metrics.json`` records the
    training configuration it was trained with. Returns the chosen trials' final models. With ``[final] workers``
    > 1 the models train in spawned processes, which import the calling script: guard a script's entry point
    with ``if __name__ == "__main__":`` (see ``examples/two_fidelity_search.py``)."""
    db = _db(run_dir)
    run_dir = db.parent
    storage = SQLiteStorage(db)
    try:
        stored = RunConfig.from_json(storage.meta().config)
        phase = storage.get_state("phase")
        if phase not in ("final", "done"):
            raise ConfigError(
                f"the search of {run_dir} has not finished (phase {phase!r}); finish it with `tinyevo resume "
                f"{run_dir}` first"
            )
        config = config if config is not None else stored
        from tinyevo.training import resolve_device

        resolve_device(config.final.options.device)  # no GPU -> one clear error before any work
        parts = parts if parts is not None else assemble_run(config)
        stored_trials = [r.trial for r in storage.records()]
        if trials is not None:  # derived models are retrained only when named
            stored_trials += [d.as_trial() for d in storage.derived()]
        engine = Engine(run_dir, config, storage, parts, executor=create_executor("local", workers=1),
                        progress=progress)
        try:
            finals = engine.retrain_best(stored_trials, force=not keep_done, enabled=True, only=trials,
                                     plan=plan)
        finally:
            engine.executor.close()
        storage.set_state("phase", "done")
        return finals
    finally:
        storage.close()
