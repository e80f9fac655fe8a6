"""The whole round trip for one architecture: random weights -> int8 ``.tflite`` -> native C -> host build ->
bit-exact comparison with TFLite-Micro, and the arena against the cost model's ``native`` estimate."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyevo.codegen.generate import GeneratedModel, generate
from tinyevo.codegen.host import BitExact, check_bit_exact, quantize_input
from tinyevo.ir import ArchIR


@dataclass(frozen=True)
class NetworkCheck:
    """What :func:`check_network` found: the exported ``.tflite``, the generated model, the comparison with
    TFLM and the arena next to ``estimate_cost(ir, planner="native").peak_sram_bytes``."""

    ir: ArchIR = field(repr=False)
    tflite: bytes = field(repr=False)
    generated: GeneratedModel = field(repr=False)
    bit_exact: BitExact
    arena_bytes: int
    estimated_arena_bytes: int

    @property
    def arena_matches_estimate(self) -> bool:
        return self.arena_bytes == self.estimated_arena_bytes

    def as_json(self) -> dict[str, object]:
        return {"arena_bytes": self.arena_bytes, "estimated_arena_bytes": self.estimated_arena_bytes,
                "arena_matches_estimate": self.arena_matches_estimate, "tflite_bytes": len(self.tflite),
                "weight_bytes": self.generated.weight_bytes, "macs": self.generated.macs,
                "ops": [op.kind for op in self.generated.ops], **self.bit_exact.as_json()}


def export_random_tflite(ir: ArchIR, *, seed: int = 0, calibration: int = 64) -> tuple[ArchIR, bytes]:
    """``ir`` (pass-through nodes stripped, as the exporter does) with seeded random weights, quantised to int8
    on ``calibration`` random normal inputs and converted to a ``.tflite``."""
    from tinyevo.deploy.graph import strip_passthrough
    from tinyevo.deploy.model import load_weights
    from tinyevo.deploy.quantize import QuantConfig, quantize_int8
    from tinyevo.deploy.tflite import to_tflite

    lean = strip_passthrough(ir)
    model = load_weights(lean, None, seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(calibration, *lean.input_shape)).astype(np.float32)
    q = quantize_int8(model, x, None, config=QuantConfig(calibration_samples=calibration, qat_mode="never"),
                      rng=rng)
    return lean, to_tflite(q, lean.input_shape)


def check_network(ir: ArchIR, *, seed: int = 0, rows: int = 16, calibration: int = 64,
                  work_dir: str | Path | None = None, model: bytes | None = None) -> NetworkCheck:
    """Export ``ir`` with random weights (:func:`export_random_tflite`; or use the ``.tflite`` ``model``),
    generate the native C, build it for the host (in ``work_dir``, default a temporary folder) and run it and
    TFLite-Micro on ``rows`` random inputs (standard normal, quantised with the model's input parameters)."""
    from tinyevo.cost import estimate_cost
    from tinyevo.deploy.graph import strip_passthrough

    if model is None:
        lean, model = export_random_tflite(ir, seed=seed, calibration=calibration)
    else:
        lean = strip_passthrough(ir)
    gen = generate(model)
    rng = np.random.default_rng(seed + 1)
    x = rng.normal(size=(rows, *lean.input_shape)).astype(np.float32)
    x_int8 = quantize_input(x, *gen.input_quant)
    with tempfile.TemporaryDirectory(prefix="tinyevo-check-") as tmp:
        bit = check_bit_exact(model, gen, x_int8, work_dir=work_dir or tmp)
    estimate = estimate_cost(lean, planner="native").peak_sram_bytes
    return NetworkCheck(lean, model, gen, bit, gen.arena_bytes, int(estimate))
