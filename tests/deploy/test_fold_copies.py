"""``strip_flatbuffer`` folds ``CONCATENATION(x, x) -> pool -> SLICE(one copy)`` into the pool on ``x``, and only
then: hand-built int8 models (no converter), the folded one run on TFLite-Micro against the original."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tflite_micro", reason="needs the tinyevo[deploy] extra (tflite-micro)")

from tinyevo.deploy.tflite import strip_flatbuffer
from tinyevo.deploy.tflm import inspect_flatbuffer, run_tflm


def _chain_model(*, begin: list[int], size: list[int], pooled_is_output: bool = False, copies: int = 2) -> bytes:
    """x [1,6,6,1] -> CONCATENATION(x x copies, axis 3) -> AVERAGE_POOL_2D (SAME, 3x3, stride 2) -> SLICE."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as s

    m = s.ModelT()
    m.version = 3
    m.buffers = [s.BufferT()]
    sg = s.SubGraphT()
    sg.tensors = []

    def tensor(dims: list[int], data: list[int] | None = None) -> int:
        t = s.TensorT()
        t.shape = list(dims)
        t.buffer = 0
        if data is None:
            t.type = s.TensorType.INT8
            t.quantization = s.QuantizationParametersT()
            t.quantization.scale, t.quantization.zeroPoint = [0.05], [3]
        else:
            t.type = s.TensorType.INT32
            b = s.BufferT()
            b.data = list(np.asarray(data, "<i4").tobytes())
            m.buffers.append(b)
            t.buffer = len(m.buffers) - 1
        sg.tensors.append(t)
        return len(sg.tensors) - 1

    x = tensor([1, 6, 6, 1])
    cat = tensor([1, 6, 6, copies])
    pooled = tensor([1, 3, 3, copies])
    out = tensor([n if n != -1 else d - b for n, d, b in zip(size, [1, 3, 3, copies], begin, strict=True)])
    b_t, n_t = tensor([4], begin), tensor([4], size)
    codes = []
    for code in (s.BuiltinOperator.CONCATENATION, s.BuiltinOperator.AVERAGE_POOL_2D, s.BuiltinOperator.SLICE):
        c = s.OperatorCodeT()
        c.builtinCode = c.deprecatedBuiltinCode = code
        c.version = 1
        codes.append(c)
    m.operatorCodes = codes

    def operator(code: int, ins: list[int], outs: list[int], opt_type: int = 0, opt: object = None) -> object:
        o = s.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = code, ins, outs
        o.builtinOptionsType, o.builtinOptions = opt_type, opt
        return o

    cat_opt = s.ConcatenationOptionsT()
    cat_opt.axis = 3
    pool_opt = s.Pool2DOptionsT()
    pool_opt.padding = s.Padding.SAME
    pool_opt.strideW = pool_opt.strideH = 2
    pool_opt.filterWidth = pool_opt.filterHeight = 3
    sg.operators = [
        operator(0, [x] * copies, [cat], s.BuiltinOptions.ConcatenationOptions, cat_opt),
        operator(1, [cat], [pooled], s.BuiltinOptions.Pool2DOptions, pool_opt),
        operator(2, [pooled, b_t, n_t], [out], s.BuiltinOptions.SliceOptions, s.SliceOptionsT()),
    ]
    sg.inputs = [x]
    sg.outputs = [out, pooled] if pooled_is_output else [out]
    m.subgraphs = [sg]
    builder = flatbuffers.Builder(1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _ops(model: bytes) -> tuple[str, ...]:
    return inspect_flatbuffer(model).op_names()


@pytest.mark.parametrize(("copies", "begin", "size"), [
    (2, [0, 0, 0, 0], [1, 3, 3, 1]),
    (2, [0, 0, 0, 1], [-1, -1, -1, 1]),  # the other copy, "to the end" sizes
    (3, [0, 0, 0, 2], [1, 3, 3, 1]),
])
def test_chain_folds_into_one_pool_with_the_same_outputs_on_tflm(copies: int, begin: list[int],
                                                                 size: list[int]) -> None:
    model = _chain_model(begin=begin, size=size, copies=copies)
    chain = strip_flatbuffer(model, fold_copies=False)
    folded = strip_flatbuffer(model)
    assert _ops(chain) == ("CONCATENATION", "AVERAGE_POOL_2D", "SLICE")
    assert _ops(folded) == ("AVERAGE_POOL_2D",)
    info = inspect_flatbuffer(folded)
    assert [t.shape for t in info.tensors] == [(1, 6, 6, 1), (1, 3, 3, 1)]  # copies, begin and size gone
    assert len(folded) < len(chain)
    rows = np.random.default_rng(0).normal(scale=0.3, size=(8, 1, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(run_tflm(folded, rows).logits, run_tflm(chain, rows).logits)


@pytest.mark.parametrize(("begin", "size", "pooled_is_output"), [
    ([0, 0, 0, 0], [1, 2, 3, 1], False),  # not all of H
    ([0, 0, 0, 0], [1, 3, 3, 2], False),  # both copies
    ([0, 0, 0, 0], [1, 3, 3, 1], True),  # the pooled copies are read elsewhere (a model output)
])
def test_chain_stays_when_the_fold_would_change_the_model(begin: list[int], size: list[int],
                                                          pooled_is_output: bool) -> None:
    model = _chain_model(begin=begin, size=size, pooled_is_output=pooled_is_output)
    assert _ops(strip_flatbuffer(model)) == ("CONCATENATION", "AVERAGE_POOL_2D", "SLICE")
