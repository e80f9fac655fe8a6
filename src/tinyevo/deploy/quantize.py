"""Post-training static int8 quantisation (PT2E, torchao) with the TFLite int8 scheme, and optional QAT.

The scheme is the one TFLite-Micro's int8 kernels implement: activations per-tensor affine int8 in [-128, 127],
weights symmetric int8 in [-127, 127], per output channel; biases stay float in the graph and the converter
stores them as int32 with scale ``input_scale * weight_scale``.

:class:`TFLiteInt8Quantizer` annotates the ATen graph by op, not by source module, so it works with
non-strict ``torch.export`` programs: every conv / linear / add (with a following ReLU or ReLU6 fused) gets its own
output quantisation; ops that TFLite runs without rescaling (pooling, padding, concat, reshapes) share their
input's parameters, so the converter emits no extra QUANTIZE ops.

``torch.export`` fixes shapes, so the program is exported with a dynamic batch dimension: calibration and
accuracy runs use any batch size, the ``.tflite`` is traced at batch 1.
"""

from __future__ import annotations

import copy
import logging
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from tinyevo.deploy.errors import DeployError, require
from tinyevo.deploy.model import (
    ChannelLast,
    FinetuneConfig,
    finetune,
    fold_batchnorm,
    nhwc,
    predict,
)
from tinyevo.training import fraction_correct

log = logging.getLogger(__name__)

_aten = torch.ops.aten

_WEIGHTED = {_aten.conv2d.default, _aten.linear.default}
_ACTIVATIONS = {_aten.relu.default, _aten.relu_.default, _aten.hardtanh.default, _aten.hardtanh_.default,
                _aten.relu6.default, _aten.clamp.default}
_BATCH_NORM = {_aten.batch_norm.default, _aten._native_batch_norm_legit.default,
               _aten._native_batch_norm_legit_no_training.default, _aten.cudnn_batch_norm.default}
_ADDS = {_aten.add.Tensor, _aten.add_.Tensor}
# ops that TFLite runs with the input's quantisation parameters (output shares them)
_SHARED = {
    _aten.max_pool2d.default, _aten.avg_pool2d.default, _aten.adaptive_avg_pool2d.default,
    _aten.flatten.using_ints, _aten.view.default,
    _aten.reshape.default, _aten.unsqueeze.default, _aten.squeeze.dim, _aten.squeeze.dims,
    _aten.slice.Tensor, _aten.contiguous.default, _aten.clone.default,
    # the layout permute before a dense layer's flatten (deploy.model._DenseNHWC): unannotated, the flatten's
    # input edge got an observer of its own, with other parameters than the pool before it, and the converter
    # requantised there (TRANSPOSE -> QUANTIZE -> TRANSPOSE, or RESHAPE -> QUANTIZE for one channel): kernels
    # and buffers TFLite-Micro runs that the cost model does not have
    _aten.permute.default,
    # a standalone ReLU shares too: the converter fuses it into a preceding pool / concat, whose TFLite kernel
    # then needs equal input and output scales
    _aten.relu.default, _aten.hardtanh.default,
}
# zero padding stays unannotated so that the converter folds it into the following conv (SAME padding)
_PADS = {_aten.pad.default, _aten.constant_pad_nd.default}
# ops whose output range differs from the input's (requantised by the TFLite kernel)
_OWN_OUTPUT = {_aten.mean.dim, _aten.amax.default}

Observer = Literal["histogram", "minmax"]


