"""One-shot weight-sharing supernet of the ``blocks`` space (MCUNet's TinyNAS stage 2; see docs/supernet.md).

* :class:`Supernet` ``(space)`` -- elastic depth (first-k blocks), width / expansion (channel slices), kernel
  (centre crop + learned transform, Once-for-All) and resolution; ``supernet(x, genome)``;
  :meth:`Supernet.extract` gives the builder's module of the genome with its own copy of the sliced weights.
* :func:`train_supernet` -- the sandwich rule with in-place distillation (:class:`SandwichStep`) through the one
  training loop (:func:`tinyevo.training.train`), checkpointed / resumable; :func:`finetune` an extracted winner.
* :class:`SupernetScorer` -- BatchNorm recalibration + validation accuracy with inherited weights, cached.
* :func:`save_supernet` / :func:`load_supernet` -- a directory with ``supernet.json`` and ``supernet.pt``
  (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

from tinyevo.supernet.elastic import ElasticConvBN, ElasticLinear
from tinyevo.supernet.model import ELASTIC_BLOCKS, Supernet, macs, resize_batch
from tinyevo.supernet.score import ScoreConfig, SupernetScorer
from tinyevo.supernet.store import SupernetInfo, load_supernet, read_info, save_supernet, space_options
from tinyevo.supernet.train import SandwichStep, finetune, train_supernet

__all__ = [
    "ELASTIC_BLOCKS", "ElasticConvBN", "ElasticLinear", "SandwichStep", "ScoreConfig", "Supernet", "SupernetInfo",
    "SupernetScorer", "finetune", "load_supernet", "macs", "read_info", "resize_batch", "save_supernet",
    "space_options", "train_supernet",
]
