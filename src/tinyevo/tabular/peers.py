"""Optuna samplers as peer strategies for tabular benchmarks (``optuna-tpe``, ``optuna-nsga2``).

They search the benchmark's categorical genes (one categorical parameter per NB201 edge / NAS-Bench-Macro layer)
through Optuna's ask / tell interface and are wrapped as tinyevo :class:`~tinyevo.strategies.base.Strategy`
objects, so the bench runner drives them exactly like tinyevo's own strategies. Optuna is a benchmark-only extra
(``pip install tinyevo[bench]``); it is imported lazily.

Rules, the same as for tinyevo's strategies: a genome is evaluated at most once. When the sampler proposes an
already-told genome, it is told the known value at once, for free (no evaluation), and asked again; a bounded
number of such repeats ends the search with :class:`~tinyevo.errors.SearchExhaustedError`. Infeasible trials
(hard constraint violated, never evaluated) are told to Optuna with the worst value seen so far and their
violation as an Optuna constraint value (``Trial.set_constraint``, or ``constraints_func`` on Optuna 4), so both samplers handle them as constrained samplers do.
"""

from __future__ import annotations

import math
from typing import Any

from tinyevo.errors import ConfigError, SearchExhaustedError
from tinyevo.problem import Problem
from tinyevo.spaces.base import SearchSpace
from tinyevo.strategies.base import fitness
from tinyevo.tabular.benchmarks import TabularBenchmark
from tinyevo.trial import Candidate, Status, Trial

PEERS: tuple[str, ...] = ("optuna-tpe", "optuna-nsga2")
_VIOLATION = "tinyevo_violation"


def import_optuna() -> Any:
    try:
        import optuna
    except ModuleNotFoundError:
        raise ConfigError(
            "the optuna-* peer strategies need optuna, a benchmark-only extra: pip install 'tinyevo[bench]' "
            "(or pip install optuna)"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # library code stays quiet
    return optuna


def _constraints(trial: Any) -> list[float]:
    return [float(trial.user_attrs.get(_VIOLATION, 0.0))]


class OptunaPeer:
    """An Optuna sampler driven through ask / tell over a benchmark's categorical genes."""

    def __init__(
        self,
        benchmark: TabularBenchmark,
        space: SearchSpace,
        problem: Problem,
        *,
        sampler: str,
        seed: int,
        max_repeats: int = 1000,
    ) -> None:
        optuna = import_optuna()
        self._constrained = bool(problem.hard_constraints)
        # Optuna >= 5 takes constraint values per trial (Trial.set_constraint); Optuna 4 through constraints_func
        self._native = hasattr(optuna.trial.Trial, "set_constraint")
        kw: dict[str, Any] = {"seed": seed}
        if self._constrained and not self._native:
            kw["constraints_func"] = _constraints
        if sampler == "optuna-tpe":
            smp = optuna.samplers.TPESampler(**kw)
        elif sampler == "optuna-nsga2":
            smp = optuna.samplers.NSGAIISampler(**kw)
        else:
            raise ConfigError(f"unknown Optuna peer {sampler!r}; known: {', '.join(PEERS)}")
        self.name = sampler
        self.benchmark = benchmark
        self.space = space
        self.problem = problem
        self.max_repeats = max_repeats
        direction = "maximize"  # tinyevo fitness is always maximised
        self.study = optuna.create_study(direction=direction, sampler=smp)
        self._dists = {
            f"g{i}": optuna.distributions.CategoricalDistribution(list(choices))
            for i, choices in enumerate(benchmark.genes)
        }
        self._told: dict[str, tuple[float, float]] = {}  # genome -> (value told to Optuna, violation)
        self._pending: dict[str, Any] = {}  # genome -> Optuna trial awaiting tell
        self._worst = math.inf
        self._asked = 0

    def ask(self) -> Candidate:
        for _ in range(self.max_repeats):
            ot = self.study.ask(self._dists)
            key = self.benchmark.genome_string([ot.params[f"g{i}"] for i in range(len(self._dists))])
            known = self._told.get(key)
            if known is not None:  # a repeat: tell the known outcome for free, ask again
                self._set_violation(ot, known[1])
                self.study.tell(ot, known[0])
                continue
            if key in self._pending:
                self.study.tell(ot, state=_trial_state().FAIL)
                continue
            self._pending[key] = ot
            self._asked += 1
            return Candidate(self.space.parse(key), generation=self._asked, origin=self.name)
        raise SearchExhaustedError(
            f"{self.name} proposed only already-seen genomes {self.max_repeats} times in a row"
        )

    def tell(self, candidate: Candidate, trial: Trial) -> None:
        key = str(candidate.genome)
        ot = self._pending.pop(key, None)
        if ot is None:
            raise ConfigError(f"{self.name} was told a genome it did not propose: {key}")
        if trial.status is Status.FAILED:
            self.study.tell(ot, state=_trial_state().FAIL)
            self._told[key] = (self._worst if math.isfinite(self._worst) else 0.0, 0.0)
            return
        if trial.status is Status.INFEASIBLE:
            value = self._worst if math.isfinite(self._worst) else 0.0
            violation = max(float(trial.violation), 1e-9)
        else:
            value = fitness(self.problem, trial)
            violation = 0.0
            if not math.isfinite(value):
                value = self._worst if math.isfinite(self._worst) else 0.0
            self._worst = min(self._worst, value)
        self._set_violation(ot, violation)
        self.study.tell(ot, value)
        self._told[key] = (value, violation)

    def _set_violation(self, ot: Any, violation: float) -> None:
        if not self._constrained:
            return
        if self._native:
            ot.set_constraint("violation", violation)
        else:
            ot.set_user_attr(_VIOLATION, violation)


def _trial_state() -> Any:
    from optuna.trial import TrialState

    return TrialState
