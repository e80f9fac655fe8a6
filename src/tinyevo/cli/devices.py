"""``tinyevo devices``: list the device profiles. Also the device / limit options shared by other commands."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from tinyevo.devices import DEVICES, Limits, format_size, get_device, load_devices, parse_size


def add_device_options(parser: argparse.ArgumentParser, *, limits: bool = True) -> None:
    """``--device``, ``--device-file`` and (with ``limits``) ``--sram/--flash/--weights/--latency-ms/...``."""
    parser.add_argument("--device", metavar="DEV", help="device profile (see `tinyevo devices`)")
    parser.add_argument("--device-file", metavar="TOML", action="append", default=[],
                        help="load extra device profiles from a TOML file (repeatable)")
    if not limits:
        return
    g = parser.add_argument_group("limits (explicit values win over the device's SRAM / flash)")
    g.add_argument("--sram", metavar="SIZE", help="peak SRAM limit, e.g. 64KB (KB = 1024 bytes)")
    g.add_argument("--flash", metavar="SIZE", help="flash limit, e.g. 256KB or 1MB")
    g.add_argument("--weights", metavar="SIZE",
                   help="limit on weight + bias bytes (model size without .tflite metadata), e.g. 4.5KB")
    g.add_argument("--latency-ms", type=float, metavar="MS", help="latency limit in milliseconds")
    g.add_argument("--energy-mj", type=float, metavar="MJ", help="energy limit in millijoules per inference")
    g.add_argument("--macs", type=float, metavar="N", help="limit on multiply-accumulates")
    g.add_argument("--params", type=float, metavar="N", help="limit on parameters")


def load_device_files(args: argparse.Namespace) -> None:
    for path in args.device_file:
        load_devices(path)


def limits_from_args(args: argparse.Namespace) -> Limits:
    load_device_files(args)

    def size(name: str) -> int | None:  # a flag's size needs a unit: --sram 64 is not 64 bytes
        value = getattr(args, name)
        return None if value is None else parse_size(value, unit_required=True, name=f"--{name}")

    return Limits.from_options(
        device=args.device, sram=size("sram"), flash=size("flash"), weights=size("weights"),
        latency_ms=args.latency_ms, energy_mj=args.energy_mj, macs=args.macs, params=args.params,
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "devices", help="list device profiles",
        description="List the registered device profiles (built-in and from --device-file).",
    )
    p.add_argument("--device-file", metavar="TOML", action="append", default=[],
                   help="load extra device profiles from a TOML file (repeatable)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    load_device_files(args)
    devices = [get_device(n) for n in DEVICES.names()]
    if args.json:
        rows = [
            {"name": d.name, "core": d.core.name, "clock_mhz": d.clock_mhz, "sram_bytes": d.sram_bytes,
             "flash_bytes": d.flash_bytes, "active_power_mw": d.active_power_mw, "description": d.description,
             "source": d.source}
            for d in devices
        ]
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title="Device profiles (KB = 1024 bytes)")
    for col, just in (("name", "left"), ("core", "left"), ("clock", "right"), ("SRAM", "right"),
                      ("flash", "right"), ("power", "right"), ("description", "left")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for d in devices:
        table.add_row(d.name, d.core.name, f"{d.clock_mhz:g} MHz", format_size(d.sram_bytes),
                      format_size(d.flash_bytes), f"{d.active_power_mw:g} mW", d.description)
    Console().print(table)
    return 0
