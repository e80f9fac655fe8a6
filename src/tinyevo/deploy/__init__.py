"""Deployment: int8 quantisation (PT2E), ``.tflite`` / ONNX / C-array export, proof on TFLite-Micro, pruning.

The heavy dependencies (torchao, litert-torch, tflite-micro, onnx, onnxruntime, onnxscript) are the optional extra
``tinyevo[deploy]``; they are imported only when a function needs them, which raises
:class:`~tinyevo.deploy.errors.MissingExtraError` with an install hint when they are absent.

Typical use::

    report = export_model(ir, state_dict, data, fmt="tflite", out_dir="out/")
    report.arena_bytes, report.int8_accuracy_tflm, report.estimated_peak_sram_bytes
"""

from __future__ import annotations

from tinyevo.deploy.errors import DeployError, MissingExtraError
from tinyevo.deploy.export import FORMATS, DeployReport, ExportOptions, export_model
from tinyevo.deploy.graph import strip_passthrough
from tinyevo.deploy.prune import PruneConfig, Pruned, PruneResult, prune_and_finetune, prune_channels
from tinyevo.deploy.quantize import QuantConfig, Quantized, quantize_int8

__all__ = [
    "FORMATS", "DeployError", "DeployReport", "ExportOptions", "MissingExtraError", "PruneConfig", "PruneResult",
    "Pruned", "QuantConfig", "Quantized", "export_model", "prune_and_finetune", "prune_channels",
    "quantize_int8", "strip_passthrough",
]
