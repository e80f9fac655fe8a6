"""Pareto dominance, in one place: the domination matrix, non-dominated sorting and the Pareto front of trials.

Objectives are *maximised* scores (:meth:`tinyevo.problem.Objective.score` turns a ``min`` metric into its
negation and a missing one into ``-inf``). NSGA-II (:mod:`tinyevo.strategies.nsga2`) ranks populations with
:func:`non_dominated_sort`; the run (:mod:`tinyevo.run.retraining`, :mod:`tinyevo.run.view`) picks its Pareto models with
:func:`pareto_front`. Framework-free (numpy only).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tinyevo.problem import Objective
from tinyevo.trial import Status, Trial

__all__ = ["dominance_matrix", "non_dominated_sort", "pareto_front"]


def dominance_matrix(objectives: np.ndarray, cv: np.ndarray | None = None) -> np.ndarray:
    """``D[i, j]``: ``i`` (constraint-)dominates ``j``: no objective worse and one better (objectives maximised).

    With ``cv`` (ordinal constraint violation, 0 = feasible), Deb's constraint-domination: ``i`` dominates ``j``
    when ``cv_i < cv_j``, or both are feasible and ``i`` Pareto-dominates ``j``."""
    f = np.asarray(objectives, dtype=np.float64)
    n = len(f)
    ge = np.all(f[:, None, :] >= f[None, :, :], axis=2)
    gt = np.any(f[:, None, :] > f[None, :, :], axis=2)
    pareto = ge & gt
    if cv is None:
        return pareto
    c = np.asarray(cv, dtype=np.float64).reshape(n)
    feasible = c <= 0
    return (c[:, None] < c[None, :]) | (feasible[:, None] & feasible[None, :] & pareto)


def non_dominated_sort(objectives: np.ndarray, cv: np.ndarray | None = None) -> list[np.ndarray]:
    """Fronts (arrays of indices, best front first) of the (constraint-)domination order."""
    d = dominance_matrix(objectives, cv)
    n = len(d)
    dominated_by = d.sum(axis=0).astype(np.int64)  # how many members dominate j
    remaining = np.ones(n, dtype=bool)
    fronts: list[np.ndarray] = []
    while remaining.any():
        front = np.flatnonzero(remaining & (dominated_by == 0))
        fronts.append(front)
        remaining[front] = False
        dominated_by -= d[front].sum(axis=0)
    return fronts


def pareto_front(trials: Sequence[Trial], objectives: Sequence[Objective]) -> list[Trial]:
    """Non-dominated ``ok`` trials with a first objective (first occurrence of equal points kept), best first
    objective first (ties: by the next objectives)."""
    ok = [t for t in trials if t.status is Status.OK and not math.isinf(objectives[0].score(t.metrics))]
    if not ok:
        return []
    f = np.array([[o.score(t.metrics) for o in objectives] for t in ok], dtype=np.float64)
    front: list[Trial] = []
    seen: set[tuple[float, ...]] = set()
    for i in sorted(int(i) for i in non_dominated_sort(f)[0]):
        point = tuple(float(v) for v in f[i])
        if point not in seen:
            seen.add(point)
            front.append(ok[i])
    return sorted(front, key=lambda t: [-o.score(t.metrics) for o in objectives])
