"""``tinyevo tinynas --device DEV [limits]``: TinyNAS stage 1, choose the blocks sub-space for the limits."""

from __future__ import annotations

import argparse
import json
import math
import sys

from rich.console import Console
from rich.table import Table

from tinyevo.cli.devices import add_device_options, limits_from_args
from tinyevo.cost import MCUCostModel
from tinyevo.cli._argtypes import floats as _floats
from tinyevo.cli._argtypes import ints as _ints
from tinyevo.errors import ConfigError
from tinyevo.tinynas import (
    DEFAULT_RESOLUTIONS,
    DEFAULT_WIDTHS,
    BlocksSubspaces,
    SubspaceStats,
    optimize_space,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tinynas", help="choose the blocks sub-space (width x resolution) for the limits (TinyNAS stage 1)",
        description="Sample architectures in every (width multiplier, resolution) sub-space of the "
                    "blocks space, keep those within the limits and choose the sub-space whose fitting "
                    "architectures have the highest mean MACs (MCUNet).",
    )
    add_device_options(p)
    p.add_argument("--widths", type=_floats, default=DEFAULT_WIDTHS, metavar="W,W,...",
                   help="width multipliers (default: 0.3,...,1.0)")
    p.add_argument("--resolutions", type=_ints, default=DEFAULT_RESOLUTIONS, metavar="R,R,...",
                   help="input resolutions (default: 48,64,...,176)")
    p.add_argument("--samples", type=int, default=100,
                   help="architectures sampled per sub-space (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--input-channels", type=int, default=3)
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--min-fraction", type=float, default=0.0,
                   help="ignore sub-spaces where fewer than this fraction of samples fit (default 0)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    limits = limits_from_args(args)
    if limits.is_empty():
        raise ConfigError("give --device and/or limits (--sram, --flash, --latency-ms, ...)")
    factory = BlocksSubspaces(input_channels=args.input_channels, num_classes=args.num_classes)
    total = len(args.widths) * len(args.resolutions)
    done = [0]

    def progress(row: SubspaceStats) -> None:
        done[0] += 1
        if not args.json and sys.stderr.isatty():
            sys.stderr.write(f"\r{done[0]}/{total} sub-spaces scanned")
            sys.stderr.flush()

    result = optimize_space(
        limits, factory=factory, width_multipliers=args.widths, resolutions=args.resolutions,
        samples=args.samples, seed=args.seed, cost_model=MCUCostModel(device=limits.device),
        min_fraction=args.min_fraction, on_row=progress,
    )
    if not args.json and sys.stderr.isatty():
        sys.stderr.write("\n")
    best = result.best
    if args.json:
        print(json.dumps({
            "limits": limits.bounds(), "device": limits.device.name if limits.device else None,
            "samples": result.samples, "seed": result.seed,
            "rows": [
                {"width_multiplier": r.width_multiplier, "resolution": r.resolution, "sampled": r.sampled,
                 "feasible": r.feasible, "fraction_feasible": r.fraction_feasible,
                 "mean_macs": None if math.isnan(r.mean_macs) else r.mean_macs,
                 "max_macs": None if math.isnan(r.max_macs) else r.max_macs}
                for r in result.rows
            ],
            "best": {"width_multiplier": best.width_multiplier, "resolution": best.resolution,
                     "mean_macs": best.mean_macs, "fraction_feasible": best.fraction_feasible},
        }, indent=2))
        return 0
    console = Console()
    table = Table(title=f"TinyNAS sub-spaces ({result.samples} samples each, seed {result.seed})")
    for col in ("sub-space", "width", "resolution", "feasible", "mean MACs", "max MACs"):
        table.add_column(col, justify="left" if col == "sub-space" else "right")
    for r in result.rows:
        mark = r is best
        style = "bold green" if mark else None
        table.add_row(
            r.label + (" *" if mark else ""), f"{r.width_multiplier:g}", str(r.resolution),
            f"{r.feasible}/{r.sampled} ({r.fraction_feasible:.0%})",
            "-" if math.isnan(r.mean_macs) else f"{r.mean_macs / 1e6:.2f} M",
            "-" if math.isnan(r.max_macs) else f"{r.max_macs / 1e6:.2f} M", style=style,
        )
    console.print(table)
    console.print(f"chosen sub-space: width multiplier {best.width_multiplier:g}, resolution "
                  f"{best.resolution} "
                  f"(mean MACs of fitting samples {best.mean_macs / 1e6:.2f} M, "
                  f"{best.fraction_feasible:.0%} fit); search it with the blocks space options "
                  f"width_multipliers=({best.width_multiplier:g},) resolutions=({best.resolution},)")
    return 0
