"""``tinyevo export RUN [--trial ID] --format tflite|onnx|c|c-native [--int8] [--out DIR]``: deployable files.

Exports a retrained trial (default: the best one) of a run. ``tflite`` and ``c`` are int8 by default
(``--no-int8`` for float32), ``onnx`` is float by default. For ``tflite`` and ``c`` the model is run on the
TFLite-Micro interpreter on the test split and ``report.json`` records the flatbuffer size, the arena TFLM needs,
the cost model's estimates and float / int8 accuracy in PyTorch and on TFLM. Needs ``pip install 'tinyevo[deploy]'``.
``c-native`` adds ``tinyevo_model.h`` / ``tinyevo_model.c`` (the native int8 C runtime,
docs/native-runtime.md) and reports whether its outputs equal TFLM's on the test split.
The output folder is written completely or not at all. The converters' and TFLM's own output is shown with ``-v``.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from rich.console import Console
from rich.table import Table


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("export", help="export a retrained model (int8 .tflite, C array, ONNX)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", metavar="RUN", help="run directory")
    p.add_argument("--trial", type=int, metavar="ID", help="trial number (default: the best retrained trial)")
    p.add_argument("--format", dest="fmt", choices=("tflite", "onnx", "c", "c-native"), default="tflite",
                   help="c-native: the int8 .tflite plus a dependency-free C99 model (tinyevo_model.h/.c) on "
                        "tinyevo's own memory plan, checked bit-exact against TFLite-Micro")
    p.add_argument("--int8", action=argparse.BooleanOptionalAction, default=None,
                   help="int8 quantisation (default: on for tflite and c, off for onnx)")
    p.add_argument("--out", metavar="DIR", help="output directory (default: RUN/export/trial-NNNN-FORMAT)")
    p.add_argument("--test-samples", type=int, metavar="N", help="test rows to measure accuracy on (default: all)")
    p.add_argument("--calibration-samples", type=int, default=512, metavar="N",
                   help="training rows for int8 calibration (default 512)")
    p.add_argument("--qat", choices=("auto", "always", "never"), default="auto",
                   help="quantisation-aware fine-tuning: when PTQ loses more than --qat-threshold (auto, the "
                        "default), always, or never")
    p.add_argument("--qat-threshold", type=float, default=1.0, metavar="PTS",
                   help="accuracy points PTQ may lose before --qat auto fine-tunes (default 1.0)")
    p.add_argument("--prune", type=float, default=0.0, metavar="FRACTION",
                   help="remove this fraction of channels (L1 norm) and fine-tune before export (default 0)")
    p.add_argument("--prune-epochs", type=int, default=2, metavar="N", help="fine-tuning epochs after pruning")
    p.add_argument("--name", default="model", help="base name of the files (and of the C array)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from tinyevo.cli._quiet import third_party_output_hidden
    from tinyevo.deploy.export import ExportOptions
    from tinyevo.deploy.quantize import QuantConfig
    from tinyevo.run.export import export_trial

    quant = QuantConfig(calibration_samples=args.calibration_samples, qat_mode=args.qat,
                        qat_threshold=args.qat_threshold / 100.0)
    options = ExportOptions(int8=args.int8, quant=quant, test_samples=args.test_samples, name=args.name,
                            prune=args.prune, prune_epochs=args.prune_epochs)
    native = None
    with third_party_output_hidden(getattr(args, "verbose", False)):
        if args.fmt == "c-native":
            from tinyevo.run.export import export_trial_native

            report, native = export_trial_native(args.run, trial=args.trial, out_dir=args.out, options=options)
        else:
            report = export_trial(args.run, trial=args.trial, fmt=args.fmt, out_dir=args.out, options=options)
    doc = report.as_json()
    if native is not None:
        doc["native"] = native.as_json()
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    console = Console()
    print_deploy_report(console, report)
    if native is not None:
        print_native_report(console, native)
    return 0


def print_native_report(console: Console, native: Any) -> None:
    """The native C model's arena next to the cost model's estimate, and its bit-exact check against TFLM."""
    est = native.estimated_arena_bytes
    console.print(f"native C model: arena {native.arena_bytes:,} B (estimate, native planner: "
                  f"{'n/a' if est is None else f'{est:,} B'}), constants {native.weight_bytes:,} B, "
                  f"{len(native.ops)} kernels")
    if native.bit_exact is None:
        console.print(f"bit-exact check skipped: {native.skipped}")
    else:
        b = native.bit_exact
        console.print(f"bit-exact with TFLite-Micro on {b.equal_rows:,} of {b.rows:,} test inputs"
                      + ("" if b.exact else f" (largest byte difference {b.max_abs_diff})"))


def print_deploy_report(console: Console, report: Any) -> None:
    """Render a :class:`~tinyevo.deploy.export.DeployReport`: measured (TFLM) next to estimated numbers."""
    table = Table(title=f"export ({report.format}, {'int8' if report.int8 else 'float32'})", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    rows = [
        ("model file", report.model_bytes, "B"), ("TFLM arena (needed, 64-bit host)", report.arena_bytes, "B"),
        ("TFLM arena: activations (head)", report.arena_head_bytes, "B"),
        ("TFLM arena: persistent (tail, 64-bit host)", report.arena_tail_bytes, "B"),
        ("TFLM arena, 32-bit MCU (head + modelled tail)", getattr(report, "arena_bytes_mcu32", None), "B"),
        ("TFLM arena, 32-bit MCU (needed, modelled)", getattr(report, "arena_required_mcu32_bytes", None), "B"),
        ("estimated flash", report.estimated_flash_bytes, "B"),
        ("estimated SRAM (TFLM arena, 32-bit)", report.estimated_peak_sram_bytes, "B"),
        ("estimated SRAM (TFLM head only)", report.estimated_peak_sram_tflm_bytes, "B"),
        ("accuracy float (PyTorch)", report.float_accuracy_torch, "%"),
        ("accuracy int8 (PyTorch)", report.int8_accuracy_torch, "%"),
        ("accuracy int8 (TFLite-Micro)", report.int8_accuracy_tflm, "%"),
        ("accuracy float (TFLite-Micro)", report.float_accuracy_tflm, "%"),
        ("accuracy (ONNX Runtime)", report.accuracy_onnx, "%"),
    ]
    for label, value, unit in rows:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        table.add_row(label, f"{100 * value:.2f} %" if unit == "%" else f"{int(value):,} B")
    console.print(table)
    if report.pruning:
        pr = report.pruning
        console.print(f"pruned {100 * pr['removed_fraction']:.0f} % of the channels: params {pr['params_before']:,} -> "
                      f"{pr['params_after']:,}, MACs {pr['macs_before']:,} -> {pr['macs_after']:,}, test accuracy "
                      f"{100 * pr['accuracy_before']:.2f} % -> {100 * pr['accuracy_pruned']:.2f} % (pruned) -> "
                      f"{100 * pr['accuracy_finetuned']:.2f} % (fine-tuned)")
    if report.qat_used:
        console.print("quantisation-aware fine-tuning was used")
    for f in report.files:
        console.print(f"wrote {f}")
