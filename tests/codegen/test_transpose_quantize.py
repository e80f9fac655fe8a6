"""A dense layer straight after a pool: the converter wraps a requantisation of the dense layer's input in layout
transposes (``TRANSPOSE -> QUANTIZE -> TRANSPOSE``; tinyevo's exporter now shares the pool's parameters, so it
has none, and the tests that need the chain export as before, ``requantising_export``). The native model runs the folded ``QUANTIZE`` (in place)
bit-exact with TFLite-Micro, and its arena equals the cost model's ``native`` estimate; the unfolded
``TRANSPOSE`` and ``QUANTIZE`` kernels are bit-exact too.

Needs the ``tinyevo[deploy]`` extra and a C compiler (skips otherwise)."""

from __future__ import annotations

import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("torchao", reason="needs the tinyevo[deploy] extra (torchao)")
pytest.importorskip("litert_torch", reason="needs the tinyevo[deploy] extra (litert-torch)")
pytest.importorskip("tflite_micro", reason="needs the tinyevo[deploy] extra (tflite-micro)")

from tinyevo.codegen import check_network
from tinyevo.codegen.check import export_random_tflite
from tinyevo.codegen.host import find_cc
from tinyevo.codegen.tflite_model import read_tflite
from tinyevo.ir import Conv2d, Dense, GraphBuilder, Pool2d
from tinyevo.spaces import create_space

pytestmark = pytest.mark.skipif(find_cc() is None, reason="needs a C compiler (cc / gcc / clang) on the PATH")
FEW = settings(max_examples=2, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


def _pool_dense(mode: str, k: int, s: int, padding: str, c: int = 3, hw: int = 7):  # noqa: ANN202
    b = GraphBuilder((2, hw, hw))
    x = b.add(Conv2d(c, kernel=1, act="relu"), b.input)
    return b.build(b.add(Dense(4), b.add(Pool2d(mode, k, s, padding), x)))  # type: ignore[arg-type]


@FEW
@given(st.sampled_from(["avg", "max"]), st.sampled_from([2, 3]), st.sampled_from([1, 2]),
       st.sampled_from(["same", "valid"]), st.integers(1, 4))
def test_pool_then_dense_bit_exact_and_arena_equals_native_estimate(mode: str, k: int, s: int, padding: str,
                                                                    c: int) -> None:
    result = check_network(_pool_dense(mode, k, s, padding, c), rows=6, calibration=32)
    assert result.bit_exact.exact, result.bit_exact
    assert result.arena_matches_estimate, (result.arena_bytes, result.estimated_arena_bytes)
    _folded(result)


def _folded(result) -> None:  # noqa: ANN001
    """The generated kernels are the exported ops less the folded transposes (whether the exporter requantises
    the pool output at all depends on the calibration data)."""
    exported = [op.kind for op in read_tflite(result.tflite).ops]
    assert sorted(op.kind for op in result.generated.ops) == sorted(k for k in exported if k != "TRANSPOSE")


@pytest.fixture
def requantising_export(monkeypatch: pytest.MonkeyPatch) -> None:
    """Export as before the quantizer shared the pool's parameters through the dense layer's layout permute
    (``tinyevo.deploy.quantize._SHARED``): the dense layer's input gets an observer of its own, and the export
    the requantisation chain these tests fold (models converted elsewhere may have it)."""
    import torch

    from tinyevo.deploy import quantize

    monkeypatch.setattr(quantize, "_SHARED", quantize._SHARED - {torch.ops.aten.permute.default})


@pytest.mark.usefixtures("requantising_export")
def test_the_export_has_the_transpose_chain_and_the_model_runs_the_folded_quantize() -> None:
    ir = _pool_dense("avg", 3, 1, "valid")
    _lean, model = export_random_tflite(ir, calibration=16)
    kinds = [op.kind for op in read_tflite(model).ops]
    assert kinds == ["CONV_2D", "AVERAGE_POOL_2D", "TRANSPOSE", "QUANTIZE", "TRANSPOSE", "FULLY_CONNECTED"]
    result = check_network(ir, rows=6, model=model)
    assert result.bit_exact.exact and result.arena_matches_estimate
    ops = result.generated.ops
    assert [op.kind for op in ops] == ["CONV_2D", "AVERAGE_POOL_2D", "QUANTIZE", "FULLY_CONNECTED"]
    assert ops[2].inplace_of == ops[1].output  # the pool output dies at the QUANTIZE: no second buffer


@pytest.mark.usefixtures("requantising_export")
def test_unfolded_transpose_and_quantize_kernels_bit_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    generate_module = sys.modules["tinyevo.codegen.generate"]  # (the package's generate() shadows the module)
    monkeypatch.setattr(generate_module, "fold_layout_transposes", lambda model: model)
    ir = _pool_dense("avg", 3, 1, "valid")  # an export with the transpose chain (previous test)
    _lean, model = export_random_tflite(ir, calibration=16)
    result = check_network(ir, rows=6, model=model)
    kinds = [op.kind for op in result.generated.ops]
    assert kinds.count("TRANSPOSE") == 2 and "QUANTIZE" in kinds
    assert result.bit_exact.exact, result.bit_exact


def test_chain_genome_pool_flat_dense() -> None:
    space = create_space("chain", input_shape=(1, 8, 8), num_classes=3)
    ir = space.decode(space.parse("conv_k3_s1_c4-avgpool_k3_s1-flat-dense_c8"))
    result = check_network(ir, seed=2, rows=6, calibration=32)
    assert result.bit_exact.exact, result.bit_exact
    assert result.arena_matches_estimate, (result.arena_bytes, result.estimated_arena_bytes)
    _folded(result)
