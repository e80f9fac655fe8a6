"""Learning-curve extrapolation: predict final validation accuracy from the first epochs and stop hopeless
runs.

After ``min_epochs`` the observed curve (validation accuracy measured ``evals_per_epoch`` times per epoch) is
fitted with saturating models -- a power law ``a - b * t**-c`` and an exponential ``a - b * exp(-c t)`` -- and
the more optimistic prediction at the final epoch is taken. A run stops when even that prediction (plus
``margin``) cannot reach the ``top_k``-th best accuracy of the finished candidates.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tinyevo.errors import ConfigError


def _pow3(t: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a - b * np.power(t, -c)


def _exp3(t: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a - b * np.exp(-c * t)


CURVES = {"pow3": _pow3, "exp3": _exp3}


def predict_final(epochs: Sequence[float], accs: Sequence[float], horizon: float) -> float | None:
    """Optimistic predicted accuracy at epoch ``horizon`` from the observed ``(epochs, accs)``, clipped to
    ``[best observed, 1]``; ``None`` with fewer than three points."""
    t = np.asarray(epochs, dtype=np.float64)
    y = np.asarray(accs, dtype=np.float64)
    ok = np.isfinite(y)
    t, y = t[ok], y[ok]
    if len(t) < 3:
        return None
    from scipy.optimize import OptimizeWarning, curve_fit  # lazy: 0.3 s of start-up, needed from 3 points on

    best = float(y.max())
    preds: list[float] = []
    for f in CURVES.values():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                p, _ = curve_fit(
                    f, t, y, p0=(min(1.0, best + 0.05), max(best - float(y.min()), 0.05), 0.5),
                    bounds=([0.0, 0.0, 1e-3], [1.0, 10.0, 10.0]), maxfev=2000,
                )
            except (RuntimeError, ValueError):
                continue
        v = float(f(np.array([horizon]), *p)[0])
        if math.isfinite(v):
            preds.append(v)
    if not preds:  # no fit converged: extrapolate the last slope linearly (optimistic upper bound)
        slope = max((y[-1] - y[0]) / max(t[-1] - t[0], 1e-9), 0.0)
        preds.append(y[-1] + slope * (horizon - t[-1]))
    return float(min(1.0, max(best, max(preds))))


@dataclass(frozen=True)
class CurveStopper:
    """When to stop a run early (keyword-only settings).

    ``min_epochs``: observe at least this much training before judging; ``top_k``: the run must be able to
    reach the ``top_k``-th best finished accuracy (no stopping until ``top_k`` candidates have finished);
    ``margin``: slack added to the prediction; ``evals_per_epoch``: validation points per epoch (the curve's
    resolution).
    """

    min_epochs: float = 1.0
    top_k: int = 5
    margin: float = 0.005
    evals_per_epoch: int = 4

    def __post_init__(self) -> None:
        if self.min_epochs <= 0 or self.top_k < 1 or self.evals_per_epoch < 1:
            raise ConfigError("min_epochs must be positive, top_k and evals_per_epoch at least 1")

    def threshold(self, finished: Sequence[float]) -> float | None:
        """The accuracy a candidate must be able to reach: the ``top_k``-th best of ``finished``."""
        scores = sorted((s for s in finished if math.isfinite(s)), reverse=True)
        return scores[self.top_k - 1] if len(scores) >= self.top_k else None

    def should_stop(
        self, epochs: Sequence[float], accs: Sequence[float], *, horizon: float, threshold: float | None
    ) -> tuple[bool, float | None]:
        """(stop?, predicted final accuracy) for the curve observed so far."""
        if threshold is None or not epochs or epochs[-1] < self.min_epochs or epochs[-1] >= horizon:
            return False, None
        pred = predict_final(epochs, accs, horizon)
        if pred is None:
            return False, None
        return pred + self.margin < threshold, pred
