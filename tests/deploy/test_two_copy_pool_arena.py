"""A network whose first layer is a padded strided average pool of its 1-channel input.

litert-torch cannot export that pool as a kernel TFLite-Micro runs, so the exporter pools two copies
(:class:`tinyevo.deploy.model._TwoChannelPool`: ``CONCATENATION`` + 2-channel ``AVERAGE_POOL_2D`` + ``SLICE``)
and then folds the chain back into one ``AVERAGE_POOL_2D`` on the input (:func:`tinyevo.deploy.tflite.
strip_flatbuffer`). Unfolded, TFLM's arena head was 432 B against the 192 B the cost model estimates (the input
and its 288 B of copies are live together): a model that "fits" but not on the device. Folded, the model is
bit-exact with the unfolded one on TFLM and its arena is the estimate. TFLM runs in child processes (the
``--verify`` probe) first; the default (histogram) calibration is used.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

pytest.importorskip("tflite_micro", reason="needs the tinyevo[deploy] extra (tflite-micro)")
pytest.importorskip("litert_torch", reason="needs the tinyevo[deploy] extra (litert-torch)")

from tinyevo.cost import TFLMArenaPlanner, estimate_cost, lower
from tinyevo.cost.tflm_tail import tail_spec_from_flatbuffer, tflm_arena_required, tflm_tail
from tinyevo.deploy.graph import strip_passthrough
from tinyevo.deploy.model import load_weights
from tinyevo.deploy.quantize import QuantConfig, quantize_int8
from tinyevo.deploy.tflite import strip_flatbuffer, to_tflite
from tinyevo.deploy.tflm import inspect_flatbuffer, measure_arena, run_tflm
from tinyevo.deploy.tflm_allocations import measure_allocations
from tinyevo.spaces import create_space

HOST = {"pointer_size": 8, "recording": True, "compression": True}  # the Python interpreter's TFLM
CHAIN = ("CONCATENATION", "AVERAGE_POOL_2D", "SLICE")


def test_two_copy_pool_is_folded_bit_exact_and_the_arena_equals_the_estimates() -> None:
    space = create_space("chain", input_shape=(1, 12, 12), num_classes=5)
    ir = space.decode(space.parse("avgpool_k3_s2-conv_k3_s1_c4-flat-dense_c8"))
    lean = strip_passthrough(ir)
    rng = np.random.default_rng(0)
    model = load_weights(lean, None, seed=0)
    x = rng.normal(size=(16, *lean.input_shape)).astype(np.float32)
    q = quantize_int8(model, x, config=QuantConfig(calibration_samples=16, batch_size=16, qat_mode="never"),
                      rng=rng)
    raw = to_tflite(q, lean.input_shape, strip=False)
    chain = strip_flatbuffer(raw, fold_copies=False)
    folded = strip_flatbuffer(raw)
    assert inspect_flatbuffer(chain).op_names()[:3] == CHAIN  # what the converter gives
    info = inspect_flatbuffer(folded)
    assert Counter(info.op_names()) == Counter(op.tflite for op in lower(ir).ops)
    assert len(info.tensors) == len(inspect_flatbuffer(chain).tensors) - 4  # copies, pooled copies, begin, size
    assert len(folded) < len(chain)

    # the same int8 outputs on TFLM, folded or not
    rows = rng.normal(scale=2.0, size=(32, *lean.input_shape)).astype(np.float32)
    np.testing.assert_array_equal(run_tflm(folded, rows).logits, run_tflm(chain, rows).logits)

    before, after = measure_arena(chain), measure_arena(folded)  # child processes; bisected smallest arenas
    assert before.head == 144 + 288  # input and its two copies, live together
    assert after.head == estimate_cost(ir, planner="tflm").peak_sram_bytes == 144 + 48
    spec = tail_spec_from_flatbuffer(info)
    # (at an arena size that is a multiple of 16: measure_arena's default size may leave the tail 4 B off)
    assert tflm_tail(spec, **HOST).total == measure_allocations(folded).tail
    # the host's smallest working arena is the 64-bit tflm-mcu estimate (its arena start may cost up to 16 B)
    host = estimate_cost(ir, planner=TFLMArenaPlanner(**HOST)).peak_sram_bytes
    assert after.required <= host <= after.required + 16
    # the default planner: TFLM's rule on a 32-bit MCU with the measured head
    assert estimate_cost(ir).peak_sram_bytes == tflm_arena_required(spec, after.head, pointer_size=4)
    # the unfolded chain's tail model (SLICE: no builtin data, no OpData) is exact too
    assert tflm_tail(tail_spec_from_flatbuffer(inspect_flatbuffer(chain)), **HOST).total == \
        measure_allocations(chain).tail
