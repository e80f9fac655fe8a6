"""A dense layer reading a pool exports without a requantisation: the dense layer's flatten (and the layout
permute before it, :class:`tinyevo.deploy.model._DenseNHWC`) keep the pool's quantisation parameters.

Before, the flatten's input had an observer of its own (the permute was not annotated), which chose other
parameters than the pool's (histogram calibration), and the converter requantised: ``TRANSPOSE -> QUANTIZE ->
TRANSPOSE`` (``RESHAPE -> QUANTIZE`` for one channel) ran on TFLite-Micro with buffers and persistent data the
cost model did not price (a 32-bit arena of 1,680 B against an estimate of 1,376 B for
``avgpool_k2_s2-avgpool_k3_s2-flat-dense_c8`` on 13 x 13 x 1).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tflite_micro", reason="needs the tinyevo[deploy] extra (tflite-micro)")
pytest.importorskip("litert_torch", reason="needs the tinyevo[deploy] extra (litert-torch)")

from tinyevo.cost import estimate_cost, lower
from tinyevo.cost.tflm_tail import tail_spec_from_flatbuffer, tflm_arena_required
from tinyevo.deploy.graph import strip_passthrough
from tinyevo.deploy.model import load_weights
from tinyevo.deploy.quantize import QuantConfig, quantize_int8
from tinyevo.deploy.tflite import to_tflite
from tinyevo.deploy.tflm import inspect_flatbuffer
from tinyevo.deploy.tflm_allocations import measure_allocations
from tinyevo.ir import Conv2d, Dense, GraphBuilder, Pool2d
from tinyevo.spaces import create_space


def _pool_dense(mode: str, k: int, s: int, padding: str, c: int = 3, hw: int = 7):  # type: ignore[no-untyped-def]
    b = GraphBuilder((2, hw, hw))
    x = b.add(Conv2d(c, kernel=1, act="relu"), b.input)
    return b.build(b.add(Dense(4), b.add(Pool2d(mode, k, s, padding), x)))  # type: ignore[arg-type]


def _chain(genome: str, shape: tuple[int, int, int]):  # type: ignore[no-untyped-def]
    space = create_space("chain", input_shape=shape, num_classes=5)
    return space.decode(space.parse(genome))


@pytest.mark.parametrize("ir", [
    _chain("avgpool_k2_s2-avgpool_k3_s2-flat-dense_c8", (1, 13, 13)),
    _pool_dense("avg", 3, 2, "same"),
    _pool_dense("max", 2, 1, "valid"),
], ids=["one-channel-chain", "avg-same", "max-valid"])
def test_pool_then_dense_exports_the_lowered_kernels_and_the_arena_is_the_estimate(ir) -> None:  # type: ignore[no-untyped-def]
    lean = strip_passthrough(ir)
    rng = np.random.default_rng(0)
    model = load_weights(lean, None, seed=0)
    x = rng.normal(size=(32, *lean.input_shape)).astype(np.float32)
    q = quantize_int8(model, x, config=QuantConfig(calibration_samples=32, batch_size=16, qat_mode="never"),
                      rng=rng)
    fb = to_tflite(q, lean.input_shape)
    info = inspect_flatbuffer(fb)
    assert list(info.op_names()) == [op.tflite for op in lower(ir).ops]  # no TRANSPOSE / RESHAPE / QUANTIZE
    measured = measure_allocations(fb)  # child process
    assert measured.head == estimate_cost(ir, planner="tflm").peak_sram_bytes
    spec = tail_spec_from_flatbuffer(info)
    assert estimate_cost(ir).peak_sram_bytes == tflm_arena_required(spec, measured.head, pointer_size=4)
