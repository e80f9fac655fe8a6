"""Surrogate-assisted evolution: tinyevo's default strategy (``surrogate-evolution``).

How a proposal is made (after ``initial`` evaluated uniform random samples; under hard constraints, once some
trials violated a bound, each of them is the first of a few samples predicted feasible):

1. **Niche elite.** The elite are up to ``elite`` *niche leaders*: the best trial, then the next best that is at
   least ``niche_edits`` typical mutation steps away (L1 distance of ``space.features``) from every leader so
   far, and so on. Keeping leaders of several basins stops the search from collapsing onto one local optimum.
2. **Breed.** Whenever a trial becomes a leader, its offspring join a pool of unseen candidates: ``mutants``
   one-edit mutants, as many two-edit mutants and ``crossovers`` crossover children with other leaders, plus
   ``random_pool`` uniform samples.
3. **Screen.** A cheap predictor -- kernel ridge regression with a degree-2 polynomial kernel on
   ``space.features`` (every pairwise gene interaction), fitted to the rank-transformed fitness of the evaluated
   trials (at most ``max_train``: the best half and the most recent) -- scores the whole pool; the
   best-predicted candidate is proposed.
4. **Local search on stagnation.** After ``patience`` evaluations without improvement, the unseen one-edit
   neighbours of the first leader whose neighbourhood is not yet exhausted are proposed (best-predicted first),
   and fresh uniform samples join the pool on every stagnant step. So a leader's neighbourhood is searched
   exhaustively before the search moves on to the next niche.
5. **Exploration.** With probability ``explore`` a proposal is a uniform random sample (under hard constraints:
   the first of a few samples predicted feasible).

Only the space protocol (``sample``, ``mutate``, ``crossover``, ``features``) and told trials are used, so the
strategy works on every registered space. Hard constraints: infeasible trials are told with their cost metrics,
so one more predictor per hard constraint learns that metric from all trials; candidates predicted to violate a
bound rank behind those predicted feasible (ordered by predicted violation). Failed trials are never re-asked
and do not enter the fitness model. Deterministic given ``seed`` (one ``numpy.random.Generator``; ask depends
only on the seed and the trials told), so :func:`~tinyevo.strategies.base.replay` rebuilds the state.

Overhead per trial is bounded, whatever the number of trials: models are refitted once their data has grown by
``refit_fraction`` of the training-set size (and at once when a hard bound first bites), predictions for the pool
are cached in between, and the leaders and the best half come from sorted lists of bounded length
(``benchmarks/strategy_overhead.py``; docs/strategies.md).

Measured on NB201 CIFAR-10 ``valid_acc``, seeds 0..199 (``python benchmarks/nb201_strategies.py``): mean best
91.587 / optimum found in 94.5 % of seeds at 100 queries, 91.6067 / 100 % at 300 (Optuna TPE: 91.539 / 50 % and
91.590 / 96.5 %).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np

from tinyevo.errors import ConfigError, SearchExhaustedError
from tinyevo.spaces.base import Genome, SearchSpace
from tinyevo.strategies.base import STRATEGIES, Candidate, Constraint, Problem, Status, Trial, fitness
from tinyevo.strategies.settings import StrategySettings, check_settings, register_settings


# --- predictors --------------------------------------------------------------------------------------------------
class FittedModel(Protocol):
    def predict(self, x: np.ndarray) -> np.ndarray: ...


class Predictor(Protocol):
    """Configuration of a regression model; ``fit`` returns the fitted model (the predictor itself is immutable)."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> FittedModel: ...


