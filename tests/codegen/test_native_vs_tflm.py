"""The generated C model against TFLite-Micro on the same ``.tflite``: each kernel on small random networks
(hypothesis over shapes, strides, padding, channels), a whole network end to end, warning-free builds, and the
arena macro against the cost model's ``native`` planner.

Needs the ``tinyevo[deploy]`` extra (export and TFLM) and a C compiler; skips with a message otherwise. Each
example exports a one-op network with random weights (about ten seconds), so the example counts are small and
derandomised (the same shapes on every run)."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("torchao", reason="needs the tinyevo[deploy] extra (torchao)")
pytest.importorskip("litert_torch", reason="needs the tinyevo[deploy] extra (litert-torch)")
pytest.importorskip("tflite_micro", reason="needs the tinyevo[deploy] extra (tflite-micro)")

from tinyevo.codegen import (
    CodegenError,
    build_host,
    check_network,
    compare,
    quantize_input,
    tflm_outputs,
)
from tinyevo.codegen.host import find_cc
from tinyevo.cost import estimate_cost
from tinyevo.ir import Add, Concat, Conv2d, Dense, DepthwiseConv2d, GlobalPool, GraphBuilder, Pool2d
from tinyevo.spaces import create_space

CC = find_cc()
pytestmark = pytest.mark.skipif(CC is None, reason="needs a C compiler (cc / gcc / clang) on the PATH")
FEW = settings(max_examples=2, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
ACTS = st.sampled_from(["none", "relu", "relu6"])


def _exact(ir, seed: int = 0):  # noqa: ANN001, ANN202
    result = check_network(ir, seed=seed, rows=6, calibration=32)
    assert result.bit_exact.exact, result.bit_exact
    assert result.arena_matches_estimate, (result.arena_bytes, result.estimated_arena_bytes)
    return result


@FEW
@given(st.integers(1, 4), st.integers(1, 6), st.integers(4, 9), st.sampled_from([1, 3, 5]),
       st.sampled_from([1, 2]), st.sampled_from(["same", "valid"]), ACTS)
def test_conv(c_in: int, c_out: int, hw: int, k: int, s: int, padding: str, act: str) -> None:
    b = GraphBuilder((c_in, hw, hw))
    x = b.add(Conv2d(c_out, kernel=k, stride=s, padding=padding, act=act), b.input)  # type: ignore[arg-type]
    ir = b.build(b.add(Dense(3), x))  # (a network ending in a feature map exports layout transposes)
    kinds = [op.kind for op in _exact(ir).generated.ops]
    # a conv of one input channel runs as a depthwise conv
    assert kinds == ["DEPTHWISE_CONV_2D" if c_in == 1 else "CONV_2D", "FULLY_CONNECTED"]


@FEW
@given(st.integers(2, 6), st.integers(4, 9), st.sampled_from([3, 5]), st.sampled_from([1, 2]),
       st.sampled_from(["same", "valid"]), ACTS)
def test_depthwise_in_place_and_not(c: int, hw: int, k: int, s: int, padding: str, act: str) -> None:
    b = GraphBuilder((c, hw, hw))
    x = b.add(Conv2d(c, kernel=1), b.input)
    y = b.add(DepthwiseConv2d(kernel=k, stride=s, padding=padding, act=act), x)  # type: ignore[arg-type]
    ir = b.build(b.add(Dense(3), b.add(Conv2d(3, kernel=1), y)))
    result = _exact(ir)
    dw = [op for op in result.generated.ops if op.kind == "DEPTHWISE_CONV_2D"]
    assert len(dw) == 1


@FEW
@given(st.sampled_from(["avg", "max"]), st.sampled_from([2, 3]), st.sampled_from([1, 2]),
       st.sampled_from(["same", "valid"]), st.integers(1, 4), st.integers(5, 9))
def test_pool(mode: str, k: int, s: int, padding: str, c: int, hw: int) -> None:
    b = GraphBuilder((c, hw, hw))
    x = b.add(Conv2d(4, kernel=1, act="relu"), b.input)
    p = b.add(Pool2d(mode, k, s, padding), x)  # type: ignore[arg-type]
    # (a dense layer straight after a pool exports TRANSPOSE / QUANTIZE ops around it: a 1x1 conv in between)
    ir = b.build(b.add(Dense(3), b.add(Conv2d(3, kernel=1), p)))
    _exact(ir)


@FEW
@given(st.sampled_from(["avg", "max"]), st.integers(1, 6), st.integers(1, 6), ACTS)
def test_global_pool_and_dense(mode: str, c: int, hw: int, act: str) -> None:
    b = GraphBuilder((2, hw, hw))
    x = b.add(Conv2d(c, kernel=1), b.input)
    g = b.add(GlobalPool(mode), x)  # type: ignore[arg-type]
    ir = b.build(b.add(Dense(5), b.add(Dense(7, act=act), g)))  # type: ignore[arg-type]
    kinds = {op.kind for op in _exact(ir).generated.ops}
    assert "FULLY_CONNECTED" in kinds


@FEW
@given(st.integers(1, 5), st.integers(1, 5), st.integers(3, 7), ACTS)
def test_add_concat(c1: int, c2: int, hw: int, act: str) -> None:
    b = GraphBuilder((3, hw, hw))
    x = b.add(Conv2d(c1, kernel=3), b.input)
    y = b.add(Conv2d(c1, kernel=1), b.input)
    z = b.add(Conv2d(c2, kernel=3, act="relu"), b.input)
    a = b.add(Add(act=act), x, y)  # type: ignore[arg-type]
    cat = b.add(Concat(), a, z)
    ir = b.build(b.add(Dense(3), b.add(Conv2d(4, kernel=1), cat)))
    kinds = {op.kind for op in _exact(ir).generated.ops}
    assert {"ADD", "CONCATENATION"} <= kinds


@pytest.fixture(scope="module")
def network() -> tuple[object, object]:
    space = create_space("blocks", input_shape=(3, 12, 12), num_classes=10)
    ir = space.decode(space.sample(np.random.default_rng(3)))
    return ir, check_network(ir, seed=3, rows=24, calibration=64)


def test_network_end_to_end_bit_exact_with_in_place_ops(network) -> None:  # noqa: ANN001
    ir, result = network
    assert result.bit_exact.exact and result.bit_exact.rows == 24
    gen = result.generated
    assert any(op.inplace_of for op in gen.ops), "expected an in-place kernel in a blocks network"
    assert len({op.kind for op in gen.ops}) >= 4


def test_arena_macro_equals_the_native_planner(network) -> None:  # noqa: ANN001
    ir, result = network
    gen = result.generated
    macro = int(re.search(r"#define TINYEVO_MODEL_ARENA_BYTES\s+(\d+)", gen.h_source).group(1))
    assert macro == gen.arena_bytes == estimate_cost(ir, planner="native").peak_sram_bytes
    assert int(re.search(r"#define TINYEVO_MODEL_INPUT_BYTES\s+(\d+)", gen.h_source).group(1)) == int(
        np.prod(ir.input_shape))


def test_generated_c_builds_warning_free_and_clean_under_ubsan(network, tmp_path) -> None:  # noqa: ANN001
    _ir, result = network
    gen = result.generated
    x = quantize_input(np.random.default_rng(0).normal(size=(4, *result.ir.input_shape)), *gen.input_quant)
    extra = ("-Wshadow", "-Wconversion", "-Wno-sign-conversion")
    plain = build_host(gen, tmp_path / "plain", extra_flags=extra).run(x)  # -Werror: any warning fails
    probe = subprocess.run([CC, "-fsanitize=undefined", "-x", "c", "-", "-o", str(tmp_path / "p")],
                           input="int main(void){return 0;}", capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip("the C compiler has no -fsanitize=undefined")
    ub = build_host(gen, tmp_path / "ubsan", extra_flags=("-fsanitize=undefined",
                                                          "-fno-sanitize-recover=undefined")).run(x)
    assert np.array_equal(plain, ub)
    assert compare(plain, tflm_outputs(result.tflite, x)).exact


def test_op_hooks_are_called_once_per_kernel(network, tmp_path) -> None:  # noqa: ANN001
    _ir, result = network
    gen = result.generated
    hook = tmp_path / "hook.c"
    hook.write_text("#include <stdio.h>\nvoid tinyevo_model_op_hook(int op, int end);\n"
                    "void tinyevo_model_op_hook(int op, int end)\n"
                    "{ fprintf(stderr, \"%d:%d\\n\", op, end); }\n")
    build = build_host(gen, tmp_path / "h", extra_flags=("-DTINYEVO_MODEL_OP_HOOKS", str(hook)))
    x = np.zeros((1, gen.input_bytes), np.int8)
    proc = subprocess.run([str(build.executable)], input=x.tobytes(), capture_output=True, check=True)
    events = proc.stderr.decode().split()
    assert events == [f"{i}:{e}" for i in range(len(gen.ops)) for e in (0, 1)]


def test_padded_average_pool_with_div() -> None:
    b = GraphBuilder((2, 6, 6))
    x = b.add(Conv2d(3, kernel=1), b.input)
    ir = b.build(b.add(Dense(3), b.add(Pool2d("avg", 2, 1, "same"), x)))  # PAD + AVERAGE_POOL_2D + DIV
    kinds = [op.kind for op in _exact(ir).generated.ops]
    assert "DIV" in kinds and "PAD" in kinds


def test_unsupported_op_is_a_clear_error() -> None:
    from tinyevo.codegen.generate import graph_from_tflite
    from tinyevo.codegen.tflite_model import OpQ, TensorQ, TfliteModel

    t = (TensorQ(0, (1, 4, 4, 2), "int8", (0.1,), (0,)), TensorQ(1, (1, 4, 4, 2), "int8", (0.1,), (0,)))
    with pytest.raises(CodegenError, match="TANH"):
        graph_from_tflite(TfliteModel(t, (OpQ(0, "TANH", (0,), (1,)),), (0,), (1,)))
