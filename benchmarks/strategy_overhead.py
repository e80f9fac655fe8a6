"""Per-trial overhead of every search strategy (its own ask + tell time, not the evaluation) up to 20,000 trials.

Two constrained problems, each strategy in turn, Optuna TPE as the reference in the same run:

* ``chain``: the chain space (28x28x1 input) with a cheap synthetic objective and two hard limits from the MCU
  cost model (stm32f746): ``peak_sram_bytes <= 32000`` and ``flash_bytes <= 64000``. The cost model runs
  before every evaluation (infeasible genomes are recorded, never evaluated, as in a real search); the
  synthetic score is ``tanh(log1p(macs) / 15) + 0.05 sin(w . features)`` (larger nets score higher up to the
  limits, with a fixed random ripple), so the search presses against the limits and keeps proposing infeasible
  genomes. Optuna TPE searches the same genome through define-by-run parameters (number of layers, then each
  layer's type, kernel, stride, width, skip; head; dense widths).
* ``nb201``: NAS-Bench-201 CIFAR-10 ``valid_acc`` with ``latency_ms_raspi4 <= 20`` read from the table as a free
  cost metric (``../shared/benchmarks/nb201_cifar10.csv``; the part is skipped when the file is missing). The
  space has 15,625 cells, so this part stops at ``--nb201-trials`` (default 5,000).

Overhead is measured per trial as CPU time of the calling thread (``time.thread_time``) and as wall time
(``time.perf_counter``) around ``ask()`` and ``tell()`` only; BLAS runs single-threaded. CPU time is the
number to compare on a shared machine (wall time includes waiting for the CPU). Windows: trials 0-500,
500-2,000, 2,000-5,000, 5,000-10,000, 10,000-15,000, 15,000-20,000 (truncated at ``--trials``). A strategy that
ends itself is reported with the trial count it reached; ``--mcunet-generations 200`` lets ``mcunet`` (30
generations: 3,100 trials) run to 20,000. ``flat`` compares the last window's mean CPU time with the 500-2,000
window. ``reinforce`` takes fixed-structure spaces only (not ``chain``).

    nice -n 10 python benchmarks/strategy_overhead.py --jobs 4 --mcunet-generations 200   # the full run
    nice -n 10 python benchmarks/strategy_overhead.py --jobs 6 --trials 5000 --nb201-trials 2000 --tpe-trials 300
    nice -n 10 python benchmarks/strategy_overhead.py --trials 2000 --tpe-trials 500 --out benchmarks/out/so.json
    python benchmarks/strategy_overhead.py --merge benchmarks/out/a.json benchmarks/out/b.json   # one JSON of parts

Writes ``benchmarks/results/strategy_overhead.json`` (or ``--out``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shlex
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from tinyevo.cost.model import estimate_cost
from tinyevo.errors import ConfigError, SearchExhaustedError
from tinyevo.problem import Constraint, Objective, Problem
from tinyevo.spaces.base import SearchSpace, create_space
from tinyevo.spaces.chain import POOL_OPS, ChainGenome, ChainLayer, ChainSpace
from tinyevo.strategies import STRATEGIES, Strategy
from tinyevo.strategies.base import fitness
from tinyevo.strategies.loop import finish_trial
from tinyevo.strategies.settings import StrategySettings
from tinyevo.trial import Candidate, Status, Trial

ROOT = Path(__file__).resolve().parent
WINDOWS: tuple[tuple[int, int], ...] = ((0, 500), (500, 2000), (2000, 5000), (5000, 10000), (10000, 15000),
                                        (15000, 20000))
NB201_TABLE = ROOT.parent.parent / "shared" / "benchmarks" / "nb201_cifar10.csv"
GOAL_MS = 10.0
FINITE_SPACE = (
    "NB201 has 15,625 cells: at 10,000 trials 64 % of them were asked, so any sampler, uniform random included, "
    "looks at ever more genomes per new one (random: 1 / (1 - share asked), 2.8 at the end). There, flat is "
    "read per genome looked at (cpu_ms_per_try, flat_per_try: the strategy's own work per proposal), with "
    "tries_mean (genomes looked at per ask) beside it; on the chain space (about 1e20 genomes) flat is per trial."
)
SLOW = ("surrogate-evolution", "optuna-tpe", "reinforce")  # submitted first with --jobs

Metrics = Mapping[str, float]


# --- problems ----------------------------------------------------------------------------------------------------
class ChainProblem:
    """The constrained chain-space problem (see the module doc)."""

    name = "chain"

    def __init__(self) -> None:
        self.space = create_space("chain")
        self.problem = Problem(
            (Objective("score", "max"),),
            (Constraint("peak_sram_bytes", upper=32000, hard=True), Constraint("flash_bytes", upper=64000, hard=True)),
        )
        self._w = np.random.default_rng(123).normal(size=len(self.space.features(self.space.trivial())))
        self._last: tuple[str, dict[str, float]] = ("", {})

    def cost(self, genome: Any) -> Metrics:
        metrics = estimate_cost(self.space.decode(genome), device="stm32f746").as_metrics()
        self._last = (str(genome), metrics)
        return metrics

    def evaluate(self, genome: Any) -> Metrics:
        key, c = self._last
        if key != str(genome):
            c = self.cost(genome)
        f = np.asarray(self.space.features(genome), dtype=np.float64)
        return {"score": math.tanh(math.log1p(c["macs"]) / 15.0) + 0.05 * math.sin(float(f @ self._w))}


class NB201Problem:
    """NB201 ``valid_acc`` under a latency limit read from the table."""

    name = "nb201"

    def __init__(self, table: Path, *, device: str = "raspi4", max_ms: float = 20.0) -> None:
        from tinyevo.tabular import get_benchmark
        from tinyevo.tabular.benchmarks import TableLookup
        from tinyevo.tabular.runner import latency_constraint

        self.bench = get_benchmark("nb201")
        tab = self.bench.load(table)
        self.space = create_space(self.bench.space)
        constraint = latency_constraint(tab, device=device, max_ms=max_ms)
        self.problem = Problem((Objective(self.bench.metric, self.bench.direction),), (constraint,))
        self.cost = TableLookup(tab, metrics=(constraint.metric,))
        self.evaluate = TableLookup(tab, metrics=(self.bench.metric,))


# --- Optuna TPE on the chain space -------------------------------------------------------------------------------
class ChainTPE:
    """Optuna's TPE sampler over the chain space, define-by-run, as an ask / tell strategy.

    A proposal that repeats a told genome is told its known value at once and asked again (as the tabular
    Optuna peers do); infeasible trials are told the worst value seen with their violation as a constraint.
    """

    def __init__(self, space: ChainSpace, problem: Problem, *, seed: int, max_repeats: int = 1000) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._native = hasattr(optuna.trial.Trial, "set_constraint")
        kw: dict[str, Any] = {"seed": seed}
        if not self._native:
            kw["constraints_func"] = lambda t: [float(t.user_attrs.get("violation", 0.0))]
        self.study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(**kw))
        self.space = space
        self.problem = problem
        self.max_repeats = max_repeats
        self._told: dict[str, tuple[float, float]] = {}
        self._pending: dict[str, Any] = {}
        self._worst = math.inf

    def _genome(self, t: Any) -> ChainGenome:
        sp = self.space
        layers = []
        for i in range(t.suggest_int("layers", 0, sp.max_layers)):
            op = t.suggest_categorical(f"op{i}", list(sp.layer_ops))
            stride = t.suggest_categorical(f"stride{i}", list(sp.strides))
            if op in POOL_OPS:
                layers.append(ChainLayer(op, t.suggest_categorical(f"pk{i}", list(sp.pool_kernels)), stride))
            else:
                layers.append(ChainLayer(
                    op, t.suggest_categorical(f"k{i}", list(sp.kernels)), stride,
                    t.suggest_categorical(f"c{i}", list(sp.channels)), t.suggest_categorical(f"r{i}", [False, True]),
                ))
        head = t.suggest_categorical("head", list(sp.heads))
        dense = tuple(t.suggest_categorical(f"d{i}", list(sp.dense_units))
                      for i in range(t.suggest_int("dense", 0, sp.max_dense)))
        return sp.repair(ChainGenome(tuple(layers), head, dense))

    def _constrain(self, ot: Any, violation: float) -> None:
        if self._native:
            ot.set_constraint("violation", violation)
        else:
            ot.set_user_attr("violation", violation)

    def ask(self) -> Candidate:
        for _ in range(self.max_repeats):
            ot = self.study.ask()
            g = self._genome(ot)
            key = str(g)
            known = self._told.get(key)
            if known is not None or key in self._pending:
                value, violation = known if known is not None else (self._floor(), 0.0)
                self._constrain(ot, violation)
                self.study.tell(ot, value)
                continue
            self._pending[key] = ot
            return Candidate(g, origin="optuna-tpe")
        raise SearchExhaustedError(f"TPE repeated told genomes {self.max_repeats} times in a row")

    def _floor(self) -> float:
        return self._worst if math.isfinite(self._worst) else 0.0

    def tell(self, candidate: Candidate, trial: Trial) -> None:
        ot = self._pending.pop(str(candidate.genome))
        value, violation = self._floor(), 0.0
        if trial.status is Status.INFEASIBLE:
            violation = max(float(trial.violation), 1e-9)
        elif trial.status is Status.OK and math.isfinite(f := fitness(self.problem, trial)):
            value = f
            self._worst = min(self._worst, f)
        self._constrain(ot, violation)
        self.study.tell(ot, value)
        self._told[str(candidate.genome)] = (value, violation)


# --- measurement -------------------------------------------------------------------------------------------------
def measure(strategy: Strategy, problem: Problem, *, cost: Callable[[Any], Metrics],
            evaluate: Callable[[Any], Metrics], trials: int) -> dict[str, Any]:
    """Run ``trials`` trials; per-trial ask + tell CPU and wall seconds, statuses, and why it stopped."""
    cpu = np.zeros(trials)
    wall = np.zeros(trials)
    tries = np.zeros(trials)
    seen = getattr(strategy, "seen", None)  # a Deduplicator counts the genomes it looked at (``proposals``)
    counted = seen is not None and hasattr(seen, "proposals")
    statuses: dict[str, int] = {}
    best = -math.inf
    stopped = "trials"
    n = 0
    for i in range(trials):
        p0 = seen.proposals if counted else 0
        c0, w0 = time.thread_time(), time.perf_counter()
        try:
            cand = strategy.ask()
        except SearchExhaustedError:
            stopped = "exhausted"
            break
        c1, w1 = time.thread_time(), time.perf_counter()
        tries[i] = seen.proposals - p0 if counted else math.nan
        trial = finish_trial(i, cand, problem, cost=cost(cand.genome), evaluate=evaluate)
        c2, w2 = time.thread_time(), time.perf_counter()
        strategy.tell(cand, trial)
        c3, w3 = time.thread_time(), time.perf_counter()
        cpu[i] = (c1 - c0) + (c3 - c2)
        wall[i] = (w1 - w0) + (w3 - w2)
        statuses[trial.status.value] = statuses.get(trial.status.value, 0) + 1
        if trial.status is Status.OK:
            best = max(best, fitness(problem, trial))
        n = i + 1
    return {"trials": n, "stopped": stopped, "statuses": statuses, "best_fitness": best if n else None,
            "windows": windows(cpu[:n], wall[:n], tries[:n]), "_cpu": cpu[:n]}


def windows(cpu: np.ndarray, wall: np.ndarray, tries: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Per window: CPU and wall ms per trial; with ``tries`` (genomes looked at per ask, from the strategy's
    deduplicator), their mean and the CPU ms per genome looked at (``cpu_ms_per_try``: the strategy's own cost
    once the growing number of duplicates it rejects is divided out)."""
    out = []
    for lo, hi in WINDOWS:
        if lo >= len(cpu):
            break
        c, w = cpu[lo:hi] * 1e3, wall[lo:hi] * 1e3
        row = {
            "from": lo, "to": lo + len(c), "cpu_ms_mean": float(c.mean()), "cpu_ms_median": float(np.median(c)),
            "cpu_ms_p95": float(np.percentile(c, 95)), "cpu_ms_max": float(c.max()),
            "wall_ms_mean": float(w.mean()), "wall_ms_median": float(np.median(w)),
        }
        if tries is not None and len(tries) and np.isfinite(tries[lo:hi]).all():
            t = tries[lo:hi]
            row.update({"tries_mean": float(t.mean()), "tries_max": int(t.max()),
                        "cpu_ms_per_try": float(c.sum() / max(t.sum(), 1.0))})
        out.append(row)
    return out


