"""A padded strided average pool of a 1-channel tensor converts to ``CONCATENATION`` (two copies along
channels) -> ``AVERAGE_POOL_2D`` -> ``SLICE`` (one copy kept; :class:`tinyevo.deploy.model._TwoChannelPool`);
the exporter folds the chain, but these tests keep it (models exported elsewhere may have it).
The native model folds the chain into the pool alone (bit-exact with TFLite-Micro, arena equal to the ``native``
estimate); unfolded, the ``CONCATENATION`` and ``SLICE`` kernels are bit-exact too. ``CONCATENATION`` along
other axes and ``SLICE`` are also checked on hand-built models (no export).

Needs the ``tinyevo[deploy]`` extra and a C compiler (skips otherwise)."""

from __future__ import annotations

import sys
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

pytest.importorskip("torchao", reason="needs the tinyevo[deploy] extra (torchao)")
pytest.importorskip("litert_torch", reason="needs the tinyevo[deploy] extra (litert-torch)")
pytest.importorskip("tflite_micro", reason="needs the tinyevo[deploy] extra (tflite-micro)")

from tinyevo.codegen import build_host, check_network, generate
from tinyevo.codegen.check import export_random_tflite
from tinyevo.codegen.host import check_bit_exact, find_cc
from tinyevo.codegen.tflite_model import read_tflite
from tinyevo.errors import TinyEvoError
from tinyevo.spaces import create_space

pytestmark = pytest.mark.skipif(find_cc() is None, reason="needs a C compiler (cc / gcc / clang) on the PATH")


@pytest.fixture(autouse=True)
def _export_keeps_the_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exporter folds the chain itself (:func:`tinyevo.deploy.tflite.strip_flatbuffer`); these tests keep it
    in the ``.tflite`` to check the generator's own fold (models exported elsewhere may have the chain)."""
    from tinyevo.deploy import tflite

    monkeypatch.setattr(tflite, "_fold_duplicated_channels", lambda obj, schema: 0)


