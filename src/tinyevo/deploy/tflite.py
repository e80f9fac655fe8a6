"""int8 PT2E program -> ``.tflite`` bytes with litert-torch (no TensorFlow needed)."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
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
        from litert_torch._convert.fx_passes.optimize_layout_transposes_pass import (
            layout_check,
            layout_rewrite,
        )
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


def _same_quantization(a: object, b: object) -> bool:
    qa, qb = getattr(a, "quantization", None), getattr(b, "quantization", None)
    if qa is None or qb is None:
        return qa is qb
    return (np.array_equal(np.asarray(qa.scale), np.asarray(qb.scale))
            and np.array_equal(np.asarray(qa.zeroPoint), np.asarray(qb.zeroPoint)))


def _fold_reshapes_into_fc(obj: object, schema: object) -> int:
    """Drop RESHAPE ops read only by FULLY_CONNECTED ops (which flatten their input themselves).

    A RESHAPE in TFLM copies its input into a new arena buffer, so flattening a feature map before a dense
    layer costs a second copy of it at the SRAM peak. Only reshapes with identical input / output quantisation
    whose readers are FULLY_CONNECTED inputs with a 2-d output are folded (their ``keep_num_dims`` is cleared:
    the output stays ``[batch, units]``). Returns the count.
    """
    sg = obj.subgraphs[0]  # type: ignore[attr-defined]
    kind = _op_kind(obj, schema)

    readers = _readers(sg)
    outputs = {int(t) for t in sg.outputs}
    drop: set[int] = set()
    for i, op in enumerate(sg.operators):
        if kind(op) != "RESHAPE":
            continue
        src, out = int(op.inputs[0]), int(op.outputs[0])
        users = readers.get(out, [])
        if out in outputs or not users or not _same_quantization(sg.tensors[src], sg.tensors[out]):
            continue
        if not all(pos == 0 and kind(sg.operators[j]) == "FULLY_CONNECTED"
                   and len(sg.tensors[int(sg.operators[j].outputs[0])].shape) == 2 for j, pos in users):
            continue
        for j, _pos in users:
            ins = list(sg.operators[j].inputs)
            ins[0] = src
            sg.operators[j].inputs = ins
            if sg.operators[j].builtinOptions is not None:  # output [batch, units] from an N-d input
                sg.operators[j].builtinOptions.keepNumDims = False
        drop.add(i)
    if not drop:
        return 0
    sg.operators = [op for i, op in enumerate(sg.operators) if i not in drop]
    _drop_unused_tensors(sg)
    return len(drop)


def _op_kind(obj: Any, schema: Any) -> Callable[[Any], str]:
    """``kind(op)``: the builtin operator name (``"CONV_2D"``, ...) of an operator of flatbuffer model ``obj``."""
    codes = obj.operatorCodes
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}

    def kind(op: Any) -> str:
        c = codes[op.opcodeIndex]
        return op_names.get(max(c.builtinCode, c.deprecatedBuiltinCode), "")

    return kind


def _readers(sg: Any) -> dict[int, list[tuple[int, int]]]:
    """Tensor index -> the (operator index, input position) pairs that read it, in operator order."""
    readers: dict[int, list[tuple[int, int]]] = {}
    for j, op in enumerate(sg.operators):
        for pos, t in enumerate(op.inputs):
            readers.setdefault(int(t), []).append((j, pos))
    return readers


def _drop_unused_tensors(sg: Any) -> None:
    """Remove the tensors of subgraph ``sg`` that no operator, input or output refers to, renumbering the rest."""
    used = {int(t) for op in sg.operators for t in list(op.inputs) + list(op.outputs) if t >= 0}
    used |= {int(t) for t in sg.inputs} | {int(t) for t in sg.outputs}
    keep = [t for t in range(len(sg.tensors)) if t in used]
    index = {old: new for new, old in enumerate(keep)}
    sg.tensors = [sg.tensors[t] for t in keep]
    for op in sg.operators:
        op.inputs = [index[int(t)] if t >= 0 else -1 for t in op.inputs]
        op.outputs = [index[int(t)] for t in op.outputs]
    sg.inputs = [index[int(t)] for t in sg.inputs]
    sg.outputs = [index[int(t)] for t in sg.outputs]


def _drop_unused(obj: object) -> None:
    """Remove the tensors, buffers and operator codes of ``obj``'s first subgraph that nothing refers to any
    more (after ops were dropped), renumbering the rest."""
    sg = obj.subgraphs[0]  # type: ignore[attr-defined]
    _drop_unused_tensors(sg)
    if len(obj.subgraphs) != 1:  # type: ignore[attr-defined]
        return  # buffers and codes may be shared with other subgraphs: leave them
    # buffer 0 is the empty sentinel; metadata entries refer to buffers too
    metadata = list(obj.metadata or ())  # type: ignore[attr-defined]
    refs = {0} | {int(t.buffer) for t in sg.tensors} | {int(m.buffer) for m in metadata}
    kept = [b for b in range(len(obj.buffers)) if b in refs]  # type: ignore[attr-defined]
    bindex = {old: new for new, old in enumerate(kept)}
    obj.buffers = [obj.buffers[b] for b in kept]  # type: ignore[attr-defined]
    for t in sg.tensors:
        t.buffer = bindex[int(t.buffer)]
    for m in metadata:
        m.buffer = bindex[int(m.buffer)]
    codes = sorted({int(op.opcodeIndex) for op in sg.operators})
    cindex = {old: new for new, old in enumerate(codes)}
    obj.operatorCodes = [obj.operatorCodes[c] for c in codes]  # type: ignore[attr-defined]
    for op in sg.operators:
        op.opcodeIndex = cindex[int(op.opcodeIndex)]


def _fold_duplicated_channels(obj: object, schema: object) -> int:
    """Replace every ``CONCATENATION(x, x, ...) -> pool -> SLICE`` chain by the pool on ``x`` writing the
    ``SLICE``'s output. Returns the count.

    The chain is how the export runs a padded strided average pool of a 1-channel tensor
    (:class:`tinyevo.deploy.model._TwoChannelPool`): litert-torch decomposes that pool (``ceil_mode`` with
    ``count_include_pad=False`` gets no composite) into windowed sums, and the converter turns them back into
    ``AVERAGE_POOL_2D`` only when the layout transposes around them stay transposes; with one channel they
    become reshapes and the model keeps float ``STABLEHLO_REDUCE_WINDOW`` kernels that TFLite-Micro cannot run.
    A pool computes each channel from that channel alone, so pooling ``x`` itself gives the slice's bytes,
    without the copies (the TFLM arena holds ``x`` and its copies together: 288 B more on a 12 x 12 input).

    Folded only when the concatenation is along channels (NHWC axis 3) of copies of one tensor ``x``, has no
    fused activation, the pool is an ``AVERAGE_POOL_2D`` / ``MAX_POOL_2D`` whose quantisation equals ``x``'s
    and the concatenation's, the slice keeps all of N, H and W and exactly the channels of one copy, with
    constant ``begin`` / ``size``, and neither intermediate tensor has another reader or is a model output.
    """
    sg = obj.subgraphs[0]  # type: ignore[attr-defined]
    kind = _op_kind(obj, schema)

    def const(t: int) -> list[int] | None:
        data = obj.buffers[sg.tensors[t].buffer].data  # type: ignore[attr-defined]
        if data is None or sg.tensors[t].type != schema.TensorType.INT32:
            return None
        return [int(v) for v in np.frombuffer(bytes(bytearray(data)), dtype="<i4")]

    readers = {t: [j for j, _ in uses] for t, uses in _readers(sg).items()}
    outputs = {int(t) for t in sg.outputs}
    drop: set[int] = set()
    for i, cat in enumerate(sg.operators):
        ins = [int(t) for t in cat.inputs]
        if kind(cat) != "CONCATENATION" or len(ins) < 2 or len(set(ins)) != 1 or len(cat.outputs) != 1:
            continue
        x, y = sg.tensors[ins[0]], sg.tensors[int(cat.outputs[0])]
        opts = cat.builtinOptions
        shape = list(y.shape) if y.shape is not None else []
        if len(shape) != 4 or opts is None or int(opts.axis) % 4 != 3 or int(opts.fusedActivationFunction) != 0 \
                or not _same_quantization(x, y) or int(cat.outputs[0]) in outputs:
            continue
        users = readers.get(int(cat.outputs[0]), [])
        if len(users) != 1:
            continue
        p = users[0]
        pool = sg.operators[p]
        if kind(pool) not in ("AVERAGE_POOL_2D", "MAX_POOL_2D") or [int(t) for t in pool.inputs] != \
                [int(cat.outputs[0])] or len(pool.outputs) != 1:
            continue
        pooled = int(pool.outputs[0])
        users = readers.get(pooled, [])
        if pooled in outputs or len(users) != 1 or not _same_quantization(y, sg.tensors[pooled]):
            continue
        k = users[0]
        sl = sg.operators[k]
        if kind(sl) != "SLICE" or len(sl.inputs) != 3 or int(sl.inputs[0]) != pooled:
            continue
        begin, size = const(int(sl.inputs[1])), const(int(sl.inputs[2]))
        c = int(x.shape[3])
        ps = [int(v) for v in sg.tensors[pooled].shape]
        out = sg.tensors[int(sl.outputs[0])]
        if begin is None or size is None or len(begin) != 4 or begin[:3] != [0, 0, 0] or begin[3] % c or \
                [int(v) for v in out.shape] != [*ps[:3], c] or \
                [ps[d] - begin[d] if size[d] == -1 else size[d] for d in range(4)] != [*ps[:3], c] or \
                not _same_quantization(sg.tensors[pooled], out):
            continue
        pool.inputs = [ins[0]]
        pool.outputs = [int(sl.outputs[0])]
        drop.update((i, k))
    if not drop:
        return 0
    sg.operators = [op for i, op in enumerate(sg.operators) if i not in drop]
    _drop_unused(obj)
    return len(drop) // 2


def strip_flatbuffer(model: bytes, *, fold_reshapes: bool = True, fold_copies: bool = True) -> bytes:
    """``model`` without the strings an MCU never reads, re-aligned for TFLite-Micro.

    Removes the description, subgraph and tensor names and the signature defs (litert-torch names every tensor
    after its module path, ~100 bytes each: a third of a small model's flash), keeps the metadata buffers
    (``min_runtime_version``), optionally folds flatten-RESHAPEs into the dense layers reading them
    (:func:`_fold_reshapes_into_fc`) and two-copy pools into one pool (``fold_copies``,
    :func:`_fold_duplicated_channels`), then re-packs and re-aligns the constant buffers with TFLM's own
    ``tflite_flatbuffer_align`` tool (16-byte aligned weights).
    """
    require("tflite_micro", purpose="flatbuffer stripping")
    import tempfile

    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema
    from tflite_micro.tensorflow.lite.micro.tools import tflite_flatbuffer_align_wrapper as align

    try:
        obj = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(model), 0))
    except Exception as exc:
        raise DeployError(f"not a valid .tflite flatbuffer ({exc})") from exc
    obj.description = None
    obj.signatureDefs = None
    for sg in obj.subgraphs or ():
        sg.name = None
        for t in sg.tensors or ():
            t.name = None
    if fold_reshapes:
        _fold_reshapes_into_fc(obj, schema)
    if fold_copies:
        _fold_duplicated_channels(obj, schema)
    builder = flatbuffers.Builder(len(model) + 1024)
    builder.Finish(obj.Pack(builder), file_identifier=b"TFL3")
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = f"{tmp}/in.tflite", f"{tmp}/out.tflite"
        with open(src, "wb") as f:
            f.write(bytes(builder.Output()))
        align.align_tflite_model(src, dst)
        with open(dst, "rb") as f:
            return f.read()


def to_tflite(quantized: Quantized, input_shape: tuple[int, int, int], *, strip: bool = True) -> bytes:
    """Convert an int8 program (NHWC input) to a fully int8 ``.tflite`` with int8 NHWC input and output.

    ``input_shape`` is the IR's ``(C, H, W)``; the flatbuffer is traced at batch 1. ``strip`` removes tensor
    names and signatures (:func:`strip_flatbuffer`).
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
            model = bytes(edge.model_content())
    except Exception as exc:  # the converter raises many types
        raise DeployError(f"litert-torch could not convert the int8 model: {exc}") from exc
    log.debug("litert-torch output: %s", sink.getvalue()[-2000:])
    return strip_flatbuffer(model) if strip else model


def to_tflite_float(model: torch.nn.Module, input_shape: tuple[int, int, int], *, strip: bool = True) -> bytes:
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
            flat = bytes(edge.model_content())
    except Exception as exc:
        raise DeployError(f"litert-torch could not convert the model: {exc}") from exc
    return strip_flatbuffer(flat) if strip else flat
