"""Deployment: int8 quantisation (PT2E), ``.tflite`` / ONNX / C-array export, proof on TFLite-Micro, pruning.

The heavy dependencies (torchao, litert-torch, tflite-micro, onnx, onnxruntime, onnxscript) are the optional extra
``tinyevo[deploy]``; they are imported only when a function needs them, which raises
:class:`~tinyevo.deploy.errors.MissingExtraError` with an install hint when they are absent.

Typical use::

    report = export_model(ir, state_dict, data, fmt="tflite", out_dir="out/")
    report.arena_bytes, report.int8_accuracy_tflm, report.estimated_peak_sram_bytes

The names below are imported on first use (PEP 562), so that importing a light submodule (the TFLite-Micro probe
child, :mod:`tinyevo.deploy._tflm_probe`) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tinyevo.deploy.errors import DeployError, MissingExtraError

if TYPE_CHECKING:
    from tinyevo.deploy.export import FORMATS, DeployReport, ExportOptions, export_model
    from tinyevo.deploy.graph import strip_passthrough
    from tinyevo.deploy.prune import PruneConfig, Pruned, PruneResult, prune_and_finetune, prune_channels
    from tinyevo.deploy.quantize import QuantConfig, Quantized, quantize_int8

_LAZY = {
    "FORMATS": "export", "DeployReport": "export", "ExportOptions": "export", "export_model": "export",
    "strip_passthrough": "graph",
    "PruneConfig": "prune", "Pruned": "prune", "PruneResult": "prune", "prune_and_finetune": "prune",
    "prune_channels": "prune",
    "QuantConfig": "quantize", "Quantized": "quantize", "quantize_int8": "quantize",
}

__all__ = [
    "FORMATS", "DeployError", "DeployReport", "ExportOptions", "MissingExtraError", "PruneConfig", "PruneResult",
    "Pruned", "QuantConfig", "Quantized", "export_model", "prune_and_finetune", "prune_channels",
    "quantize_int8", "strip_passthrough",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