FEW = settings(max_examples=3, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
_CHAIN = ("CONCATENATION", "AVERAGE_POOL_2D", "SLICE")


def _ir(genome: str, hw: int = 12):
    space = create_space("chain", input_shape=(1, hw, hw), num_classes=5)
    return space.decode(space.parse(genome))


def _has_chain(kinds: list[str]) -> bool:
    return any(tuple(kinds[i:i + 3]) == _CHAIN for i in range(len(kinds) - 2))


@pytest.mark.parametrize("genome", ["avgpool_k3_s2-flat", "avgpool_k3_s2-avgpool_k3_s2-flat-dense_c8"])
def test_two_channel_pool_chain_folds_bit_exact_and_arena_equals_estimate(genome: str) -> None:
    ir = _ir(genome)
    _lean, model = export_random_tflite(ir, seed=1, calibration=32)
    exported = [op.kind for op in read_tflite(model).ops]
    assert _has_chain(exported), exported
    result = check_network(ir, seed=1, rows=8, model=model)
    assert result.bit_exact.exact, result.bit_exact
    assert result.arena_matches_estimate, (result.arena_bytes, result.estimated_arena_bytes)
    kinds = [op.kind for op in result.generated.ops]
    assert "SLICE" not in kinds and "CONCATENATION" not in kinds
    assert kinds.count("AVERAGE_POOL_2D") == exported.count("AVERAGE_POOL_2D")


def test_unfolded_concatenation_and_slice_kernels_bit_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    generate_module = sys.modules["tinyevo.codegen.generate"]  # (the package's generate() shadows the module)
    monkeypatch.setattr(generate_module, "fold_duplicated_channels", lambda model: model)
    ir = _ir("avgpool_k3_s2-avgpool_k3_s2-flat-dense_c8")
    result = check_network(ir, seed=2, rows=8, calibration=32)
    kinds = [op.kind for op in result.generated.ops]
    assert kinds.count("SLICE") == 2 and kinds.count("CONCATENATION") == 2, kinds
    assert result.bit_exact.exact, result.bit_exact


@FEW
@given(st.sampled_from([2, 3]), st.sampled_from([2, 3]), st.integers(5, 11))
def test_padded_strided_one_channel_pools(k: int, s: int, hw: int) -> None:
    """Chain genomes ``avgpool_k{k}_s{s}-flat-dense_c8`` on an ``hw x hw`` 1-channel input whose TF "SAME" pool
    pads (total padding ``(ceil(hw / s) - 1) * s + k - hw > 0``): the export has the chain, the model runs
    without it, bit-exact, with the arena equal to the estimate."""
    assume((-(-hw // s) - 1) * s + k - hw > 0)
    try:
        ir = _ir(f"avgpool_k{k}_s{s}-flat-dense_c8", hw)
    except TinyEvoError:
        assume(False)
    _lean, model = export_random_tflite(ir, seed=hw, calibration=16)
    exported = [op.kind for op in read_tflite(model).ops]
    assert _has_chain(exported), exported
    result = check_network(ir, seed=hw, rows=4, model=model)
    assert result.bit_exact.exact, (exported, result.bit_exact)
    assert result.arena_matches_estimate, (exported, result.arena_bytes, result.estimated_arena_bytes)
    kinds = [op.kind for op in result.generated.ops]
    assert "SLICE" not in kinds and "CONCATENATION" not in kinds, kinds


def _slice_concat_model(shape: tuple[int, ...], axis: int, begin1: list[int], size1: list[int],
                        begin2: list[int], size2: list[int], size2_operand: list[int]) -> bytes:
    """A hand-built int8 ``.tflite``: ``out = SLICE(CONCATENATION(x, SLICE(x), x; axis))`` (one quantisation
    throughout, as TFLM's int8 concatenation requires); ``size2_operand``: the second slice's size operand
    (``size2`` with -1 for "to the end" where wanted)."""
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

    cat_shape = list(shape)
    cat_shape[axis] = 2 * shape[axis] + size1[axis]
    x, y1, z, out = tensor(list(shape)), tensor(size1), tensor(cat_shape), tensor(size2)
    b1, n1, b2, n2 = (tensor([4], begin1), tensor([4], size1), tensor([4], begin2),
                      tensor([4], size2_operand))
    codes = []
    for code in (s.BuiltinOperator.SLICE, s.BuiltinOperator.CONCATENATION):
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

    cat = s.ConcatenationOptionsT()
    cat.axis = axis
    sg.operators = [
        operator(0, [x, b1, n1], [y1], s.BuiltinOptions.SliceOptions, s.SliceOptionsT()),
        operator(1, [x, y1, x], [z], s.BuiltinOptions.ConcatenationOptions, cat),
        operator(0, [z, b2, n2], [out], s.BuiltinOptions.SliceOptions, s.SliceOptionsT()),
    ]
    sg.inputs, sg.outputs = [x], [out]
    m.subgraphs = [sg]
    builder = flatbuffers.Builder(1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@st.composite
def _slice_concat_case(draw: st.DrawFn) -> tuple:  # type: ignore[type-arg]
    shape = (1, *(draw(st.integers(1, 4)) for _ in range(3)))
    axis = draw(st.integers(0, 3))

    def window(dims: tuple[int, ...]) -> tuple[list[int], list[int]]:
        begin = [draw(st.integers(0, d - 1)) for d in dims]
        return begin, [draw(st.integers(1, d - b)) for d, b in zip(dims, begin, strict=True)]

    begin1, size1 = window(shape)
    for d in range(4):  # the concatenated slice matches x outside the axis
        if d != axis:
            begin1[d], size1[d] = 0, shape[d]
    cat_shape = list(shape)
    cat_shape[axis] = 2 * shape[axis] + size1[axis]
    begin2, size2 = window(tuple(cat_shape))
    if draw(st.booleans()):  # TFLM's size -1: to the end
        d = draw(st.integers(0, 3))
        size2[d] = cat_shape[d] - begin2[d]
        return shape, axis, begin1, size1, begin2, size2, d
    return shape, axis, begin1, size1, begin2, size2, None


@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(case=_slice_concat_case())
def test_concatenation_any_axis_and_slice_bit_exact_on_hand_built_models(case: tuple) -> None:  # type: ignore[type-arg]
    shape, axis, begin1, size1, begin2, size2, to_end = case
    n2 = list(size2)
    if to_end is not None:
        n2[to_end] = -1
    model = _slice_concat_model(shape, axis, begin1, size1, begin2, size2, n2)
    gen = generate(model)
    assert [op.kind for op in gen.ops] == ["SLICE", "CONCATENATION", "SLICE"]
    x = np.random.default_rng(len(gen.c_source)).integers(-128, 128, size=(4, *shape), dtype=np.int8)
    with tempfile.TemporaryDirectory(prefix="tinyevo-slice-") as tmp:
        bit = check_bit_exact(model, gen, x, work_dir=tmp)
        native = build_host(gen, tmp).run(x[:1])
    assert bit.exact, (case, bit)
    # an independent oracle: numpy's concatenate and basic slicing
    cat = np.concatenate([x[0], x[0][tuple(slice(b, b + n) for b, n in zip(begin1, size1, strict=True))], x[0]],
                         axis=axis)
    want = cat[tuple(slice(b, b + n) for b, n in zip(begin2, size2, strict=True))]
    assert np.array_equal(native.reshape(-1), want.reshape(-1))