def verdict(row: dict[str, Any]) -> dict[str, Any]:
    """Goal check: every window's mean CPU <= 10 ms, and the last window within 1.5x of the 500-2,000 one
    (``flat``); also the last window against the 5,000-10,000 one (``flat_after_5000``: whether a strategy whose
    cost rose early, e.g. while its population converged, still grows later; None without those windows)."""
    ws = row["windows"]
    worst = max(w["cpu_ms_mean"] for w in ws)
    ref = ws[1]["cpu_ms_mean"] if len(ws) > 1 else ws[0]["cpu_ms_mean"]
    growth = ws[-1]["cpu_ms_mean"] / ref if ref > 0 else math.nan
    late = ws[3]["cpu_ms_mean"] if len(ws) > 4 else None
    plateau = ws[-1]["cpu_ms_mean"] / late if late else None
    per_try = None
    if "cpu_ms_per_try" in ws[-1]:
        ref_try = ws[1]["cpu_ms_per_try"] if len(ws) > 1 else ws[0]["cpu_ms_per_try"]
        per_try = ws[-1]["cpu_ms_per_try"] / ref_try if ref_try > 0 else math.nan
    return {"max_window_cpu_ms": worst, "growth_last_vs_500_2000": growth,
            "growth_last_vs_5000_10000": plateau, "within_10ms": worst <= GOAL_MS, "flat": bool(growth <= 1.5),
            "flat_after_5000": None if plateau is None else bool(plateau <= 1.5),
            "growth_per_try_last_vs_500_2000": per_try,
            "flat_per_try": None if per_try is None else bool(per_try <= 1.5)}