@dataclass(frozen=True)
class PolyKernelRidge:
    """Kernel ridge regression with kernel ``(1 + <u, v> / d) ** degree`` on standardised features.

    Degree 2 models every pairwise feature interaction (for one-hot genomes: pairs of gene choices) through an
    ``n x n`` solve, cheap for the few hundred trials of a search and independent of the feature length.
    """

    degree: int = 2
    alpha: float = 0.3

    def __post_init__(self) -> None:
        if self.degree < 1:
            raise ConfigError(f"kernel degree must be >= 1, got {self.degree}")
        if self.alpha <= 0:
            raise ConfigError(f"ridge alpha must be > 0, got {self.alpha}")

    def fit(self, x: np.ndarray, y: np.ndarray) -> _FittedKernelRidge:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        mean = x.mean(axis=0)
        std = x.std(axis=0)
        keep = std > 1e-12
        scale = np.where(keep, std, 1.0)
        z = np.where(keep, (x - mean) / scale, 0.0)
        d = max(int(keep.sum()), 1)
        k = (1.0 + z @ z.T / d) ** self.degree
        y_mean = float(y.mean())
        k[np.diag_indices_from(k)] += self.alpha
        try:
            coef = np.linalg.solve(k, y - y_mean)
        except np.linalg.LinAlgError:  # pragma: no cover - alpha > 0 makes k positive definite
            coef = np.linalg.lstsq(k, y - y_mean, rcond=None)[0]
        return _FittedKernelRidge(mean, scale, keep, d, self.degree, z, coef, y_mean)


@dataclass(frozen=True, eq=False)
class _FittedKernelRidge:
    mean: np.ndarray
    scale: np.ndarray
    keep: np.ndarray
    d: int
    degree: int
    z: np.ndarray
    coef: np.ndarray
    y_mean: float

    @cached_property
    def _primal(self) -> tuple[float, np.ndarray, np.ndarray]:
        """Weights of the primal form of the quadratic kernel, computed once per fitted model."""
        return float(self.coef.sum()), self.z.T @ self.coef, (self.z * self.coef[:, None]).T @ self.z

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = np.where(self.keep, (np.asarray(x, dtype=np.float64) - self.mean) / self.scale, 0.0)
        n, d = self.z.shape
        if self.degree == 2 and d * d <= n * d * 2:
            # primal form of the quadratic kernel: sum_i c_i (1 + z.z_i/d)^2 = c0 + 2/d z.w1 + 1/d^2 z'W2 z
            c0, w1, w2 = self._primal
            q = np.einsum("ij,ij->i", z @ w2, z)
            return c0 + (2.0 / self.d) * (z @ w1) + q / (self.d * self.d) + self.y_mean
        return ((1.0 + z @ self.z.T / self.d) ** self.degree) @ self.coef + self.y_mean


def rank_gauss(y: np.ndarray) -> np.ndarray:
    """Ranks (ties averaged) mapped to standard-normal quantiles: insensitive to outliers such as broken nets."""
    from scipy.special import ndtri

    y = np.asarray(y, dtype=np.float64)
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    mid = upper - (counts - 1) / 2.0  # average 1-based rank of each distinct value
    return ndtri((mid[inverse] - 0.5) / len(y))


