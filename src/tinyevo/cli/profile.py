"""``tinyevo profile RUN [--trial ID] [--target cortex-m4|cortex-m7] [--json]``: the native C model per op on an
emulated Cortex-M core.

RUN is a run directory (its retrained trial, default the run's model; the int8 ``.tflite`` already exported under
``RUN/export/`` is reused, otherwise it is exported first) or an int8 ``.tflite`` file. The model is generated as
native C, built with ``arm-none-eabi-gcc`` for the target and run on ``qemu-system-arm``; the table gives per
kernel the instructions executed, MACs, instructions per MAC, bytes moved (activations read and written plus
constants read) and arena offsets. Needs ``gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

TARGET_NAMES = ("cortex-m4", "cortex-m7")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("profile", help="per-op instructions of the native C model on an emulated Cortex-M",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", metavar="RUN", help="run directory, or an int8 .tflite file")
    p.add_argument("--trial", type=int, metavar="ID", help="trial number (default: the run's model)")
    p.add_argument("--target", choices=TARGET_NAMES, default="cortex-m4", help="core to emulate (default cortex-m4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random int8 input (default 0)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run_profile)


def _tflite_of(args: argparse.Namespace, console: Console) -> tuple[bytes, str]:
    path = Path(args.run)
    if path.is_file():
        return path.read_bytes(), str(path)
    from tinyevo.run.export import export_trial, find_trial

    view, trial, _weights = find_trial(path, trial=args.trial)
    exported = sorted((view.run_dir / "export").glob(f"trial-{trial.number:04d}-*/*.tflite"))
    if exported:
        return exported[0].read_bytes(), str(exported[0])
    from tinyevo.cli._quiet import third_party_output_hidden

    if not args.json:
        console.print(f"exporting trial {trial.number} to int8 .tflite first ...")
    with tempfile.TemporaryDirectory(prefix="tinyevo-profile-") as tmp, \
            third_party_output_hidden(getattr(args, "verbose", False)):
        export_trial(path, trial=trial.number, fmt="tflite", out_dir=Path(tmp) / "out")
        found = sorted((Path(tmp) / "out").glob("*.tflite"))
        return found[0].read_bytes(), f"trial {trial.number} of {view.run_dir}"


_COLUMNS = ("#", "kernel", "output", "MACs", "instructions", "insn/MAC", "bytes moved", "arena in -> out")


def print_op_table(console: Console, title: str, rows: list[tuple[str, ...]]) -> None:
    """The per-op table, without truncating a cell: the kernel column is as wide as its longest name, and
    when the output is not a terminal (a pipe, a file) the table gets its full width; in a narrow terminal
    the other cells fold onto more lines instead of ending in an ellipsis."""
    table = Table(title=title)
    longest = max((len(row[1]) for row in rows), default=len("kernel"))
    for col in _COLUMNS:
        left = col in ("kernel", "arena in -> out")
        table.add_column(col, justify="left" if left else "right", overflow="fold",
                         no_wrap=col == "kernel", min_width=longest if col == "kernel" else None)
    for row in rows:
        table.add_row(*row)
    if not console.is_terminal:
        # a console prints no wider than its width (80 columns off a terminal): print on one as wide as the table
        needed = console.measure(table, options=console.options.update_width(10_000)).maximum
        if needed > console.width:
            console = Console(file=console.file, width=needed, force_terminal=False, no_color=console.no_color)
    console.print(table)


def run_profile(args: argparse.Namespace) -> int:
    from tinyevo.codegen.cortexm import Toolchain
    from tinyevo.codegen.cortexm.profile import profile_tflite

    console = Console()
    toolchain = Toolchain.find()  # fails early, with the install hint
    model, origin = _tflite_of(args, console)
    prof = profile_tflite(model, target=args.target, seed=args.seed, toolchain=toolchain)
    if args.json:
        print(json.dumps({"model": origin, **prof.as_json()}, indent=2))
        return 0
    rows = []
    for op in prof.ops:
        r = op.record
        ins = ",".join(str(o) for o in r.input_offsets)
        place = f"{ins} -> {r.output_offset}" + (" (in place)" if r.inplace_of else "")
        per_mac = f"{op.instructions_per_mac:.2f}" if op.instructions_per_mac is not None else ""
        rows.append((str(r.index), r.kind, "x".join(map(str, r.output_shape)), f"{r.macs:,}",
                     f"{op.instructions:,}", per_mac, f"{op.bytes_moved:,}", place))
    print_op_table(console, f"{origin} on {prof.target.name} ({prof.target.machine}, QEMU)", rows)
    kernels = sum(op.instructions for op in prof.ops)
    console.print(f"per inference: {prof.instructions:,} instructions ({kernels:,} in kernels, measured with op "
                  f"hooks; the rest is the call, input/output copies), {prof.macs:,} MACs; ~{prof.cycles:,.0f} cycles "
                  f"at {prof.cpi:g} cycles/instruction (documented estimate for {prof.target.core})")
    console.print(f"flash: model {prof.model_size.flash:,} B (code {prof.model_size.text:,} + constants "
                  f"{prof.model_size.rodata + prof.model_size.data:,}); whole image {prof.size.flash:,} B | "
                  f"RAM: arena {prof.model.arena_bytes:,} B, image .data+.bss {prof.size.ram:,} B "
                  f"+ stack {prof.size.stack:,} B")
    verdict = "[green]equal[/green]" if prof.bit_exact_with_host else "[red]DIFFERENT[/red]"
    console.print(f"emulated output vs the host build of the same C: {verdict}")
    return 0 if prof.bit_exact_with_host else 1
