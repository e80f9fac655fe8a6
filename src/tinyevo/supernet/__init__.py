"""One-shot weight-sharing supernet of the ``blocks`` space: elastic layers, the supernet, its training step
and its scorer (see docs/supernet.md)."""

from __future__ import annotations

from tinyevo.supernet.elastic import ElasticConvBN, ElasticLinear
from tinyevo.supernet.model import ELASTIC_BLOCKS, Supernet, macs, resize_batch

__all__ = ["ELASTIC_BLOCKS", "ElasticConvBN", "ElasticLinear", "Supernet", "macs", "resize_batch"]
