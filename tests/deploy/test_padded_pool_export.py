"""A SAME average pool with an even kernel after a chain of pools exports without a requantising QUANTIZE op.

Its explicit zero PAD shares the producer's quantisation parameters (an unannotated pad got its own observer,
whose narrower range made the converter insert a QUANTIZE before the PAD, an op the cost model does not have).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torchao", reason="needs the tinyevo[deploy] extra (torchao)")
pytest.importorskip("litert_torch", reason="needs the tinyevo[deploy] extra (litert-torch)")
pytest.importorskip("tflite_micro", reason="needs the tinyevo[deploy] extra (tflite-micro)")

from tinyevo.cost import estimate_cost, lower
from tinyevo.deploy.graph import strip_passthrough
from tinyevo.deploy.model import load_weights
from tinyevo.deploy.quantize import QuantConfig, quantize_int8
from tinyevo.deploy.tflite import to_tflite
from tinyevo.deploy.tflm import inspect_flatbuffer
from tinyevo.spaces import create_space

# the benchmark network that had the extra QUANTIZE (tflm_vs_estimate.py --seed 0, chain-0): the padded
# avgpool_k2_s1 reads a max pool whose parameters are shared from the conv two pools upstream
GENOME = "conv_k1_s2_c2_r-maxpool_k3_s2-dsc_k5_s2_c24-maxpool_k3_s2-avgpool_k3_s1-maxpool_k3_s1-avgpool_k2_s1-flat"


def test_padded_average_pool_needs_no_requantisation() -> None:
    space = create_space("chain", input_shape=(1, 28, 28), num_classes=10)
    ir = space.decode(space.parse(GENOME))
    lean = strip_passthrough(ir)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, *lean.input_shape)).astype(np.float32)
    q = quantize_int8(load_weights(lean, None, seed=0), x, rng=rng,
                      config=QuantConfig(calibration_samples=16, batch_size=16, observer="minmax", qat_mode="never"))
    fb = to_tflite(q, lean.input_shape)
    info = inspect_flatbuffer(fb)
    names = info.op_names()
    assert "QUANTIZE" not in names and "PAD" in names and "DIV" in names
    real: dict[str, int] = {}
    for n in names:
        real[n] = real.get(n, 0) + 1
    est: dict[str, int] = {}
    for op in lower(ir).ops:
        est[op.tflite] = est.get(op.tflite, 0) + 1
    assert real == est
    assert abs(estimate_cost(ir).flash_bytes - len(fb)) <= 0.05 * len(fb)
