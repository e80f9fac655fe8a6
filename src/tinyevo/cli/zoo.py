"""``tinyevo zoo``: list the known architectures that ``tinyevo search --init`` can seed a search with."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from tinyevo.errors import UnknownNameError
from tinyevo.spaces.zoo import ZOO, zoo_entries


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "zoo", help="list known architectures (seeds for --init)",
        description="List the known architectures written as genomes of each space. Seed a search with them: "
                    "`tinyevo search --init resnet8-like` or `--init zoo` (all that are valid in the space).",
    )
    p.add_argument("--space", help="only this space")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spaces = sorted(ZOO)
    if args.space is not None:
        if args.space not in ZOO:
            raise UnknownNameError(f"no known architectures for space {args.space!r}; spaces with some: "
                                   f"{', '.join(spaces)}")
        spaces = [args.space]
    entries = [e for s in spaces for e in zoo_entries(s)]
    if args.json:
        print(json.dumps([{"space": e.space, "name": e.name, "genome": e.genome, "source": e.source}
                          for e in entries], indent=2))
        return 0
    table = Table(title="known architectures (tinyevo search --init NAME)")
    for col in ("space", "name", "genome", "source"):
        table.add_column(col, overflow="fold")
    for e in entries:
        table.add_row(e.space, e.name, e.genome, e.source)
    Console().print(table)
    return 0
