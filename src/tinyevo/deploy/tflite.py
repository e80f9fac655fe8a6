"""int8 PT2E program -> ``.tflite`` bytes with litert-torch (no TensorFlow needed)."""

from __future__ import annotations

import contextlib
import io
import logging

import torch

from tinyevo.deploy.errors import DeployError, require
from tinyevo.deploy.quantize import Quantized

log = logging.getLogger(__name__)


_PATCHED = False


def _nhwc_padding_rule() -> None:
    """Teach litert-torch's layout pass that a constant (zero) PAD can run in NHWC.

    litert-torch 0.10 has no layout rule for ``aten.constant_pad_nd``, so the explicit pad the builder puts in
    front of a stride-2 conv with TF-SAME (bottom/right) padding stays NCHW between two TRANSPOSE ops; in a
    quantised graph the converter then cannot fold it into the conv. With this rule the pad is NHWC and the
    converter emits one SAME CONV_2D / DEPTHWISE_CONV_2D. Registered once; skipped if the internals moved.
    """
    global _PATCHED
    if _PATCHED:
        return
    _PATCHED = True
    try:
        from litert_torch._convert.fx_passes.optimize_layout_transposes_pass import layout_check, layout_rewrite
    except ImportError:  # pragma: no cover - other litert-torch versions
        log.warning("litert-torch layout internals not found; asymmetric SAME padding may export as PAD ops")
        return
    aten = torch.ops.aten
    if aten.constant_pad_nd.default in layout_rewrite.rewriters:
        return

    @layout_check.layout_sensitive_inputs_getters.register(aten.constant_pad_nd)
    def _inputs(node: torch.fx.Node) -> list[torch.fx.Node]:
        return [node.args[0]]

    @layout_check.nhwcable_node_checkers.register(aten.constant_pad_nd)
    def _checker(node: torch.fx.Node) -> object:
        ok = layout_check.is_4d(node.args[0]) and len(node.args[1]) == 4
        return layout_check.NHWCable(ok, must_be=False)

    @layout_rewrite.rewriters.register(aten.constant_pad_nd)
    def _rewriter(node: torch.fx.Node) -> None:
        def pad_nhwc(x: torch.Tensor, pad: list[int], value: float = 0.0) -> torch.Tensor:
            left, right, top, bottom = pad
            return aten.constant_pad_nd(x, [0, 0, left, right, top, bottom], value)

        node.target = pad_nhwc


def to_tflite(quantized: Quantized, input_shape: tuple[int, int, int]) -> bytes:
    """Convert an int8 program (NHWC input) to a fully int8 ``.tflite`` with int8 NHWC input and output.

    ``input_shape`` is the IR's ``(C, H, W)``; the flatbuffer is traced at batch 1.
    """
    require("litert_torch", purpose="TFLite export")
    import litert_torch
    from litert_torch.quantize.quant_config import QuantConfig

    _nhwc_padding_rule()
    c, h, w = input_shape
    sample = (torch.zeros(1, h, w, c),)
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            edge = litert_torch.convert(
                quantized.program, sample, quant_config=QuantConfig(pt2e_quantizer=quantized.quantizer)
            )
    except Exception as exc:  # the converter raises many types
        raise DeployError(f"litert-torch could not convert the int8 model: {exc}") from exc
    log.debug("litert-torch output: %s", sink.getvalue()[-2000:])
    return bytes(edge.model_content())


def to_tflite_float(model: torch.nn.Module, input_shape: tuple[int, int, int]) -> bytes:
    """A float32 ``.tflite`` (NHWC I/O) of a channel-first float ``model``."""
    require("litert_torch", purpose="TFLite export")
    import litert_torch

    from tinyevo.deploy.model import ChannelLast

    _nhwc_padding_rule()
    c, h, w = input_shape
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            edge = litert_torch.convert(ChannelLast(model).eval(), (torch.zeros(1, h, w, c),))
    except Exception as exc:
        raise DeployError(f"litert-torch could not convert the model: {exc}") from exc
    return bytes(edge.model_content())
