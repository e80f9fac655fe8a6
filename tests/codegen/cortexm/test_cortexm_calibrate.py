"""The latency fit on synthetic measurements whose instruction counts follow a known formula (the oracle)."""

from __future__ import annotations

import numpy as np
import pytest

from tinyevo.codegen.cortexm.calibrate import Measurement, fit, predict_from_records, relative_errors
from tinyevo.codegen.cortexm.firmware import SizeReport
from tinyevo.codegen.generate import OpRecord

# instructions = per-kernel formula of (MACs, output elements, output pixels, input bytes, channels, 1); every
# kernel reads the network input (c_in channels, one value per network)
TRUTH = {
    "CONV_2D": lambda macs, el, px, ib, c: 4.0 * macs + 6.0 * el + 30.0 * px + 200.0,
    "DEPTHWISE_CONV_2D": lambda macs, el, px, ib, c: 9.0 * macs + 12.0 * el + 0.5 * ib + 150.0,
    "ADD": lambda macs, el, px, ib, c: 7.0 * el + 80.0,
}


def _record(i: int, kind: str, c_in: int, rng: np.random.Generator) -> tuple[OpRecord, int]:
    c, h = int(rng.integers(2, 64)), int(rng.integers(2, 24))
    if kind != "CONV_2D":
        c = c_in
    k = int(rng.choice([1, 3, 5])) if kind != "ADD" else 0
    macs = {"CONV_2D": c * h * h * c_in * k * k, "DEPTHWISE_CONV_2D": c * h * h * k * k, "ADD": 0}[kind]
    bytes_in = c_in * h * h * (2 if kind == "ADD" else 1)
    rec = OpRecord(index=i, kind=kind, op_class={"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "depthwise",
                                                   "ADD": "elementwise"}[kind],
                   tflite_index=i, output=f"t{i + 1}", inputs=("t0",), output_shape=(1, h, h, c), macs=macs,
                   bytes_in=bytes_in, bytes_out=c * h * h, weight_bytes=0, input_offsets=(0,), output_offset=0)
    n = TRUTH[kind](macs, c * h * h, h * h, bytes_in, c)
    return rec, int(round(n))


def _network(rng: np.random.Generator) -> Measurement:
    kinds = rng.choice(sorted(TRUTH), size=int(rng.integers(3, 9)))
    c_in = int(rng.integers(1, 32))
    pairs = [_record(i, str(k), c_in, rng) for i, k in enumerate(kinds)]
    io = int(rng.integers(100, 3000))
    glue = 40 + 9 * len(pairs) + 0.25 * io
    counts = tuple(n for _, n in pairs)
    return Measurement(target="cortex-m4", ops=tuple(r for r, _ in pairs), op_instructions=counts,
                       instructions=int(round(sum(counts) + glue)), outputs=np.zeros((1, 1), np.int8),
                       size=SizeReport(0, 0, 0, 0), model_size=SizeReport(0, 0, 0, 0), input_output_bytes=io,
                       input_channels=c_in)


def test_fit_recovers_the_formula_and_predicts_held_back_networks():
    rng = np.random.default_rng(0)
    train = [_network(rng) for _ in range(40)]
    test = [_network(rng) for _ in range(10)]
    table = fit(train, min_samples=5)
    assert set(table["kernels"]) == set(TRUTH)
    conv = table["kernels"]["CONV_2D"]
    assert conv[0] == pytest.approx(4.0, rel=1e-3) and conv[1] == pytest.approx(6.0, rel=1e-2)
    assert conv[5] == pytest.approx(200.0, rel=0.05)
    errors = relative_errors((predict_from_records(table, m) for m in test), (m.instructions for m in test))
    assert np.max(np.abs(errors)) < 1e-3


def test_rare_kernels_fall_back_to_their_class():
    rng = np.random.default_rng(1)
    table = fit([_network(rng) for _ in range(3)], min_samples=10_000)
    assert table["kernels"] == {} and set(table["classes"]) == {"conv", "depthwise", "elementwise"}
