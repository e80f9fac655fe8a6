"""Does a default SRAM limit bound the TFLite-Micro arena the MCU will need? (issue 16)

For seeds 0..N-1 this runs the default search on the built-in digits data with the demo limits
(``tinyevo search --sram 4KB --flash 64KB --seed S --budget B --final-epochs E``; the default planner,
``tflm-mcu``, prices the whole 32-bit TFLM arena), exports the best retrained model to an int8 ``.tflite``
(``tinyevo export RUN --format tflite --json``) and checks

* ``arena_bytes_mcu32`` (the measured head plus the modelled 32-bit tail) <= the 4 KB limit;
* the tail model with 8-byte pointers equals the tail the host's TFLM allocates for the exported model
  (measured in a child process at a generous arena size);
* how the search-time estimate (``estimated_peak_sram_bytes``) compares with ``arena_bytes_mcu32``, and the
  host's bisected minimum arena (``arena_bytes``, 64-bit) with head + host tail.

Writes ``benchmarks/results/arena_limit_check.json``.

    python benchmarks/arena_limit_check.py --seeds 10 --budget 20 --final-epochs 5
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from tinyevo.cost.tflm_tail import tail_spec_from_flatbuffer, tflm_arena_required, tflm_tail
from tinyevo.deploy.tflm import inspect_flatbuffer
from tinyevo.deploy.tflm_allocations import measure_allocations

HOST = {"pointer_size": 8, "recording": True, "compression": True}
SRAM_LIMIT = 4096


def _tinyevo(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tinyevo.cli.main", *argv], capture_output=True, text=True,
                          check=False)


def check_seed(seed: int, args: argparse.Namespace, root: Path) -> dict[str, object]:
    run = root / f"seed{seed}"
    out = run / "export-tflite"
    if args.reuse and (out / "report.json").is_file():  # an earlier invocation searched and exported this seed
        report = json.loads((out / "report.json").read_text())
        return _measure(seed, out, report, {"seed": seed, "reused": str(run)})
    t0 = time.perf_counter()
    cmd = ["search", "--sram", "4KB", "--flash", "64KB", "--seed", str(seed), "--budget", str(args.budget),
           "--final-epochs", str(args.final_epochs), "--out", str(run), "-q"]
    if args.epochs is not None:
        cmd[-3:-3] = ["--epochs", str(args.epochs)]
    proc = _tinyevo(*cmd)
    row: dict[str, object] = {"seed": seed, "search_cmd": "tinyevo " + " ".join(cmd),
                              "search_rc": proc.returncode, "search_s": time.perf_counter() - t0}
    if proc.returncode != 0:
        row["error"] = (proc.stderr.strip().splitlines() or [""])[-1]
        return row
    t1 = time.perf_counter()
    exp = _tinyevo("export", str(run), "--format", "tflite", "--out", str(out), "--json")
    row.update(export_rc=exp.returncode, export_s=time.perf_counter() - t1)
    if exp.returncode != 0:
        row["error"] = (exp.stderr.strip().splitlines() or [""])[-1]
        return row
    start = exp.stdout.find("{")
    report = json.loads(exp.stdout[start:])
    return _measure(seed, out, report, row)


def _measure(seed: int, out: Path, report: dict[str, object], row: dict[str, object]) -> dict[str, object]:
    """Check one exported model: its report's 32-bit arena against the limit, the 64-bit tail model against a
    child-process measurement of the host's TFLM."""
    fb = next(out.glob("*.tflite")).read_bytes()
    info = inspect_flatbuffer(fb)
    measured = measure_allocations(fb)
    spec = tail_spec_from_flatbuffer(info)
    model64 = tflm_tail(spec, **HOST).total
    mcu32 = tflm_tail(spec, pointer_size=4).total
    required32 = tflm_arena_required(spec, measured.head, pointer_size=4)
    required64 = tflm_arena_required(spec, measured.head, **HOST)
    row.update(
        ops=list(info.op_names()), tflite_bytes=report.get("tflite_bytes"),
        estimated_peak_sram_bytes=report.get("estimated_peak_sram_bytes"),
        arena_bytes_mcu32=report.get("arena_bytes_mcu32"), arena_tail_mcu32_bytes=report.get("arena_tail_mcu32_bytes"),
        arena_head_bytes=report.get("arena_head_bytes"), arena_tail_bytes=report.get("arena_tail_bytes"),
        arena_bytes_host_required=report.get("arena_bytes"),
        int8_accuracy_tflm=report.get("int8_accuracy_tflm"),
        measured_tail_64=measured.tail, model_tail_64=model64, model_equals_host=model64 == measured.tail,
        mcu32_recomputed=measured.head + mcu32, arena_required_mcu32=required32,
        model_required_64=required64, within_limit_required=required32 <= SRAM_LIMIT,
        within_limit=report.get("arena_bytes_mcu32") is not None
        and int(report["arena_bytes_mcu32"]) <= SRAM_LIMIT,  # type: ignore[call-overload]
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--budget", type=int, default=20)
    ap.add_argument("--final-epochs", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=None, help="training epochs per candidate (default: tinyevo's)")
    ap.add_argument("--merge", nargs="+", metavar="JSON", help="only merge the rows of earlier outputs into --out")
    ap.add_argument("--reuse", action="store_true",
                    help="seeds whose run was already exported are only re-measured (no new search)")
    ap.add_argument("--only-seeds", type=int, nargs="+", metavar="S", help="these seeds instead of a range")
    ap.add_argument("--runs", default=str(Path(__file__).parent / "out" / "arena_limit_runs"))
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "arena_limit_check.json"))
    args = ap.parse_args()
    root = Path(args.runs)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    if args.merge:  # seeds run in separate processes (e.g. two halves in parallel), merged here
        for path in args.merge:
            rows.extend(json.loads(Path(path).read_text())["rows"])
        rows.sort(key=lambda r: int(r["seed"]))
    seeds = args.only_seeds or list(range(args.first_seed, args.first_seed + args.seeds))
    for seed in seeds if not args.merge else ():
        row = check_seed(seed, args, root)
        rows.append(row)
        print(json.dumps({k: row.get(k) for k in ("seed", "arena_bytes_mcu32", "estimated_peak_sram_bytes",
                                                     "arena_head_bytes", "measured_tail_64", "model_tail_64",
                                                     "within_limit", "arena_required_mcu32", "error")}),
              flush=True)
    ok = [r for r in rows if "error" not in r]
    summary = {
        "seeds": len(rows), "exported": len(ok), "errors": [r.get("error") for r in rows if "error" in r],
        "within_4096": sum(bool(r["within_limit"]) for r in ok),
        "max_arena_bytes_mcu32": max((int(r["arena_bytes_mcu32"]) for r in ok), default=None),  # type: ignore[call-overload]
        "model_equals_host_64bit": sum(bool(r["model_equals_host"]) for r in ok),
        "estimate_minus_mcu32": [int(r["estimated_peak_sram_bytes"]) - int(r["arena_bytes_mcu32"])  # type: ignore[call-overload]
                                 for r in ok],
        "within_4096_required": sum(bool(r["within_limit_required"]) for r in ok),
        "max_arena_required_mcu32": max((int(r["arena_required_mcu32"]) for r in ok), default=None),  # type: ignore[call-overload]
        "model_required_64_minus_host_required": [int(r["model_required_64"]) - int(r["arena_bytes_host_required"])  # type: ignore[call-overload]
                                                  for r in ok],
        "host_required_minus_head_plus_tail": [int(r["arena_bytes_host_required"]) - int(r["arena_head_bytes"])  # type: ignore[call-overload]
                                               - int(r["arena_tail_bytes"]) for r in ok],  # type: ignore[call-overload]
    }
    print(json.dumps(summary, indent=1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "platform": platform.platform(), "summary": summary,
                               "rows": rows}, indent=1, default=str) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
