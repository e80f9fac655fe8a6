"""PyTorch backend: build ``torch.nn.Module`` objects from the IR."""

from __future__ import annotations

from tinyevo.nn.builder import IRModule, build_layer, build_model
from tinyevo.nn.ensemble import Ensemble

__all__ = ["Ensemble", "IRModule", "build_layer", "build_model"]
