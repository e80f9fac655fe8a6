"""A padded strided average pool of a 1-channel tensor exports as ``CONCATENATION`` (two copies along
channels) -> ``AVERAGE_POOL_2D`` -> ``SLICE`` (one copy kept; :class:`tinyevo.deploy.model._TwoChannelPool`).
The native model folds the chain into the pool alone (bit-exact with TFLite-Micro, arena equal to the ``native``
estimate); unfolded, the ``CONCATENATION`` and ``SLICE`` kernels are bit-exact too. ``CONCATENATION`` along
other axes and ``SLICE`` are also checked on hand-built models (no export).

Needs the ``tinyevo[deploy]`` extra and a C compiler (skips otherwise)."""

from __future__ import annotations

import sys

import numpy as np
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
from tinyevo.errors import TinyEvoError
from tinyevo.spaces import create_space

pytestmark = pytest.mark.skipif(find_cc() is None, reason="needs a C compiler (cc / gcc / clang) on the PATH")
FEW = settings(max_examples=3, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
_CHAIN = ("CONCATENATION", "AVERAGE_POOL_2D", "SLICE")


def _ir(genome: str, hw: int = 12):  # noqa: ANN202
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
    """Every chain genome ``avgpool_k{k}_s{s}-flat`` that parses: bit-exact, arena = estimate, and where the
    export has the chain, no CONCATENATION / SLICE kernel is generated."""
    try:
        ir = _ir(f"avgpool_k{k}_s{s}-flat-dense_c8", hw)
    except TinyEvoError:
        return
    _lean, model = export_random_tflite(ir, seed=hw, calibration=16)
    exported = [op.kind for op in read_tflite(model).ops]
    result = check_network(ir, seed=hw, rows=4, model=model)
    assert result.bit_exact.exact, (exported, result.bit_exact)
    assert result.arena_matches_estimate, (exported, result.arena_bytes, result.estimated_arena_bytes)
    if _has_chain(exported):
        assert "SLICE" not in [op.kind for op in result.generated.ops]