def _specs(*, observer: Observer, per_channel: bool, qat: bool) -> tuple[Any, Any]:
    from torchao.quantization.pt2e.fake_quantize import FakeQuantize, FusedMovingAvgObsFakeQuantize
    from torchao.quantization.pt2e.observer import (
        HistogramObserver,
        MinMaxObserver,
        MovingAverageMinMaxObserver,
        MovingAveragePerChannelMinMaxObserver,
        PerChannelMinMaxObserver,
    )
    from torchao.quantization.pt2e.quantizer import QuantizationSpec

    eps = 2**-12
    HistogramObserver = _finite(HistogramObserver)
    MinMaxObserver = _finite(MinMaxObserver)
    if qat:
        # the unfused FakeQuantize calls its observer, so the finite filter (max-pool -inf padding) applies
        act_ctr = FakeQuantize.with_args(observer=_finite(MovingAverageMinMaxObserver), eps=eps)
        w_obs = MovingAveragePerChannelMinMaxObserver if per_channel else MovingAverageMinMaxObserver
        w_ctr = FusedMovingAvgObsFakeQuantize.with_args(observer=w_obs, eps=eps)
    else:
        act_ctr = (HistogramObserver if observer == "histogram" else MinMaxObserver).with_args(eps=eps)
        w_ctr = (PerChannelMinMaxObserver if per_channel else MinMaxObserver).with_args(eps=eps)
    act = QuantizationSpec(
        dtype=torch.int8, quant_min=-128, quant_max=127, qscheme=torch.per_tensor_affine,
        is_dynamic=False, observer_or_fake_quant_ctr=act_ctr,
    )
    weight = QuantizationSpec(
        dtype=torch.int8, quant_min=-127, quant_max=127,
        qscheme=torch.per_channel_symmetric if per_channel else torch.per_tensor_symmetric,
        ch_axis=0, is_dynamic=False, observer_or_fake_quant_ctr=w_ctr,
    )
    return act, weight


def _finite(observer: type) -> type:
    """``observer`` ignoring infinite values (the -inf padding of a SAME max pool must not set the range)."""

    class Finite(observer):  # type: ignore[misc, valid-type]
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.numel() and not torch.isfinite(x).all():
                super().forward(torch.where(torch.isfinite(x), x, torch.zeros_like(x)))
                return x
            return super().forward(x)

    Finite.__name__ = Finite.__qualname__ = f"Finite{observer.__name__}"
    return Finite


