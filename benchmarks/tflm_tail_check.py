"""The TFLM persistent-tail model against the host's TFLite-Micro, on random networks of every space.

For random genomes of ``chain``, ``blocks``, ``macro`` and ``nb201`` (small options), each network (seeded
random weights, int8 PT2E calibration on random inputs) is exported to an int8 ``.tflite`` and loaded by the
``tflite-micro`` Python interpreter **in a child process** at a generous arena size
(:func:`tinyevo.deploy.tflm_allocations.measure_allocations`; no bisection). Per network it records

* ``measured_tail``: the tail TFLM reports (64-bit host, ``RecordingMicroAllocator``, wheel built with
  ``USE_TFLM_COMPRESSION``);
* ``model_tail_64``: :func:`tinyevo.cost.tflm_tail.tflm_tail` on the flatbuffer with the host's parameters
  (8-byte pointers, recording allocator, compression build) -- must equal ``measured_tail``;
* per recorded section, measured vs modelled requested bytes and counts;
* ``graph_tail_64``: the same model on the cost model's lowered graph (what a search prices, before export);
* ``model_tail_mcu32`` / ``graph_tail_mcu32``: the 32-bit MCU tail (4-byte pointers, plain ``MicroAllocator``,
  no compression) -- what ``tflm-mcu`` adds to the head; ``arena_mcu32`` = measured head + it.

Writes ``benchmarks/results/tflm_tail_check.json``.

    python benchmarks/tflm_tail_check.py --per-space 6 --seed 0
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np

from tinyevo.cost import lower
from tinyevo.cost.tflm_tail import tail_spec_from_flatbuffer, tail_spec_from_graph, tflm_tail
from tinyevo.deploy.errors import DeployError
from tinyevo.deploy.graph import strip_passthrough
from tinyevo.deploy.model import load_weights
from tinyevo.deploy.quantize import QuantConfig, quantize_int8
from tinyevo.deploy.tflite import strip_flatbuffer, to_tflite
from tinyevo.deploy.tflm import inspect_flatbuffer
from tinyevo.deploy.tflm_allocations import measure_allocations
from tinyevo.spaces import create_space

SPACE_OPTIONS: dict[str, dict[str, object]] = {
    "chain": {"input_shape": (1, 28, 28), "num_classes": 10},
    "blocks": {"input_shape": (3, 64, 64), "num_classes": 10, "width_multipliers": (0.3, 0.5, 0.75),
               "resolutions": (32, 48, 64)},
    "macro": {"input_shape": (3, 32, 32), "num_classes": 10, "init_channels": 8, "stages": (1, 1, 1),
              "head_channels": 64},
    "nb201": {"input_shape": (3, 32, 32), "num_classes": 10, "channels": 8, "cells_per_stage": 1},
}
HOST = {"pointer_size": 8, "recording": True, "compression": True}


def export_int8(ir, seed: int) -> bytes:  # type: ignore[no-untyped-def]
    """Seeded random weights, int8 calibration on random inputs, stripped ``.tflite``."""
    rng = np.random.default_rng(seed)
    lean = strip_passthrough(ir)
    model = load_weights(lean, None, seed=seed)
    x = rng.normal(size=(16, *lean.input_shape)).astype(np.float32)
    q = quantize_int8(model, x, config=QuantConfig(calibration_samples=16, batch_size=16, observer="minmax",
                                                   qat_mode="never"), rng=rng)
    return strip_flatbuffer(to_tflite(q, lean.input_shape, strip=False))


def check_one(space_name: str, genome: str, ir, seed: int) -> dict[str, object]:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fb = export_int8(ir, seed)
    info = inspect_flatbuffer(fb)
    measured = measure_allocations(fb)
    spec = tail_spec_from_flatbuffer(info)
    model64 = tflm_tail(spec, **HOST)
    graph_spec = tail_spec_from_graph(lower(ir))
    graph64 = tflm_tail(graph_spec, **HOST)
    mcu32 = tflm_tail(spec, pointer_size=4)
    graph32 = tflm_tail(graph_spec, pointer_size=4)
    counts = {}
    for section, _size, _align in model64.allocations:
        counts[section] = counts.get(section, 0) + 1
    sections = {k: {"measured_requested": r, "measured_count": c, "model_requested": model64.sections.get(k),
                    "model_allocations": counts.get(k)} for k, (_u, r, c) in measured.sections.items()}
    ops: dict[str, int] = {}
    for name in info.op_names():
        ops[name] = ops.get(name, 0) + 1
    return {
        "space": space_name, "genome": genome, "seed": seed, "ops": ops, "n_ops": len(info.ops),
        "n_tensors": len(info.tensors), "tflite_bytes": len(fb), "arena_size": measured.arena_size,
        "measured_total": measured.total, "measured_head": measured.head, "measured_tail": measured.tail,
        "model_tail_64": model64.total, "equal": model64.total == measured.tail,
        "graph_tail_64": graph64.total, "graph_ops": len(graph_spec.ops), "graph_tensors": graph_spec.tensors,
        "model_tail_mcu32": mcu32.total, "graph_tail_mcu32": graph32.total,
        "arena_mcu32": measured.head + mcu32.total, "sections": sections, "seconds": time.perf_counter() - t0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-space", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--spaces", default="chain,blocks,macro,nb201")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "tflm_tail_check.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    rows: list[dict[str, object]] = []
    failed: list[dict[str, object]] = []
    rng = np.random.default_rng(args.seed)
    for space_name in args.spaces.split(","):
        space = create_space(space_name, **SPACE_OPTIONS.get(space_name, {}))  # type: ignore[arg-type]
        seen: set[str] = set()
        tries = 0
        while len(seen) < args.per_space and tries < 20 * args.per_space:
            tries += 1
            g = space.sample(rng)
            if str(g) in seen:
                continue
            seen.add(str(g))
            seed = args.seed + len(rows) + len(failed)
            try:
                row = check_one(space_name, str(g), space.decode(g), seed)
            except (DeployError, ValueError, RuntimeError) as exc:
                failed.append({"space": space_name, "genome": str(g), "error": f"{type(exc).__name__}: {exc}"})
                print(f"{space_name:<6} FAILED {str(g)[:60]}: {exc}", file=sys.stderr, flush=True)
                continue
            rows.append(row)
            print(f"{space_name:<6} tail measured {row['measured_tail']:>6} model {row['model_tail_64']:>6} "
                  f"graph {row['graph_tail_64']:>6} | mcu32 {row['model_tail_mcu32']:>6} (graph "
                  f"{row['graph_tail_mcu32']}) head {row['measured_head']:>6}  {str(g)[:50]}", flush=True)
    diffs = [int(r["measured_tail"]) - int(r["model_tail_64"]) for r in rows]  # type: ignore[call-overload]
    graph_diffs = [int(r["graph_tail_64"]) - int(r["model_tail_64"]) for r in rows]  # type: ignore[call-overload]
    summary = {
        "n": len(rows), "failed": len(failed),
        "equal_64bit": sum(d == 0 for d in diffs), "max_abs_diff_64bit": max((abs(d) for d in diffs), default=0),
        "per_space": {s: {"n": sum(r["space"] == s for r in rows),
                          "equal": sum(r["space"] == s and r["equal"] for r in rows)}
                      for s in args.spaces.split(",")},
        "graph_minus_flatbuffer_64bit": {"equal": sum(d == 0 for d in graph_diffs),
                                          "min": min(graph_diffs, default=0), "max": max(graph_diffs, default=0)},
        "mcu32_over_host64_tail_ratio_mean": float(np.mean([int(r["model_tail_mcu32"]) / int(r["measured_tail"])
                                                            for r in rows])) if rows else float("nan"),
        "kernels_seen": sorted({k for r in rows for k in r["ops"]}),  # type: ignore[attr-defined]
    }
    print(json.dumps(summary, indent=1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "platform": platform.platform(), "host_parameters": HOST,
                               "summary": summary, "rows": rows, "failed": failed}, indent=1, default=str) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