def _blas_single_thread() -> Any:
    try:
        from threadpoolctl import threadpool_limits
    except ModuleNotFoundError:  # pragma: no cover
        return None
    return threadpool_limits(limits=1, user_api="blas")


def run_one(part_name: str, name: str, *, trials: int, tpe_trials: int, seed: int, table: Path,
            mcunet_generations: int | None = None) -> dict[str, Any]:
    """Measure one strategy on one problem (in a worker process with ``--jobs``; BLAS single-threaded).
    ``mcunet_generations`` replaces ``mcunet``'s 30 generations (which end it at 3,100 trials)."""
    limiter = _blas_single_thread()
    try:
        part: Any = ChainProblem() if part_name == "chain" else NB201Problem(table)
        settings = StrategySettings(generations=mcunet_generations) \
            if name == "mcunet" and mcunet_generations else StrategySettings()
        if name == "optuna-tpe":
            n = min(trials, tpe_trials)
            if part_name == "chain":
                strat: Strategy = ChainTPE(part.space, part.problem, seed=seed)
            else:
                from tinyevo.tabular.peers import OptunaPeer

                strat = OptunaPeer(part.bench, part.space, part.problem, sampler="optuna-tpe", seed=seed)
        else:
            n = trials
            try:
                strat = STRATEGIES.create(name, part.space, part.problem, seed=seed, settings=settings) \
                    if settings.given() else STRATEGIES.create(name, part.space, part.problem, seed=seed)
            except ConfigError as exc:  # e.g. a strategy for fixed-structure spaces only
                return {"problem": part_name, "strategy": name, "skipped": str(exc)}
        start = time.perf_counter()
        res = measure(strat, part.problem, cost=part.cost, evaluate=part.evaluate, trials=n)
    finally:
        if limiter is not None:
            limiter.unregister()
    res.pop("_cpu")
    row = {"problem": part_name, "strategy": name, "requested_trials": n,
           **({"settings": settings.as_dict()} if settings.given() else {}), **res,
           "elapsed_s": time.perf_counter() - start}
    row.update(verdict(row))
    return row