def make_quantizer(*, observer: Observer = "histogram", per_channel: bool = True, qat: bool = False) -> Any:
    """A PT2E quantizer implementing TFLite's int8 scheme (see the module docstring).

    It subclasses litert-torch's ``PT2EQuantizer`` only so that ``litert_torch.convert`` accepts it in its
    ``QuantConfig``; the annotation is our own.
    """
    require("torchao", purpose="int8 quantisation")
    require("litert_torch", purpose="int8 quantisation for TFLite")
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, SharedQuantizationSpec

    act, weight = _specs(observer=observer, per_channel=per_channel, qat=qat)

    def annotated(node: torch.fx.Node) -> bool:
        a = node.meta.get("quantization_annotation")
        return a is not None and a._annotated

    def fused_tail(node: torch.fx.Node) -> tuple[torch.fx.Node, list[torch.fx.Node]]:
        """Follow BN (QAT graphs) and one activation after ``node``; returns (output node, nodes passed)."""
        passed: list[torch.fx.Node] = []
        cur = node
        for allowed in (_BATCH_NORM, {operator.getitem}, _ACTIVATIONS):
            users = list(cur.users)
            if len(users) == 1 and users[0].op == "call_function" and users[0].target in allowed:
                if users[0].target is operator.getitem and users[0].args[1] != 0:
                    break
                if users[0].target is _aten.clamp.default and not _is_relu_clamp(users[0]):
                    break
                cur = users[0]
                passed.append(cur)
        return cur, passed

    def input_spec(src: torch.fx.Node) -> Any:
        """Share the producer's parameters when it has them, else observe the edge."""
        a = src.meta.get("quantization_annotation")
        if a is not None and a._annotated and a.output_qspec is not None:
            return SharedQuantizationSpec(src)
        return act

    class TFLiteInt8Quantizer(PT2EQuantizer):
        def __init__(self) -> None:
            super().__init__()
            # litert-torch reads ``global_config.is_dynamic`` to choose static int8 conversion
            self.set_global(get_symmetric_quantization_config(is_per_channel=per_channel, is_qat=qat))

        def transform_for_annotation(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            return model

        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            for node in model.graph.nodes:
                if node.op != "call_function" or annotated(node):
                    continue
                t = node.target
                if t in _WEIGHTED or t in _ADDS:
                    inputs: dict[torch.fx.Node, Any] = {}
                    if t in _WEIGHTED:
                        src = node.args[0]
                        if src.op == "call_function" and src.target in _PADS and not _pads_with_neg_inf(src):
                            # zero padding (SAME conv): keep the padded tensor on its producer's scale, so
                            # that the converter can fold the PAD into the conv
                            inputs[src] = input_spec(src.args[0])
                        else:
                            inputs[src] = act
                        inputs[node.args[1]] = weight
                    else:
                        for a in node.args[:2]:
                            if isinstance(a, torch.fx.Node):
                                inputs[a] = act
                    out, passed = fused_tail(node)
                    if out is node:
                        node.meta["quantization_annotation"] = QuantizationAnnotation(
                            input_qspec_map=inputs, output_qspec=act, _annotated=True)
                    else:
                        node.meta["quantization_annotation"] = QuantizationAnnotation(
                            input_qspec_map=inputs, _annotated=True)
                        for p in passed[:-1]:
                            p.meta["quantization_annotation"] = QuantizationAnnotation(_annotated=True)
                        out.meta["quantization_annotation"] = QuantizationAnnotation(
                            output_qspec=act, _annotated=True)
                elif t is _aten.cat.default:
                    first = node.args[0][0]
                    shared = SharedQuantizationSpec((first, node))
                    inputs = {first: act}
                    for other in node.args[0][1:]:
                        if other is not first:
                            inputs[other] = shared
                    node.meta["quantization_annotation"] = QuantizationAnnotation(
                        input_qspec_map=inputs, output_qspec=shared, _annotated=True)
                elif t in _PADS and _pads_with_neg_inf(node):
                    # -inf padding of a SAME max pool: observe the tensor before padding, share after it
                    node.meta["quantization_annotation"] = QuantizationAnnotation(
                        input_qspec_map={node.args[0]: act},
                        output_qspec=SharedQuantizationSpec((node.args[0], node)),
                        _annotated=True,
                    )
                elif (t in _PADS and not all(u.target in _WEIGHTED for u in node.users)
                      and isinstance(node.args[0], torch.fx.Node) and annotated(node.args[0])):
                    # zero padding read by a pool (SAME average pool with an even kernel): PAD keeps its
                    # input's parameters. Unannotated, the pool's input edge would get its own observer, which
                    # sees a narrower range than the (shared, upstream) parameters of the producer, and the
                    # converter would requantise with a QUANTIZE op before the PAD. (The pad of the constant
                    # window-count map stays unannotated: the converter folds it into a constant.)
                    node.meta["quantization_annotation"] = QuantizationAnnotation(
                        input_qspec_map={node.args[0]: input_spec(node.args[0])},
                        output_qspec=SharedQuantizationSpec((node.args[0], node)),
                        _annotated=True,
                    )
                elif t in _SHARED or t in _OWN_OUTPUT:
                    src = node.args[0]
                    if not isinstance(src, torch.fx.Node):
                        continue
                    own = t in _OWN_OUTPUT
                    node.meta["quantization_annotation"] = QuantizationAnnotation(
                        input_qspec_map={src: act if own else input_spec(src)},
                        output_qspec=act if own else SharedQuantizationSpec((src, node)),
                        _annotated=True,
                    )
            return model

        def validate(self, model: torch.fx.GraphModule) -> None:
            pass

    return TFLiteInt8Quantizer()


def _pads_with_neg_inf(node: torch.fx.Node) -> bool:
    value = node.args[3] if len(node.args) > 3 else node.kwargs.get("value")
    if node.target is _aten.constant_pad_nd.default:
        value = node.args[2] if len(node.args) > 2 else node.kwargs.get("value")
    return isinstance(value, float) and value == float("-inf")


def _is_relu_clamp(node: torch.fx.Node) -> bool:
    lo = node.args[1] if len(node.args) > 1 else node.kwargs.get("min")
    hi = node.args[2] if len(node.args) > 2 else node.kwargs.get("max")
    return lo == 0 and hi in (None, 6, 6.0)


@dataclass(frozen=True)
class QuantConfig:
    """How to quantise: calibration set, observers, and when to fall back to quantisation-aware fine-tuning.

    ``qat_mode``: ``"auto"`` runs quantisation-aware fine-tuning (``qat``) when the int8 accuracy on
    ``eval_samples`` held-out training rows is more than ``qat_threshold`` (fraction, 0.01 = 1 point) below
    float, and keeps whichever int8 program is better on those rows; ``"always"`` returns the QAT program;
    ``"never"`` (or ``qat_threshold=None``) stops after PTQ.
    """

    calibration_samples: int = 512
    batch_size: int = 64
    observer: Observer = "histogram"
    per_channel: bool = True
    qat_mode: Literal["auto", "always", "never"] = "auto"
    qat_threshold: float | None = 0.01
    qat: FinetuneConfig = field(default_factory=lambda: FinetuneConfig(epochs=1, lr=1e-4, batch_size=32))
    eval_samples: int = 1000

    def __post_init__(self) -> None:
        if self.calibration_samples < 1 or self.batch_size < 1:
            raise DeployError("calibration_samples and batch_size must be positive")
        if self.observer not in ("histogram", "minmax"):
            raise DeployError(f"observer must be 'histogram' or 'minmax', got {self.observer!r}")
        if self.qat_mode not in ("auto", "always", "never"):
            raise DeployError(f"qat_mode must be 'auto', 'always' or 'never', got {self.qat_mode!r}")


DEFAULT_QUANT = QuantConfig()


@dataclass(frozen=True)
class Quantized:
    """An int8 (quantise/dequantise) torch program taking NHWC float input, and the quantizer that made it."""

    program: torch.fx.GraphModule
    quantizer: Any
    qat_used: bool
    float_accuracy_check: float  # float accuracy on the check rows that decided QAT
    int8_accuracy_check: float

    def predict(self, x_nchw: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        return predict(self.program, nhwc(x_nchw), batch_size=batch_size)


def _export(module: nn.Module, example: torch.Tensor) -> torch.fx.GraphModule:
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    try:
        ep = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
    except Exception as exc:  # torch.export raises many exception types
        raise DeployError(f"torch.export failed for this network: {exc}") from exc
    program = ep.module()
    merge_duplicates(program)
    return program


def _frozen(value: Any) -> Any:
    """``value`` (an op argument) as a hashable key: lists and tuples as tuples, dicts as sorted item tuples."""
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    hash(value)  # raises TypeError for an unhashable argument (the node is then left alone)
    return value


def merge_duplicates(program: torch.fx.GraphModule) -> int:
    """Compute each pure ATen op once: a node with the same target and arguments as an earlier one is replaced by
    it (``a + b`` and ``b + a`` count as the same); returns the number of nodes removed.

    The converter runs CSE after quantisation, so duplicates must not reach the quantizer: each copy would get its
    own observer, and two copies that the converter merges in float but that were calibrated to different
    parameters (e.g. an ``x + x`` whose histogram observer is shared with a following pool's output, next to the
    same ``x + x`` inside an n-ary sum) cannot become one int8 kernel; the converter keeps the op in float
    (``DEQUANTIZE`` + float ``ADD`` + one ``QUANTIZE`` per parameter set), which needs 4-byte activations in the
    arena (an NB201 cell of average pools: 50,176 B instead of 18,816 B of TFLM arena head). Mutating ops,
    random ops (dropout) and anything not an ATen op overload (getitem, guards, shape arithmetic) stay as they are.
    """
    seen: dict[tuple[object, ...], torch.fx.Node] = {}
    order = {n: i for i, n in enumerate(program.graph.nodes)}
    removed = 0
    for node in list(program.graph.nodes):
        target = node.target
        if node.op != "call_function" or not isinstance(target, torch._ops.OpOverload):
            continue
        if target._schema.is_mutable or torch.Tag.nondeterministic_seeded in target.tags or node.is_impure():
            continue
        args = node.args
        if target is _aten.add.Tensor and not node.kwargs and len(args) == 2 and all(
                isinstance(a, torch.fx.Node) for a in args):
            args = tuple(sorted(args, key=order.__getitem__))  # float and int8 addition commute exactly
        try:
            key = (target, _frozen(args), _frozen(node.kwargs))
        except TypeError:
            continue
        first = seen.get(key)
        if first is None:
            seen[key] = node
            continue
        node.replace_all_uses_with(first)
        program.graph.erase_node(node)
        removed += 1
    if removed:
        program.graph.lint()
        program.recompile()
    return removed


def _to_eval(program: torch.fx.GraphModule, move_to_eval: Callable[[torch.fx.GraphModule], object]) -> None:
    """Switch an exported program to inference: ``move_to_eval`` (torchao's ``move_exported_model_to_eval``) rewrites
    its dropout / batch-norm ops; the modules' ``training`` flags, which exported programs leave at ``True`` (their
    ``eval()`` is disabled), are cleared too, so that converters see an inference model (litert-torch warns "converted
    in training mode" otherwise)."""
    move_to_eval(program)
    for module in program.modules():
        module.training = False


def _calibrate(program: torch.fx.GraphModule, x: np.ndarray, batch_size: int) -> None:
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            program(torch.from_numpy(x[i : i + batch_size]))


def quantize_int8(
    model: nn.Module,
    x_train: np.ndarray,
    y_train: np.ndarray | None = None,
    *,
    config: QuantConfig = DEFAULT_QUANT,
    rng: np.random.Generator,
) -> Quantized:
    """Quantise a float channel-first ``model`` (eval mode) to int8 with PT2E.

    Calibrates on ``config.calibration_samples`` random training rows. When ``y_train`` is given and
    ``config.qat_threshold`` is set, compares float and int8 accuracy on ``config.eval_samples`` other training
    rows and runs quantisation-aware fine-tuning if int8 loses more than the threshold (keeping whichever int8
    program is better on those rows).
    """
    require("torchao", purpose="int8 quantisation")
    from torchao.quantization.pt2e import move_exported_model_to_eval, move_exported_model_to_train
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e, prepare_qat_pt2e

    if len(x_train) == 0:
        raise DeployError("quantisation needs training samples for calibration; the training split is empty")
    x = nhwc(x_train)
    order = rng.permutation(len(x))
    calib = x[order[: config.calibration_samples]]
    check = order[config.calibration_samples : config.calibration_samples + config.eval_samples]
    if len(check) == 0:
        check = order[: config.eval_samples]

    wrapped = ChannelLast(copy.deepcopy(model).eval()).eval()
    example = torch.from_numpy(calib[: min(2, len(calib))])
    quantizer = make_quantizer(observer=config.observer, per_channel=config.per_channel)
    prepared = prepare_pt2e(_export(wrapped, example), quantizer)
    _calibrate(prepared, calib, config.batch_size)
    program = convert_pt2e(prepared, fold_quantize=False)
    _to_eval(program, move_exported_model_to_eval)

    never = config.qat_mode == "never" or (config.qat_mode == "auto" and config.qat_threshold is None)
    if y_train is None or never:
        if config.qat_mode == "always":
            raise DeployError("quantisation-aware training needs training labels")
        return Quantized(program, quantizer, False, float("nan"), float("nan"))
    y_check = np.asarray(y_train)[check]
    acc_float = fraction_correct(predict(wrapped, x[check]), y_check)
    acc_int8 = fraction_correct(predict(program, x[check]), y_check)
    log.info("PTQ on %d check rows: float %.4f, int8 %.4f", len(check), acc_float, acc_int8)
    if config.qat_mode == "auto" and acc_float - acc_int8 <= (config.qat_threshold or 0.0):
        return Quantized(program, quantizer, False, acc_float, acc_int8)

    # quantisation-aware fine-tuning from the float weights, BN folded with frozen statistics
    qat_quantizer = make_quantizer(per_channel=config.per_channel, qat=True)
    train_model = ChannelLast(fold_batchnorm(model).train())
    bs = min(config.qat.batch_size, len(x))
    qat_prog = prepare_qat_pt2e(_export(train_model, torch.from_numpy(x[:bs])), qat_quantizer)
    train_rows = np.setdiff1d(np.arange(len(x)), check)
    move_exported_model_to_train(qat_prog)
    finetune(qat_prog, x[train_rows], np.asarray(y_train)[train_rows], config=config.qat, rng=rng,
             train_mode=False)
    move_exported_model_to_eval(qat_prog)
    qat_program = convert_pt2e(qat_prog, fold_quantize=False)
    _to_eval(qat_program, move_exported_model_to_eval)
    acc_qat = fraction_correct(predict(qat_program, x[check]), y_check)
    log.info("QAT on %d check rows: int8 %.4f (PTQ %.4f)", len(check), acc_qat, acc_int8)
    if acc_qat > acc_int8 or config.qat_mode == "always":
        return Quantized(qat_program, qat_quantizer, True, acc_float, acc_qat)
    return Quantized(program, quantizer, False, acc_float, acc_int8)
