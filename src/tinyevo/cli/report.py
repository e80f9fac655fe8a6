"""``tinyevo report RUN``: PNG plots and a self-contained HTML page of a run."""

from __future__ import annotations

import argparse

from rich.console import Console


def run_report_command(args: argparse.Namespace) -> int:
    from tinyevo.run.report import write_report

    files = write_report(args.run, out_dir=args.out)
    console = Console()
    for img in files.images:
        console.print(f"wrote {img}")
    console.print(f"wrote [bold]{files.html}[/bold]")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "report",
        help="write plots and an HTML report of a run",
        description="Accuracy vs SRAM / flash / latency with the limits drawn, the best-so-far curve, and a "
        "self-contained HTML page with them and the tables (default: RUN/report/).",
    )
    p.add_argument("run", metavar="RUN", help="run directory")
    p.add_argument("--out", metavar="DIR", help="output directory (default RUN/report)")
    p.set_defaults(func=run_report_command)