def _report(row: dict[str, Any], console: Console) -> None:
    if "skipped" in row:
        console.print(f"{row['problem']:>6} {row['strategy']:>24} skipped: {row['skipped']}")
        return
    ws = " ".join(f"{w['from']}-{w['to']}:{w['cpu_ms_mean']:.2f}" for w in row["windows"])
    console.print(f"{row['problem']:>6} {row['strategy']:>24} {row['trials']:>6} trials ({row['stopped']}), "
                  f"cpu ms/trial {ws}  [{row['elapsed_s']:.0f} s]")


def write(args: argparse.Namespace, rows: list[dict[str, Any]], skipped: dict[str, str], *, complete: bool) -> None:
    """Write the JSON (also after every finished strategy, with ``complete: false``)."""
    out = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "python": platform.python_version(), "machine": platform.machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "measure": "ask() + tell() time per trial: CPU time of the thread (time.thread_time) and wall time; "
                   "BLAS single-threaded; the evaluation and the cost model are not counted",
        "goal": f"every window's mean CPU time <= {GOAL_MS:g} ms and flat (last window <= 1.5x the 500-2000 one)",
        "windows": [list(w) for w in WINDOWS],
        "problems": {
            "chain": "chain space, score = tanh(log1p(macs)/15) + 0.05 sin(w.features); hard peak_sram_bytes <= "
                     "32000, flash_bytes <= 64000 (cost model, stm32f746)",
            "nb201": "NB201 CIFAR-10 valid_acc, hard latency_ms_raspi4 <= 20 (table column)",
        },
        "finite_space": FINITE_SPACE,
        "tpe_cap": f"optuna-tpe runs at most {args.tpe_trials} trials per problem: its own overhead grows with "
                   "the number of trials (it models the whole history on every ask)",
        "skipped": skipped,
        "complete": complete,
        "results": [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
                    for r in rows],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))


