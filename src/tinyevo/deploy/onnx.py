"""ONNX export (one self-contained file, NCHW, dynamic batch) and optional int8 QDQ quantisation by ONNX Runtime."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tinyevo.deploy.errors import DeployError, require
from tinyevo.deploy.quantize import DEFAULT_QUANT, QuantConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OnnxModel:
    path: Path
    int8: bool

    def predict(self, x_nchw: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """Class predictions of the saved model under ONNX Runtime (CPU)."""
        require("onnxruntime", purpose="running ONNX models")
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        out = [session.run(None, {name: np.ascontiguousarray(x_nchw[i : i + batch_size], dtype=np.float32)})[0]
               .argmax(1) for i in range(0, len(x_nchw), batch_size)]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _export_float(model: nn.Module, input_shape: tuple[int, int, int]) -> bytes:
    require("onnx", purpose="ONNX export")
    require("onnxscript", purpose="ONNX export")
    example = (torch.zeros(2, *input_shape),)
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    sink = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model.eval(), example, dynamo=True, external_data=False, input_names=["input"],
                output_names=["logits"], dynamic_shapes=({0: batch},), verbose=False,
            )
    except Exception as exc:  # the exporter raises many types
        raise DeployError(f"ONNX export failed: {exc}") from exc
    return program.model_proto.SerializeToString()


def export_onnx(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    path: str | Path,
    *,
    int8: bool = False,
    calibration: np.ndarray | None = None,
    config: QuantConfig = DEFAULT_QUANT,
    rng: np.random.Generator | None = None,
) -> OnnxModel:
    """Write ``model`` (channel-first, eval mode) to ``path`` as one ONNX file.

    With ``int8``: static QDQ quantisation by ONNX Runtime (int8 activations per tensor, int8 weights per
    channel), calibrated on ``config.calibration_samples`` random rows of ``calibration``.
    """
    path = Path(path)
    data = _export_float(model, input_shape)
    if not int8:
        path.write_bytes(data)
        return OnnxModel(path, False)
    if calibration is None or len(calibration) == 0:
        raise DeployError("int8 ONNX export needs calibration rows (the training split is empty)")
    require("onnxruntime", purpose="int8 ONNX quantisation")
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    gen = rng or np.random.default_rng(0)
    rows = np.asarray(calibration, dtype=np.float32)[gen.permutation(len(calibration))[: config.calibration_samples]]

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(rows[i : i + 1] for i in range(len(rows)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._it, None)
            return None if batch is None else {"input": batch}

    float_path = path.with_name(path.stem + ".float.onnx")
    float_path.write_bytes(data)
    try:
        quantize_static(str(float_path), str(path), _Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    except Exception as exc:
        raise DeployError(f"ONNX Runtime could not quantise the model: {exc}") from exc
    finally:
        float_path.unlink(missing_ok=True)
    return OnnxModel(path, True)
