"""The ``supernet`` estimator: a candidate's fitness from the weights it inherits from a trained supernet.

``SupernetEstimator(directory)`` loads a supernet saved by :func:`tinyevo.supernet.store.save_supernet` (or
``tinyevo supernet train --out DIR``) on first use, in each worker process, and scores a candidate by
:class:`~tinyevo.supernet.score.SupernetScorer`: BatchNorm statistics recalibrated on a fixed batch of training
images, then accuracy on a fixed subset of the validation split (``val_acc``; by default 500 and 1,000 rows,
:class:`~tinyevo.supernet.score.ScoreConfig`), for the cost of forward passes. The candidate is
identified by its genome string (``context.genome``), which must be a genome of the supernet's space, and its IR
must be the one the supernet's space decodes (the run searches the supernet's space, or a sub-space of it with the
same skeleton). Scores are deterministic (the calibration rows come from ``config.seed``; ``seed`` is not used)
and cached by genome.

It is not in :data:`~tinyevo.estimators.ESTIMATORS`: it cannot exist without a trained supernet's directory, which
a registry factory (``create(name, config=...)``) has no way to receive; a run that scores with a supernet
builds it from the directory it is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tinyevo.errors import ConfigError, InvalidGenomeError
from tinyevo.estimators.base import EvalContext
from tinyevo.supernet.score import ScoreConfig, SupernetScorer
from tinyevo.supernet.store import SupernetInfo, load_supernet, read_info

if TYPE_CHECKING:
    from tinyevo.data import Dataset
    from tinyevo.ir import ArchIR
    from tinyevo.supernet import Supernet


class SupernetEstimator:
    """Scores candidates with a trained supernet's weights (see the module docstring)."""

    name = "supernet"
    metric_names = frozenset({"val_acc"})

    def __init__(self, directory: str | Path, *, config: ScoreConfig | None = None) -> None:
        self.directory = Path(directory)
        self.info: SupernetInfo = read_info(self.directory)  # fails now, not in a worker, on a wrong directory
        self.config = config or ScoreConfig()
        self._net: Supernet | None = None
        self._scorers: dict[int, tuple[Dataset, SupernetScorer]] = {}

    def __getstate__(self) -> dict[str, object]:  # workers load the supernet themselves
        state = dict(self.__dict__)
        state["_net"], state["_scorers"] = None, {}
        return state

    @property
    def supernet(self) -> Supernet:
        if self._net is None:
            self._net, self.info = load_supernet(self.directory)
        return self._net

    def scorer(self, data: Dataset) -> SupernetScorer:
        """The scorer of ``data`` (one per data set object; it keeps the resampled inputs)."""
        hit = self._scorers.get(id(data))
        if hit is None or hit[0] is not data:
            hit = (data, SupernetScorer(self.supernet, data, config=self.config))
            self._scorers = {id(data): hit}  # one data set at a time: a run scores on one
        return hit[1]

    def evaluate(
        self, ir: ArchIR, data: Dataset, *, seed: int, context: EvalContext | None = None
    ) -> dict[str, float]:
        genome = context.genome if context is not None else None
        if genome is None:
            raise ConfigError("the supernet estimator scores genomes: the candidate's genome string is needed "
                              "(EvalContext.genome)")
        net = self.supernet
        try:
            g = net.genome(genome)
        except InvalidGenomeError as e:
            raise ConfigError(f"{genome!r} is not a genome of the supernet in {self.directory}: {e}") from None
        if net.space.decode(g) != ir:
            raise ConfigError(f"the candidate {genome!r} decodes to another network in the supernet's space than "
                              "the run's; search the supernet's space (its options are in supernet.json)")
        return {"val_acc": self.scorer(data).score(g)}
