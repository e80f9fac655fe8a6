"""``tinyevo estimate GENOME --space SPACE --device DEV``: MCU cost of one architecture, checked on limits."""

from __future__ import annotations

import argparse
import json
import math

from rich.console import Console
from rich.table import Table

from tinyevo.cli.devices import add_device_options, limits_from_args
from tinyevo.cost import (
    PLANNERS,
    PRECISIONS,
    SRAM_CONVENTIONS,
    CostReport,
    check_planner_convention,
    default_planner,
    estimate_cost,
    sram_caption,
)
from tinyevo.devices import describe_bound, format_size
from tinyevo.errors import ConfigError
from tinyevo.spaces import SPACES, create_space


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "estimate",
        help="MACs, params, weight bytes, flash, peak SRAM, latency and energy of one architecture",
        description="Estimate the deployment cost of GENOME (a genome string of --space) on a "
                    "microcontroller and check it against limits.",
    )
    p.add_argument("genome", metavar="GENOME", help="genome string, e.g. an NB201 architecture string")
    p.add_argument("--space", required=True, choices=SPACES.names(), help="search space of the genome")
    p.add_argument("--resolution", type=int, metavar="R", help="input height = width (default: the space's)")
    p.add_argument("--input-channels", type=int, metavar="C", help="input channels (default: the space's)")
    p.add_argument("--num-classes", type=int, metavar="K", help="classifier outputs (default: the space's)")
    add_device_options(p)
    p.add_argument("--precision", choices=sorted(PRECISIONS), default="int8")
    p.add_argument("--planner", choices=PLANNERS.names(), default=None,
                   help="how peak SRAM is priced: tflm-mcu (default: the whole TFLite Micro arena of a 32-bit "
                        "MCU, planned head + persistent tail), tflm / tflm-cmsis (the planned head only), "
                        "optimal (activations in the best order; the default with --convention munas), sequential "
                        "(activations in IR order)")
    p.add_argument("--convention", choices=sorted(SRAM_CONVENTIONS), default="mcunet",
                   help="count the network input and output buffers in peak SRAM (mcunet) or not (munas)")
    p.add_argument("--inplace", action="store_true",
                   help="depthwise convs and adds may overwrite a dying input")
    p.add_argument("--ops", action="store_true", help="also print the per-kernel table")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def _space_for(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    options: dict[str, object] = {}
    if args.num_classes is not None:
        options["num_classes"] = args.num_classes
    if args.resolution is not None or args.input_channels is not None:
        default = getattr(create_space(args.space), "input_shape", None)
        if default is None:
            raise ConfigError(f"space {args.space!r} does not take an input shape")
        c, h, w = default
        if args.input_channels is not None:
            c = args.input_channels
        if args.resolution is not None:
            h = w = args.resolution
        options["input_shape"] = (c, h, w)
    return create_space(args.space, **options)


def run(args: argparse.Namespace) -> int:
    limits = limits_from_args(args)
    if limits.needs_device:
        raise ConfigError("--latency-ms / --energy-mj need --device to estimate latency and energy on")
    space = _space_for(args)
    ir = space.decode(space.parse(args.genome))
    if args.resolution is not None and ir.input_shape[1:] != (args.resolution, args.resolution):
        raise ConfigError(f"the genome fixes the input resolution to {ir.input_shape[1]}x"
                          f"{ir.input_shape[2]}; drop --resolution or change the genome")
    count_input, count_output = SRAM_CONVENTIONS[args.convention]
    planner = args.planner or default_planner(args.convention)
    check_planner_convention(planner, args.convention)
    report = estimate_cost(ir, device=limits.device, precision=args.precision, planner=planner,
                           count_input=count_input, count_output=count_output, inplace=args.inplace)
    metrics = report.as_metrics()
    checks = limits.check(metrics)
    bounds = limits.bounds()
    if args.json:
        out: dict[str, object] = {
            "genome": str(space.parse(args.genome)), "space": args.space,
            "input_shape": list(ir.input_shape), "device": report.device, "precision": report.precision,
            "macs": report.macs, "params": report.params, "weight_bytes": report.weight_bytes,
            "flash_bytes": report.flash_bytes,
            "peak_sram_bytes": report.peak_sram_bytes, "latency_ms": report.latency_ms,
            "energy_mj": report.energy_mj, "latency_model": report.latency_model,
            "planner": report.memory.planner, "sram_runtime": sram_caption(report.memory.planner),
            "sram_head_bytes": report.memory.head_bytes, "sram_persistent_bytes": report.memory.persistent_bytes,
            "convention": args.convention, "inplace": args.inplace,
            "peak_op": report.memory.peak_op, "peak_exact": report.memory.exact,
            "live_at_peak": [{"tensor": t, "bytes": b} for t, b in report.live_at_peak],
            "limits": {m: {"limit": bounds[m], "ok": ok} for m, ok in checks.items()},
            "within_limits": all(checks.values()),
        }
        if args.ops:
            out["ops"] = [
                {"name": o.name, "kernel": o.tflite, "nodes": list(o.nodes),
                 "output_shape": list(o.output_shape), "macs": o.macs, "params": o.params,
                 "live_bytes": o.live_bytes, "latency_ms": o.latency_ms}
                for o in report.ops
            ]
        print(json.dumps(out, indent=2))
        return 0
    _print_report(args, report, ir.input_shape, checks, bounds)
    return 0


def _fmt_count(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f}"


def _print_report(args: argparse.Namespace, report: CostReport, input_shape: tuple[int, int, int],
                  checks: dict[str, bool], bounds: dict[str, float]) -> None:
    console = Console()
    shape = "x".join(map(str, input_shape))
    where = f"on {report.device}" if report.device else "(no device: no latency / energy)"
    table = Table(title=f"{args.space} {args.genome}\ninput {shape}, {report.precision} {where}")
    for col in ("metric", "value", "limit", "ok"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    rows = [
        ("MACs", "macs", _fmt_count(report.macs)),
        ("params", "params", _fmt_count(report.params)),
        ("weights", "weight_bytes", format_size(report.weight_bytes)),
        ("flash", "flash_bytes", format_size(report.flash_bytes)),
        (sram_caption(report.memory.planner), "peak_sram_bytes", format_size(report.peak_sram_bytes)),
    ]
    if report.latency_ms is not None and report.energy_mj is not None:
        rows += [("latency", "latency_ms", f"{report.latency_ms:.2f} ms"),
                 ("energy", "energy_mj", f"{report.energy_mj:.3f} mJ")]
    for label, metric, value in rows:
        limit = describe_bound(metric, bounds[metric]).split("<= ")[1] if metric in bounds else ""
        ok = "" if metric not in checks else ("[green]yes[/green]" if checks[metric] else "[red]NO[/red]")
        table.add_row(label, value, limit, ok)
    console.print(table)
    if report.latency_model is not None:
        console.print(f"latency: {report.latency_model}")
    mem = report.memory
    io = "input and output buffers counted" if args.convention == "mcunet" else "input and output not counted"
    exact = "" if mem.exact else f" (heuristic; optimum >= {format_size(mem.lower_bound)})"
    if mem.persistent_bytes:
        console.print(f"{sram_caption(mem.planner)}: {format_size(mem.peak_bytes)} = planned head "
                      f"{format_size(mem.head_bytes)} + TFLM's persistent tail {format_size(mem.persistent_bytes)}")
    console.print(f"peak of the planned part {format_size(mem.head_bytes)}{exact} while [bold]{mem.peak_op}"
                  f"[/bold] runs ({mem.planner} planner, {io}); live tensors:")
    for tensor, nbytes in mem.live_at_peak:
        console.print(f"  {tensor:<32} {format_size(nbytes):>10}")
    if checks:
        failed = ", ".join(m for m, ok in checks.items() if not ok)
        verdict = f"[red]violates: {failed}[/red]" if failed else "[green]within all limits[/green]"
        console.print(verdict)
    if args.ops:
        ops = Table(title="kernels")
        for col in ("kernel", "op", "output", "MACs", "params", "live", "latency"):
            ops.add_column(col, justify="left" if col in ("kernel", "op") else "right")
        for o in report.ops:
            lat = "" if o.latency_ms is None or math.isnan(o.latency_ms) else f"{o.latency_ms:.3f} ms"
            ops.add_row(o.name, o.tflite, "x".join(map(str, o.output_shape)), _fmt_count(o.macs),
                        _fmt_count(o.params), format_size(o.live_bytes), lat)
        console.print(ops)
