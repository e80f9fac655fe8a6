"""Scoring candidates with the supernet's weights: BatchNorm recalibration, then validation accuracy.

A sub-network's BatchNorm statistics in the supernet are a blend over all the sub-networks trained through them,
so (as in Once-for-All / BigNAS) each candidate's statistics are re-estimated before it is scored: the candidate
is extracted (:meth:`Supernet.extract`, its own copy of the weights), its BatchNorm layers re-estimate mean and
variance on one fixed, seeded batch of training images (a few hundred), and it is evaluated on the validation
split. Nothing about the supernet changes. Scores are cached by genome string and are deterministic (same
calibration rows, same batches, no randomness).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from tinyevo.data import Dataset
from tinyevo.errors import ConfigError, DataError
from tinyevo.supernet.model import Genome, Supernet, resize_batch
from tinyevo.training.evaluate import recalibrate_batchnorm


@dataclass(frozen=True)
class ScoreConfig:
    """``calibration_rows``: training images the BatchNorm statistics are re-estimated on (one fixed, seeded
    subset); ``batch_size``: rows per forward pass when evaluating; ``seed``: picks the calibration rows;
    ``cache_size``: scores remembered (by genome string)."""

    calibration_rows: int = 500
    batch_size: int = 1000
    seed: int = 0
    cache_size: int = 100_000

    def __post_init__(self) -> None:
        if self.calibration_rows < 2 or self.batch_size < 1 or self.cache_size < 0:
            raise ConfigError("calibration_rows must be >= 2, batch_size >= 1 and cache_size >= 0")


class SupernetScorer:
    """Validation accuracy of sub-networks of ``supernet`` on ``data`` with inherited weights (see the module
    docstring). ``score(genome)`` / ``score_many(genomes)``; ``calls`` counts the candidates actually
    evaluated (cache misses)."""

    def __init__(self, supernet: Supernet, data: Dataset, *, config: ScoreConfig | None = None) -> None:
        cfg = config or ScoreConfig()
        if len(data.x_val) == 0:
            raise DataError("the data has no validation split; the supernet scores on it")
        if data.input_shape[0] != supernet.space.input_shape[0]:
            raise DataError(
                f"the supernet reads {supernet.space.input_shape[0]} input channel(s), the data "
                f"{data.name!r} has {data.input_shape[0]}"
            )
        if data.num_classes != supernet.space.num_classes:
            raise DataError(f"the supernet has {supernet.space.num_classes} classes, the data {data.num_classes}")
        self.supernet, self.data, self.config = supernet, data, cfg
        rng = np.random.default_rng(cfg.seed)
        n = min(cfg.calibration_rows, len(data.x_train))
        rows = np.sort(rng.choice(len(data.x_train), size=n, replace=False))
        self._calib = torch.tensor(np.asarray(data.x_train)[rows], dtype=torch.float32)
        self._x_val = torch.tensor(np.asarray(data.x_val), dtype=torch.float32)
        self._y_val = torch.tensor(np.asarray(data.y_val), dtype=torch.long)
        self._inputs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._cache: OrderedDict[str, float] = OrderedDict()
        self.calls = 0

    def _at(self, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(calibration images, validation images) at ``resolution`` (resampled once per resolution)."""
        hit = self._inputs.get(resolution)
        if hit is None:
            bs = self.config.batch_size
            val = torch.cat([resize_batch(self._x_val[i : i + bs], resolution)
                             for i in range(0, len(self._x_val), bs)])
            hit = (resize_batch(self._calib, resolution), val)
            self._inputs[resolution] = hit
        return hit

    @torch.no_grad()
    def score(self, genome: Genome) -> float:
        """Validation accuracy (a fraction) of sub-network ``genome``."""
        g = self.supernet.genome(genome)
        key = str(g)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        calib, x_val = self._at(g.resolution)
        model = self.supernet.extract(g)
        # all calibration rows, in order, in batches of batch_size (a cumulative average)
        recalibrate_batchnorm(model, calib, batches=-(-len(calib) // self.config.batch_size),
                              batch_size=self.config.batch_size, seed=0)
        model.eval()
        correct = 0
        bs = self.config.batch_size
        for i in range(0, len(x_val), bs):
            correct += int((model(x_val[i : i + bs]).argmax(1) == self._y_val[i : i + bs]).sum())
        acc = correct / len(x_val)
        self.calls += 1
        if self.config.cache_size:
            self._cache[key] = acc
            while len(self._cache) > self.config.cache_size:
                self._cache.popitem(last=False)
        return acc

    def score_many(self, genomes: Iterable[Genome]) -> list[float]:
        return [self.score(g) for g in genomes]
