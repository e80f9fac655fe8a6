"""A network whose first layer is a padded strided average pool of its 1-channel input: the exporter pools two
copies (``CONCATENATION`` + 2-channel ``AVERAGE_POOL_2D`` + ``SLICE``) and the TFLM estimates price that chain.

Before the lowering modelled the chain, the ``tflm`` head estimate of this network was 192 B against TFLM's
432 B (the input and its 288 B of copies are live together) and ``tflm-mcu`` 1,504 B against the 1,824 B a
32-bit MCU needs: a model that "fits" but not on the device. TFLM runs in a child process (the ``--verify``
probe); the default (histogram) calibration is used.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

pytest.importorskip("tflite_micro", reason="needs the tinyevo[deploy] extra (tflite-micro)")
pytest.importorskip("litert_torch", reason="needs the tinyevo[deploy] extra (litert-torch)")

from tinyevo.cost import TFLMArenaPlanner, estimate_cost, lower  # noqa: E402
from tinyevo.cost.tflm_tail import tail_spec_from_flatbuffer, tflm_arena_required, tflm_tail  # noqa: E402
from tinyevo.deploy.graph import strip_passthrough  # noqa: E402
from tinyevo.deploy.model import load_weights  # noqa: E402
from tinyevo.deploy.quantize import QuantConfig, quantize_int8  # noqa: E402
from tinyevo.deploy.tflite import to_tflite  # noqa: E402
from tinyevo.deploy.tflm import inspect_flatbuffer, measure_arena  # noqa: E402
from tinyevo.deploy.tflm_allocations import measure_allocations  # noqa: E402
from tinyevo.spaces import create_space  # noqa: E402

HOST = {"pointer_size": 8, "recording": True, "compression": True}  # the Python interpreter's TFLM


def test_two_copy_pool_arena_equals_the_tflm_estimates() -> None:
    space = create_space("chain", input_shape=(1, 12, 12), num_classes=5)
    ir = space.decode(space.parse("avgpool_k3_s2-conv_k3_s1_c4-flat-dense_c8"))
    lean = strip_passthrough(ir)
    rng = np.random.default_rng(0)
    model = load_weights(lean, None, seed=0)
    x = rng.normal(size=(16, *lean.input_shape)).astype(np.float32)
    q = quantize_int8(model, x, config=QuantConfig(calibration_samples=16, batch_size=16, qat_mode="never"),
                      rng=rng)
    fb = to_tflite(q, lean.input_shape)
    info = inspect_flatbuffer(fb)
    assert Counter(info.op_names()) == Counter(op.tflite for op in lower(ir).ops)
    assert info.op_names()[:3] == ("CONCATENATION", "AVERAGE_POOL_2D", "SLICE")

    arena = measure_arena(fb)  # child process; bisects the smallest working arena
    assert arena.head == estimate_cost(ir, planner="tflm").peak_sram_bytes == 144 + 288
    spec = tail_spec_from_flatbuffer(info)
    # (at an arena size that is a multiple of 16: measure_arena's default size may leave the tail 4 B off)
    assert tflm_tail(spec, **HOST).total == measure_allocations(fb).tail  # SLICE: no builtin data, no OpData
    # the arena the host's TFLM needs (bisected) is the 64-bit tflm-mcu estimate, not one byte under
    host = estimate_cost(ir, planner=TFLMArenaPlanner(**HOST)).peak_sram_bytes
    assert arena.required <= host <= arena.required + 16
    # the default planner: TFLM's rule on a 32-bit MCU with the measured head
    assert estimate_cost(ir).peak_sram_bytes == tflm_arena_required(spec, arena.head, pointer_size=4)
