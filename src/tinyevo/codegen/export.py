"""``export --format c-native``: the int8 ``.tflite`` export (:func:`tinyevo.deploy.export.export_model`, with
its TFLM measurements), plus ``tinyevo_model.h`` / ``tinyevo_model.c`` generated from that ``.tflite`` and the
bit-exact comparison of the native model with TFLite-Micro on the (sampled) test split."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tinyevo.codegen.generate import PREFIX, generate
from tinyevo.codegen.host import BitExact, build_host, compare, find_cc, quantize_input, tflm_outputs
from tinyevo.deploy.export import DEFAULT_OPTIONS, DeployReport, ExportOptions, _test_rows, export_model
from tinyevo.ir import ArchIR


@dataclass(frozen=True)
class NativeReport:
    """The native model: its arena (``TINYEVO_MODEL_ARENA_BYTES``), the cost model's ``native`` estimate (``None``
    when pruning changed the architecture), constant bytes, and the comparison with TFLM (``None`` without a C
    compiler: ``skipped`` says why)."""

    arena_bytes: int
    estimated_arena_bytes: int | None
    input_bytes: int
    output_bytes: int
    weight_bytes: int
    macs: int
    ops: tuple[dict[str, Any], ...]
    bit_exact: BitExact | None
    skipped: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"arena_bytes": self.arena_bytes, "estimated_arena_bytes": self.estimated_arena_bytes,
                "input_bytes": self.input_bytes, "output_bytes": self.output_bytes,
                "weight_bytes": self.weight_bytes, "macs": self.macs,
                "bit_exact": self.bit_exact.as_json() if self.bit_exact else None, "skipped": self.skipped,
                "ops": list(self.ops)}


def export_native(ir: ArchIR, state_dict: dict[str, Any] | None, data: Any, *, out_dir: str | Path,
                  options: ExportOptions = DEFAULT_OPTIONS) -> tuple[DeployReport, NativeReport]:
    """Export the trained network as ``.tflite`` and native C into ``out_dir`` (see the module docstring);
    ``report.json`` gets a ``native`` section."""
    from tinyevo.cost import estimate_cost
    from tinyevo.deploy.export import _fit_data
    from tinyevo.deploy.graph import strip_passthrough

    out = Path(out_dir)
    report = export_model(ir, state_dict, data, fmt="tflite", out_dir=out, options=replace(options, int8=True))
    model = (out / f"{options.name}.tflite").read_bytes()
    gen = generate(model, source=f"from {options.name}.tflite")
    h, c = gen.write(out)
    estimate = None
    if options.prune == 0:
        estimate = int(estimate_cost(strip_passthrough(ir), planner="native").peak_sram_bytes)
    bit: BitExact | None = None
    skipped = None
    if find_cc() is None:
        skipped = "no C compiler found: the native model was not run"
    else:
        x, _y = _test_rows(_fit_data(ir, data), options.test_samples, options.seed)
        x_int8 = quantize_input(x, *gen.input_quant)
        with tempfile.TemporaryDirectory(prefix="tinyevo-native-") as tmp:
            native = build_host(gen, tmp).run(x_int8)
        bit = compare(native, tflm_outputs(model, x_int8))
    native_report = NativeReport(gen.arena_bytes, estimate, gen.input_bytes, gen.output_bytes, gen.weight_bytes,
                                 gen.macs, tuple(op.as_json() for op in gen.ops), bit, skipped)
    doc = json.loads((out / "report.json").read_text())
    doc["format"] = "c-native"
    doc["files"] = [*doc["files"], str(h), str(c)]
    doc["native"] = native_report.as_json()
    (out / "report.json").write_text(json.dumps(doc, indent=2) + "\n")
    return replace(report, format="c-native", files=(*report.files, str(h), str(c))), native_report


__all__ = ["PREFIX", "NativeReport", "export_native"]