def print_table(rows: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="strategy overhead: mean CPU ms per trial (ask + tell) by trial window")
    for col in ("problem", "strategy", "trials", *(f"{lo}-{hi}" for lo, hi in WINDOWS), "<=10 ms", "flat",
                "flat >5k", "tries", "flat/try"):
        table.add_column(col, justify="right")

    def yes(v: bool | None) -> str:
        return "-" if v is None else "yes" if v else "NO"

    for r in rows:
        if "skipped" in r:
            table.add_row(r["problem"], r["strategy"], "skipped", *["-"] * len(WINDOWS), "-", "-", "-", "-", "-")
            continue
        cells = [f"{w['cpu_ms_mean']:.2f}" for w in r["windows"]] + ["-"] * (len(WINDOWS) - len(r["windows"]))
        tries = " > ".join(f"{w['tries_mean']:.1f}" for w in (r["windows"][1:2] + r["windows"][-1:])
                           if "tries_mean" in w) or "-"
        table.add_row(r["problem"], r["strategy"], str(r["trials"]), *cells, yes(r["within_10ms"]), yes(r["flat"]),
                      yes(r.get("flat_after_5000")), tries, yes(r.get("flat_per_try")))
    console.print(table)


def merge(paths: list[Path], out: Path) -> None:
    """One JSON of the results of several runs of this script (each keeps its own command), e.g. the chain part
    and the NB201 part run at different times; a (problem, strategy) measured twice keeps the later file's."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for part in parts:
        for r in part["results"]:
            row = {**r, "command": part["command"], "date": part["date"]}
            if "skipped" not in row:
                row.update(verdict(row))  # the current goal check, also for files written before it changed
            rows[(r["problem"], r["strategy"])] = row
    merged = {k: v for k, v in parts[-1].items() if k not in ("command", "date", "results", "complete", "skipped")}
    merged.update({
        "commands": [p["command"] for p in parts], "merged_from": [str(p) for p in paths],
        "merge_command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "tpe_cap": "; ".join(dict.fromkeys(p["tpe_cap"] for p in parts)),
        "skipped": {k: v for p in parts for k, v in p.get("skipped", {}).items()},
        "complete": all(p.get("complete") for p in parts), "results": list(rows.values()),
    })
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(merged, indent=1))
    print_table(merged["results"], Console(width=max(Console().width, 170)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20000, help="trials per strategy on the chain space")
    ap.add_argument("--nb201-trials", type=int, default=5000, help="trials per strategy on NB201 (15,625 cells)")
    ap.add_argument("--tpe-trials", type=int, default=1000, help="cap for Optuna TPE (its overhead grows; 0: no TPE)")
    ap.add_argument("--strategies", default=None, help="comma-separated subset (default: every registered one)")
    ap.add_argument("--parts", default="chain,nb201")
    ap.add_argument("--table", type=Path, default=NB201_TABLE)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1, help="measure this many strategies at once (processes)")
    ap.add_argument("--mcunet-generations", type=int, default=None,
                    help="generations of mcunet (its own 30 end it at 3,100 trials; 200 reach 20,000)")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "strategy_overhead.json")
    ap.add_argument("--merge", type=Path, nargs="+", metavar="JSON",
                    help="measure nothing: merge these outputs of earlier runs into --out")
    args = ap.parse_args()
    if args.merge:
        merge(args.merge, args.out)
        print(f"wrote {args.out}")
        return 0

    names = args.strategies.split(",") if args.strategies else STRATEGIES.names()
    console = Console(width=max(Console().width, 150))
    skipped: dict[str, str] = {}
    jobs: list[tuple[str, str, int]] = []
    for part_name in args.parts.split(","):
        if part_name == "nb201" and not args.table.is_file():
            skipped["nb201"] = f"table {args.table} not found"
            console.print(f"nb201 skipped: {skipped['nb201']}")
            continue
        n = args.trials if part_name == "chain" else args.nb201_trials
        jobs += [(part_name, name, n) for name in [*names, *(["optuna-tpe"] if args.tpe_trials > 0 else [])]]
    kw = {"tpe_trials": args.tpe_trials, "seed": args.seed, "table": args.table,
          "mcunet_generations": args.mcunet_generations}
    if args.jobs > 1:
        import concurrent.futures as cf
        import multiprocessing as mp

        with cf.ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
            slow_first = sorted(jobs, key=lambda j: (j[0] != "chain", j[1] not in SLOW))
            futures = {pool.submit(run_one, p, n, trials=t, **kw): (p, n) for p, n, t in slow_first}
            done: dict[tuple[str, str], dict[str, Any]] = {}
            for fut in cf.as_completed(futures):
                done[futures[fut]] = fut.result()
                _report(done[futures[fut]], console)
                write(args, [done[(p, n)] for p, n, _ in jobs if (p, n) in done], skipped, complete=False)
        rows = [done[(p, n)] for p, n, _ in jobs]
    else:
        rows = []
        for p, n, t in jobs:
            rows.append(run_one(p, n, trials=t, **kw))
            _report(rows[-1], console)
            write(args, rows, skipped, complete=False)

    print_table(rows, console)
    write(args, rows, skipped, complete=True)
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