# --- internal state ----------------------------------------------------------------------------------------------
class _FeatureBank:
    """Feature vectors of the told genomes, computed once each, stored row-wise in a growing matrix (candidates
    that were never told carry their own, :class:`_Entry`, so the bank grows with the trials only)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.rows: dict[str, int] = {}
        self._buf = np.zeros((0, 0))
        self._n = 0

    def features(self, genome: Genome) -> np.ndarray:
        return np.asarray(self.space.features(genome), dtype=np.float64).ravel()

    def row(self, key: str, genome: Genome, x: np.ndarray | None = None) -> int:
        """The row of ``key``; a new one holds ``x`` (the genome's features, computed when not given)."""
        r = self.rows.get(key)
        if r is not None:
            return r
        f = self.features(genome) if x is None else x
        if self._n == 0:
            self._buf = np.zeros((256, f.size))
        elif f.size != self._buf.shape[1]:
            raise ConfigError(
                f"space {getattr(self.space, 'name', '?')!r} returned features of length {f.size} after "
                f"{self._buf.shape[1]}; features() must have a fixed length"
            )
        if self._n == self._buf.shape[0]:
            self._buf = np.concatenate([self._buf, np.zeros_like(self._buf)])
        self._buf[self._n] = f
        self.rows[key] = self._n
        self._n += 1
        return self._n - 1

    def matrix(self, rows: list[int]) -> np.ndarray:
        return self._buf[np.asarray(rows, dtype=np.int64)]


@dataclass(frozen=True, eq=False)
class _Entry:
    genome: Genome
    parents: tuple[str, ...]
    origin: str
    x: np.ndarray  # the genome's features


@dataclass(frozen=True)
class _Told:
    trial: Trial
    genome: Genome
    row: int


class _TopList:
    """The indices of the ``size`` best scores offered so far, best first (ties: the earlier offered first).

    An offer costs O(log size) comparisons plus one list insertion of at most ``size`` items, however many
    scores were offered before; ``version`` changes whenever the list does.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: list[tuple[float, int]] = []  # (-score, index), ascending = best first
        self.version = 0

    def offer(self, score: float, index: int) -> None:
        """Offer ``score`` of item ``index`` (indices must increase from offer to offer; NaN counts as -inf)."""
        item = (math.inf if math.isnan(score) else -score, index)
        if len(self._items) >= self.size and item >= self._items[-1]:
            return
        bisect.insort(self._items, item)
        del self._items[self.size :]
        self.version += 1

    def indices(self) -> list[int]:
        return [i for _, i in self._items]


class _Pool:
    """The bred candidates not yet asked, in insertion order (a dict's order: a key added again goes last).

    Their features are rows of one matrix, and beside them, per model (the fitness model, then one per hard
    constraint), each row's prediction and the version of the model that made it. So a refit re-predicts the
    pool for the refitted model only, and the best-predicted candidate is a few array operations, not a pass in
    Python over thousands of keys on every ask. Removed rows are dropped from the matrix once they are the
    majority.
    """

    def __init__(self, models: int) -> None:
        self._models = models
        self._slot: dict[str, int] = {}  # key -> row, in insertion order
        self._keys: list[str] = []
        self._entries: list[_Entry | None] = []
        self.x = np.zeros((0, 0))
        self.pred = np.zeros((0, models))
        self.version = np.zeros((0, models), dtype=np.int64)  # 0: not predicted (model versions start at 1)
        self._alive = np.zeros(0, dtype=bool)

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, key: object) -> bool:
        return key in self._slot

    def __iter__(self) -> Iterator[str]:
        return iter(self._slot)

    def add(self, key: str, entry: _Entry) -> None:
        n = len(self._keys)
        if n == self._alive.size:
            cap = max(256, 2 * n)
            x = np.zeros((cap, entry.x.size))
            pred = np.zeros((cap, self._models))
            version = np.zeros((cap, self._models), dtype=np.int64)
            alive = np.zeros(cap, dtype=bool)
            if n:
                x[:n], pred[:n], version[:n], alive[:n] = self.x[:n], self.pred[:n], self.version[:n], self._alive[:n]
            self.x, self.pred, self.version, self._alive = x, pred, version, alive
        self.x[n] = entry.x
        self.version[n] = 0
        self._alive[n] = True
        self._keys.append(key)
        self._entries.append(entry)
        self._slot[key] = n

    def pop(self, key: str, default: _Entry | None = None) -> _Entry | None:
        i = self._slot.pop(key, None)
        if i is None:
            return default
        entry = self._entries[i]
        self._entries[i] = None
        self._alive[i] = False
        return entry

    def rows(self) -> np.ndarray:
        """The rows of the candidates, in insertion order (compacted first when most rows were removed)."""
        n = len(self._keys)
        if n > 256 and 2 * len(self._slot) < n:
            keep = np.flatnonzero(self._alive[:n])
            m = keep.size
            self.x[:m], self.pred[:m], self.version[:m] = self.x[keep], self.pred[keep], self.version[keep]
            self._alive[:m], self._alive[m:] = True, False
            self._keys = [self._keys[int(i)] for i in keep]
            self._entries = [self._entries[int(i)] for i in keep]
            self._slot = {k: i for i, k in enumerate(self._keys)}
        return np.flatnonzero(self._alive[: len(self._keys)])

    def key(self, row: int) -> str:
        return self._keys[row]


class SurrogateEvolution:
    """Evolution whose offspring are screened by a cheap surrogate before evaluation (see the module doc).

    Options (keyword-only): ``initial`` random samples before the surrogate is used (>= 2); ``elite`` niche
    leaders that breed; ``niche_edits`` minimum distance between leaders in typical one-edit mutation steps
    (0 = plain top-``elite``); ``mutants`` one-edit (and as many two-edit) mutants per leader; ``crossovers``
    children per leader; ``random_pool`` uniform samples added when a leader changes or the search stagnates;
    ``patience`` evaluations without improvement before local search; ``explore`` probability of a uniform
    random proposal; ``predictor`` (default :class:`PolyKernelRidge`); ``max_retries`` sampling attempts
    before :class:`~tinyevo.errors.SearchExhaustedError`; ``max_train`` trials a model is fitted on (the fit
    is cubic in it; the niche leaders are also chosen among the best ``max_train`` evaluated trials);
    ``max_pool`` candidates kept (beyond it the worst-predicted half is dropped); ``refit_fraction``: a model
    is refitted once its data has grown by this fraction of its training-set size (at least one trial; 0 =
    on every ask), and its predictions for the pool are cached until then.
    """

    def __init__(
        self,
        space: SearchSpace,
        problem: Problem,
        *,
        seed: int = 0,
        initial: int = 20,
        elite: int = 5,
        mutants: int = 48,
        crossovers: int = 8,
        random_pool: int = 64,
        patience: int = 10,
        explore: float = 0.2,
        predictor: Predictor | None = None,
        max_retries: int = 200,
        niche_edits: float = 3.0,
        max_train: int = 400,
        max_pool: int = 4000,
        refit_fraction: float = 0.02,
    ) -> None:
        if initial < 2:
            raise ConfigError(f"surrogate-evolution needs initial >= 2 random trials, got {initial}")
        if elite < 1 or mutants < 1 or crossovers < 0 or random_pool < 0 or patience < 1 or max_retries < 1:
            raise ConfigError(
                "surrogate-evolution needs elite, mutants, patience, max_retries >= 1 and crossovers, "
                "random_pool >= 0"
            )
        if max_train < 4 or max_pool < 2:
            raise ConfigError(f"max_train must be >= 4 and max_pool >= 2, got {max_train}, {max_pool}")
        if niche_edits < 0:
            raise ConfigError(f"niche_edits must be >= 0, got {niche_edits}")
        if not 0.0 <= explore <= 1.0:
            raise ConfigError(f"explore must be a probability in [0, 1], got {explore}")
        if not 0.0 <= refit_fraction <= 1.0:
            raise ConfigError(f"refit_fraction must be in [0, 1], got {refit_fraction}")
        self.space = space
        self.problem = problem
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.initial = initial
        self.elite = elite
        self.mutants = mutants
        self.crossovers = crossovers
        self.random_pool = random_pool
        self.patience = patience
        self.explore = explore
        self.predictor: Predictor = predictor if predictor is not None else PolyKernelRidge()
        self.max_retries = max_retries
        self.niche_edits = niche_edits
        self.max_train = max_train
        self.max_pool = max_pool
        self.refit_fraction = refit_fraction
        self._radius: float | None = None  # niche radius in feature space (L1), set on first use

        self._bank = _FeatureBank(space)
        self._seen: set[str] = set()
        self._pool = _Pool(1 + len(problem.hard_constraints))
        self._asked: dict[str, _Entry] = {}  # proposals from the pool not yet told (their features)
        self._told: list[_Told] = []
        self._scored_rows: list[int] = []  # evaluated trials with a finite fitness: feature rows ...
        self._scored_y: list[float] = []  # ... and fitness
        self._top_ok = _TopList(max(max_train, 20))  # best evaluated trials (indices into _told): elite scan
        self._top_scored = _TopList(max_train // 2)  # best fitness (indices into _scored_*): the fit's best half
        self._elite_cache: tuple[int, list[_Told]] | None = None  # (_top_ok.version, leaders)
        self._model: FittedModel | None = None  # the fitness model and ...
        self._model_n = 0  # ... the number of scored trials when it was fitted
        # per hard constraint: (values when fitted, model or None while the bound never bit, log scale)
        n_hard = len(problem.hard_constraints)
        self._cmodels: list[tuple[int, FittedModel | None, bool]] = [(0, None, False)] * n_hard
        self._last_bite = [-1] * n_hard  # index of the latest value beyond the bound
        self._scores: dict[str, float] = {}  # ranking score of local-search candidates under the current models
        self._versions = [0] * (1 + len(problem.hard_constraints))  # of the fitness model, then each constraint's
        self._best = -math.inf
        self._stagnant = 0  # evaluations since the best fitness last improved
        self._bred: set[str] = set()  # elite members whose offspring went into the pool
        self._neighbours: dict[str, dict[str, _Entry]] = {}  # incumbent -> its unseen one-edit neighbours
        self._exhausted: set[str] = set()  # incumbents whose neighbourhood sampling finds nothing new
        self._generation = 0
        self._constraint_data: list[tuple[list[int], list[float]]] = [([], []) for _ in problem.hard_constraints]

    # --- protocol --------------------------------------------------------------------------------------------
    def ask(self) -> Candidate:
        self._generation += 1
        if len(self._scored_y) < self.initial:
            return self._explore()
        if self.rng.random() < self.explore:
            return self._explore()
        self._breed()
        model = self._refresh()
        if self._stagnant >= self.patience:
            for _ in range(self.random_pool // 4):
                self._add(self.space.sample(self.rng), (), "random")
            if len(self._pool) > self.max_pool:  # a long stagnation keeps adding: forget the least promising half
                self._pool_best(model)
            local = self._local()
            if local:
                return self._take(local, self._best_key(local, model))
        if not self._pool:
            return self._random()
        return self._take(self._pool, self._pool_best(model))

    def tell(self, candidate: Candidate, trial: Trial) -> None:
        key = str(candidate.genome)
        self._seen.add(key)
        entry = self._pool.pop(key, None) or self._asked.pop(key, None)
        row = self._bank.row(key, candidate.genome, None if entry is None else entry.x)
        self._told.append(_Told(trial, candidate.genome, row))
        pairs = zip(self.problem.hard_constraints, self._constraint_data, strict=True)
        for i, (c, (rows, values)) in enumerate(pairs):
            v = trial.metrics.get(c.metric)
            if v is not None and math.isfinite(v):
                if _bites(c, float(v)):
                    self._last_bite[i] = len(values)
                rows.append(row)
                values.append(float(v))
        if trial.status is Status.INFEASIBLE:
            return  # never evaluated: costs no budget, says nothing about fitness
        f = fitness(self.problem, trial)
        if trial.status is Status.OK:
            self._top_ok.offer(f, len(self._told) - 1)
        if math.isfinite(f):
            self._top_scored.offer(f, len(self._scored_y))
            self._scored_rows.append(row)
            self._scored_y.append(f)
        if f > self._best:
            self._best, self._stagnant = f, 0
        else:
            self._stagnant += 1

    # --- proposals -------------------------------------------------------------------------------------------
    def _random(self) -> Candidate:
        for _ in range(self.max_retries):
            g = self.space.sample(self.rng)
            key = str(g)
            if key not in self._seen:
                self._seen.add(key)
                self._pool.pop(key, None)
                return Candidate(g, generation=self._generation, origin="random")
        if self._pool:  # sampling finds only seen genomes: fall back on the bred pool
            return self._take(self._pool, next(iter(self._pool)))
        raise SearchExhaustedError(
            f"surrogate-evolution found no unseen genome in {self.max_retries} samples after {len(self._seen)} "
            "proposals; the search space looks exhausted"
        )

    def _explore(self) -> Candidate:
        """A uniform random proposal; under hard constraints, the first of a few samples predicted feasible."""
        if not self.problem.hard_constraints:
            return self._random()
        draws: dict[str, Genome] = {}
        for _ in range(self.max_retries):
            g = self.space.sample(self.rng)
            key = str(g)
            if key not in self._seen:
                draws.setdefault(key, g)
                if len(draws) == 16:
                    break
        if not draws:
            return self._random()
        keys = list(draws)
        self._refresh_constraints()
        if not any(m is not None for _, m, _ in self._cmodels):
            pick = 0  # no model to screen with: the first draw, as before
        else:
            x = np.stack([self._bank.features(draws[k]) for k in keys])
            viol = self._predicted_violation(x)
            pick = 0 if viol is None else int(np.argmax(viol <= 0) if (viol <= 0).any() else np.argmin(viol))
        key = keys[pick]
        self._seen.add(key)
        self._pool.pop(key, None)
        return Candidate(draws[key], generation=self._generation, origin="random")

    def _take(self, pool: dict[str, _Entry] | _Pool, key: str) -> Candidate:
        e = pool.pop(key)
        assert e is not None
        self._pool.pop(key, None)
        self._seen.add(key)
        self._asked[key] = e  # its features, until it is told
        return Candidate(e.genome, parents=e.parents, generation=self._generation, origin=e.origin)

    def _entry(self, g: Genome, parents: tuple[str, ...], origin: str) -> _Entry:
        return _Entry(g, parents, origin, self._bank.features(g))

    def _add(self, g: Genome, parents: tuple[str, ...], origin: str) -> None:
        key = str(g)
        if key in self._seen or key in self._pool:
            return
        self._pool.add(key, self._entry(g, parents, origin))

    def _breed(self) -> None:
        elite = self._elite()
        fresh = [t for t in elite if t.trial.genome not in self._bred]
        for t in fresh:
            self._bred.add(t.trial.genome)
            parent = (t.trial.genome,)
            for _ in range(self.mutants):
                self._add(self.space.mutate(t.genome, self.rng), parent, "mutation")
            for _ in range(self.mutants):
                self._add(self.space.mutate(self.space.mutate(t.genome, self.rng), self.rng), parent, "mutation")
            if len(elite) > 1:
                for _ in range(self.crossovers):
                    mate = elite[int(self.rng.integers(len(elite)))]
                    if mate.trial.genome != t.trial.genome:
                        child = self.space.crossover(t.genome, mate.genome, self.rng)
                        self._add(child, (t.trial.genome, mate.trial.genome), "crossover")
        if fresh:
            for _ in range(self.random_pool):
                self._add(self.space.sample(self.rng), (), "random")

    def _elite(self) -> list[_Told]:
        """The niche leaders: up to ``elite`` best trials, pairwise at least ``niche_edits`` typical edits apart.

        Greedy in rank order: a trial joins when it is far enough (L1 distance of features) from every leader so
        far. The radius is ``niche_edits`` times the mean feature distance of a one-edit mutation, measured once.
        The scan covers the best ``max(max_train, 20)`` evaluated trials (kept sorted as trials are told), and the
        leaders are recomputed only when that list changed, so the cost does not grow with the number of trials.
        """
        if self._elite_cache is not None and self._elite_cache[0] == self._top_ok.version:
            return self._elite_cache[1]
        ok = [self._told[i] for i in self._top_ok.indices()]
        if not ok:
            return []
        x = self._bank.matrix([t.row for t in ok])
        if self._radius is None:
            sample = ok[:20]
            moved = np.array([self.space.features(self.space.mutate(t.genome, self.rng)) for t in sample], float)
            self._radius = self.niche_edits * float(np.abs(x[: len(sample)] - moved).sum(axis=1).mean())
        leaders: list[_Told] = []
        gap = np.full(len(ok), np.inf)  # L1 distance of each trial to its nearest leader
        i = 0
        while i < len(ok) and len(leaders) < self.elite:
            leaders.append(ok[i])
            gap = np.minimum(gap, np.abs(x - x[i]).sum(axis=1))
            far = np.flatnonzero(gap[i + 1 :] >= self._radius - 1e-9)
            if far.size == 0:
                break
            i += 1 + int(far[0])
        self._elite_cache = (self._top_ok.version, leaders)
        return leaders

    def _local(self) -> dict[str, _Entry]:
        """Unseen one-edit neighbours of the first niche leader whose neighbourhood is not exhausted."""
        for t in self._elite():
            name = t.trial.genome
            if name in self._exhausted:
                continue
            found = self._neighbours.setdefault(name, {})
            for key in [k for k in found if k in self._seen]:
                del found[key]
            if not found:
                for _ in range(self.mutants):
                    g = self.space.mutate(t.genome, self.rng)
                    key = str(g)
                    if key not in self._seen and key not in found:
                        found[key] = self._entry(g, (name,), "mutation")
            if found:
                return found
            self._exhausted.add(name)
        return {}

    # --- surrogate -------------------------------------------------------------------------------------------
    def _due(self, n: int, fitted: int) -> bool:
        """Whether a model fitted when its data had ``fitted`` rows is due for a refit at ``n`` rows."""
        return n - fitted >= max(1, int(self.refit_fraction * min(n, self.max_train)))

    def _refresh(self) -> FittedModel:
        """The fitness model, refitted when due; the constraint models likewise (see :meth:`_fit`)."""
        n = len(self._scored_y)
        if self._model is None or self._due(n, self._model_n):
            self._model = self._fit()
            self._model_n = n
            self._versions[0] += 1
            self._scores.clear()
        self._refresh_constraints()
        return self._model

    def _fit(self) -> FittedModel:
        """The fitness model on (at most ``max_train``) evaluated trials: the best half and the most recent.

        The training set is assembled from the kept best-half list and the tail of the trial list, so its cost
        is bounded by ``max_train`` whatever the number of trials.
        """
        n = len(self._scored_y)
        if n <= self.max_train:
            keep = list(range(n))
        else:
            best = self._top_scored.indices()
            chosen = set(best)
            keep = best + [i for i in range(n - (self.max_train - len(best)), n) if i not in chosen]
        rows = [self._scored_rows[i] for i in keep]
        y = np.array([self._scored_y[i] for i in keep])
        return self.predictor.fit(self._bank.matrix(rows), rank_gauss(y))

    def _refresh_constraints(self) -> None:
        """Refit each hard constraint's model when due, or at once when its bound bites for the first time.

        A model is fitted to that metric of the most recent ``max_train`` trials that report it (infeasible ones
        included: the driver records their cost metrics), only while the bound bit in that window; positive
        metrics (sizes, latencies) are modelled on a log scale.
        """
        pairs = zip(self.problem.hard_constraints, self._constraint_data, strict=True)
        for i, (c, (rows, values)) in enumerate(pairs):
            n = len(values)
            fitted, model, log = self._cmodels[i]
            if n < 2 or n == fitted:
                continue
            if not (self._due(n, fitted) or (model is None and self._last_bite[i] >= fitted)):
                continue
            if self._last_bite[i] < max(0, n - self.max_train):  # never bit in the window: nothing to avoid
                new: tuple[int, FittedModel | None, bool] = (n, None, False)
            else:
                v = np.asarray(values[-self.max_train :])
                log = bool((v > 0).all())
                target = np.log(v) if log else v
                new = (n, self.predictor.fit(self._bank.matrix(rows[-self.max_train :]), target), log)
            if model is not None or new[1] is not None:
                self._scores.clear()
                self._versions[1 + i] += 1
            self._cmodels[i] = new

    def _best_key(self, pool: dict[str, _Entry], model: FittedModel) -> str:
        """The best-predicted key of a local-search ``pool``; predictions are cached per genome until a model is
        refitted."""
        keys = list(pool)
        missing = [k for k in keys if k not in self._scores]
        if missing:
            x = np.stack([pool[k].x for k in missing])
            predicted = self._ranking(model.predict(x), [None if m is None else m.predict(x)
                                                         for _, m, _ in self._cmodels])
            self._scores.update(zip(missing, predicted.tolist(), strict=True))
        score = np.fromiter((self._scores[k] for k in keys), dtype=np.float64, count=len(keys))
        return keys[int(np.argmax(score))]

    def _pool_best(self, model: FittedModel) -> str:
        """The best-predicted key of the pool (the first one on ties); beyond ``max_pool`` candidates the
        least promising are dropped, down to half of it. Only rows a model has not predicted since its last
        refit are predicted (by that model)."""
        pool = self._pool
        rows = pool.rows()
        for j, m in enumerate([model, *(m for _, m, _ in self._cmodels)]):
            if m is None:
                continue
            stale = rows[pool.version[rows, j] != self._versions[j]]
            if stale.size:
                pool.pred[stale, j] = m.predict(pool.x[stale])
                pool.version[stale, j] = self._versions[j]
        score = self._ranking(pool.pred[rows, 0], [None if m is None else pool.pred[rows, 1 + i]
                                                   for i, (_, m, _) in enumerate(self._cmodels)])
        best = pool.key(int(rows[int(np.argmax(score))]))
        if len(rows) > self.max_pool:  # forget the least promising half
            for i in np.argsort(score, kind="stable")[: len(rows) - self.max_pool // 2]:
                pool.pop(pool.key(int(rows[int(i)])))
        return best

    def _ranking(self, predicted: np.ndarray, constraints: list[np.ndarray | None]) -> np.ndarray:
        """Ranking scores: feasible-predicted candidates first (by predicted fitness), then by smaller predicted
        violation (``constraints``: each hard constraint's predictions, None without a model)."""
        viol = self._violation(constraints)
        return predicted if viol is None else np.where(viol > 0, -1e9 - viol, predicted)

    def _predicted_violation(self, x: np.ndarray) -> np.ndarray | None:
        """Predicted total hard-constraint violation of each row of ``x`` (None without useful models)."""
        return self._violation([None if m is None else m.predict(x) for _, m, _ in self._cmodels])

    def _violation(self, predictions: list[np.ndarray | None]) -> np.ndarray | None:
        """Total hard-constraint violation from each constraint model's predictions (None: no model)."""
        total: np.ndarray | None = None
        for c, (_, model, log), pred in zip(self.problem.hard_constraints, self._cmodels, predictions, strict=True):
            if model is None or pred is None:
                continue
            if log:
                pred = np.exp(np.minimum(pred, 700.0))
            over = np.zeros(len(pred))
            if c.upper is not None:
                over += np.maximum(pred - c.upper, 0.0) / max(abs(c.upper), 1e-12)
            if c.lower is not None:
                over += np.maximum(c.lower - pred, 0.0) / max(abs(c.lower), 1e-12)
            total = over if total is None else total + over
        return total


def _bites(c: Constraint, v: float) -> bool:
    """Whether value ``v`` is beyond one of the constraint's bounds."""
    return (c.upper is not None and v > c.upper) or (c.lower is not None and v < c.lower)


SETTINGS = ("initial", "elite", "niche_edits", "mutants", "crossovers", "random_pool", "patience", "explore",
            "max_train", "max_pool", "refit_fraction")
"""The ``[strategy_options]`` of ``surrogate-evolution``: :class:`SurrogateEvolution`'s keyword arguments."""


@STRATEGIES.register("surrogate-evolution", help="surrogate-screened evolution (kernel ridge); tinyevo's default")
def surrogate_evolution(space: SearchSpace, problem: Problem, *, seed: int = 0,
                        settings: StrategySettings = StrategySettings()) -> SurrogateEvolution:
    """Surrogate-assisted evolution: the defaults, with the given ``settings`` over them."""
    check_settings("surrogate-evolution", settings)
    return SurrogateEvolution(space, problem, seed=seed, **{name: getattr(settings, name)
                                                            for name in settings.given()})


register_settings("surrogate-evolution", SETTINGS)
