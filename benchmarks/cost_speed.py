"""Speed of the cost model vs. building the torch module and counting MACs with fvcore.

For random genomes of every registered space (default options), time
(a) ``estimate_cost(ir, device=...)``: MACs, params, flash, exact optimal peak SRAM, latency, energy, "cold":
    the cost model's internal caches (per-op costs, solved memory segments) are cleared before every call, so
    a network gets no help from the ones estimated before it (in a search they would be warm, and faster); and
(b) ``build_model(ir)`` + ``fvcore.nn.FlopCountAnalysis(...).by_operator()``: MACs only, torch on one
    thread.
Both start from the same decoded IR and are timed as medians of repeated calls (all cost-model timings first,
then all torch timings). Prints a table and writes ``benchmarks/out/cost_speed.json``.

    python benchmarks/cost_speed.py --samples 5 --seed 0
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from fvcore.nn import FlopCountAnalysis
from rich.console import Console
from rich.table import Table

from tinyevo.cost import clear_caches, estimate_cost
from tinyevo.nn.builder import build_model
from tinyevo.spaces import SPACES, create_space


def fvcore_macs(ir) -> int:  # type: ignore[no-untyped-def]
    model = build_model(ir, seed=0).eval()
    flops = FlopCountAnalysis(model, torch.zeros(1, *ir.input_shape))
    flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    by_op = flops.by_operator()
    return int(by_op.get("conv", 0) + by_op.get("linear", 0))


def timed(fn, repeats: int, *, cold: bool = False) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    """Median time of ``repeats`` calls of ``fn()`` (caches cleared before each if ``cold``), last result.

    The median, not the mean: on a shared machine a sub-millisecond call is sometimes descheduled, and one
    such outlier would dominate a mean.
    """
    out = None
    times = []
    for _ in range(repeats):
        if cold:
            clear_caches()
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=5, help="genomes per space")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="stm32f746")
    ap.add_argument("--spaces", default=",".join(SPACES.names()))
    ap.add_argument("--repeats", type=int, default=21, help="calls of the cost model per genome (median)")
    ap.add_argument("--fvcore-repeats", type=int, default=3, help="torch + fvcore runs per genome (median)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "cost_speed.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    cases = []
    for name in args.spaces.split(","):
        space = create_space(name)
        rng = np.random.default_rng(args.seed)
        for i in range(args.samples):
            genome = space.sample(rng)
            cases.append((name, i, genome, space.decode(genome)))
    # Phase 1: the cost model; phase 2: torch + fvcore. (Timing them interleaved slows the cost model several
    # fold right after a torch run -- garbage collection of the traced graphs and torch worker threads --
    # which would measure torch's aftermath, not the cost model.)
    gc.collect()
    costs = [timed(lambda ir=ir: estimate_cost(ir, device=args.device), args.repeats, cold=True)
             for _n, _i, _g, ir in cases]
    rows = []
    for (name, i, genome, ir), (t_cost, report) in zip(cases, costs, strict=True):
        t_fv, macs = timed(lambda ir=ir: fvcore_macs(ir), args.fvcore_repeats)
        assert report.macs == macs, (name, str(genome), report.macs, macs)  # type: ignore[attr-defined]
        rows.append({
            "space": name, "sample": i, "genome": str(genome), "nodes": len(ir), "macs": macs,
            "peak_exact": report.memory.exact,  # type: ignore[attr-defined]
            "cost_model_s": t_cost, "torch_fvcore_s": t_fv, "speedup": t_fv / t_cost,
        })
    summary = []
    for name in args.spaces.split(","):
        rs = [r for r in rows if r["space"] == name]
        summary.append({
            "space": name, "samples": len(rs), "mean_nodes": statistics.mean(r["nodes"] for r in rs),
            "cost_model_ms": 1e3 * statistics.mean(r["cost_model_s"] for r in rs),
            "torch_fvcore_ms": 1e3 * statistics.mean(r["torch_fvcore_s"] for r in rs),
            "min_speedup": min(r["speedup"] for r in rs),
            "median_speedup": statistics.median(r["speedup"] for r in rs),
            "all_exact": all(r["peak_exact"] for r in rs),
        })
    title = f"cost model vs torch build + fvcore ({args.samples} genomes per space, seed {args.seed})"
    table = Table(title=title)
    cols = ("space", "nodes", "cost model", "torch + fvcore", "min speed-up", "median speed-up", "exact SRAM")
    for col in cols:
        table.add_column(col, justify="left" if col == "space" else "right")
    for s in summary:
        table.add_row(s["space"], f"{s['mean_nodes']:.0f}", f"{s['cost_model_ms']:.2f} ms",
                      f"{s['torch_fvcore_ms']:.0f} ms", f"{s['min_speedup']:.0f}x",
                      f"{s['median_speedup']:.0f}x",
                      "yes" if s["all_exact"] else "no")
    Console().print(table)
    overall = min(r["speedup"] for r in rows)
    Console().print(f"slowest case: the cost model is {overall:.0f}x faster (target: >= 100x)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "command": "python benchmarks/cost_speed.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
        "python": platform.python_version(), "torch": torch.__version__, "torch_threads": 1,
        "device": args.device, "summary": summary, "min_speedup": overall, "rows": rows,
    }, indent=2))
    Console().print(f"wrote {out}")


if __name__ == "__main__":
    main()
