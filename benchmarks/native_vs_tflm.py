"""tinyevo's native C runtime against TFLite-Micro on random networks, emulated on Cortex-M4 / M7 (QEMU).

For random genomes of ``chain``, ``blocks`` and ``nb201`` (small options, round robin, seeded), each network
gets seeded random weights and int8 calibration on random inputs (:func:`tinyevo.codegen.check.
export_random_tflite`); its ``.tflite`` is cached in ``benchmarks/out/native_tflite/``. Then, per network:

* **bit-exact**: TFLite-Micro (child process) and the native C built for and emulated on Cortex-M4 and Cortex-M7
  run the same ``--rows`` random int8 inputs; every output byte must match (``--host`` adds the host build);
* **RAM**: ``TINYEVO_MODEL_ARENA_BYTES`` vs ``estimate_cost(ir, planner="native")`` (must be equal) and vs
  TFLM's whole arena on a 32-bit MCU: the measured head (host TFLM) + the persistent tail modelled with 4-byte
  pointers (:func:`tinyevo.cost.tflm_tail.tflm_tail_bytes`), as ``tinyevo export`` reports it;
* **flash**: text + rodata + data of ``tinyevo_model.o`` for the Cortex-M4 (kernels, weights, requantisation
  constants) vs the ``.tflite`` size (TFLM's interpreter code would come on top, not counted);
* **instructions**: per inference (build without hooks) and per kernel (build with hooks), both cores.

**Latency model**: every network calibrates :mod:`tinyevo.cost.latency_native` (per-core fit,
:func:`tinyevo.codegen.cortexm.calibrate.fit`); the held-back error is ``--folds``-fold cross-validated: each
network's count is predicted by a fit on the other folds, from the **lowered IR** (what the search prices), and
compared with the emulated count (median |error|). ``--write-calibration`` stores the fit as package data (``src/tinyevo/cost/
native_latency.json``). Instructions per MAC per kernel type are summarised from the per-kernel counts.

Writes ``benchmarks/results/native_vs_tflm.json``. Per-network rows are cached in ``benchmarks/out/native_rows/``
under a digest of the kernels, generator and harness (a change of the C re-measures; ``--fresh`` ignores the
cache); exported ``.tflite`` files are kept in ``benchmarks/out/native_tflite/``.

    python benchmarks/native_vs_tflm.py --networks 60 --workers 5 --time-limit-min 40 --write-calibration
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import pickle
import platform
import subprocess
import sys
import tempfile
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from tinyevo.codegen.check import export_random_tflite
from tinyevo.codegen.cortexm import TARGETS, Toolchain, missing_tools
from tinyevo.codegen.cortexm.calibrate import CPI, Measurement, fit, measure, predict_from_records
from tinyevo.codegen.errors import CodegenError
from tinyevo.codegen.generate import generate
from tinyevo.codegen.host import build_host, compare, quantize_input, tflm_outputs
from tinyevo.cost import estimate_cost, lower
from tinyevo.cost.latency_native import FEATURES, parse_models
from tinyevo.cost.tflm_tail import tail_spec_from_flatbuffer, tflm_tail_bytes
from tinyevo.deploy.errors import DeployError
from tinyevo.deploy.graph import strip_passthrough
from tinyevo.deploy.tflm import inspect_flatbuffer
from tinyevo.deploy.tflm_allocations import measure_allocations
from tinyevo.spaces import create_space

SPACE_OPTIONS: dict[str, dict[str, object]] = {
    "chain": {"input_shape": (1, 28, 28), "num_classes": 10},
    "blocks": {"input_shape": (3, 32, 32), "num_classes": 10, "width_multipliers": (0.3, 0.5),
               "resolutions": (24, 32), "depths": (1, 2), "expands": (1, 3, 4)},
    "nb201": {"input_shape": (3, 32, 32), "num_classes": 10, "channels": 8, "cells_per_stage": 1},
}
HERE = Path(__file__).resolve().parent
CALIBRATION = HERE.parent / "src" / "tinyevo" / "cost" / "native_latency.json"


def _genomes(n: int, seed: int, spaces: list[str]):  # type: ignore[no-untyped-def]
    """``n`` distinct (space, genome, ir) round robin over ``spaces``, as an endless seeded stream."""
    rng = np.random.default_rng(seed)
    made = {s: create_space(s, **SPACE_OPTIONS[s]) for s in spaces}  # type: ignore[arg-type]
    seen: set[str] = set()
    i = 0
    while True:
        name = spaces[i % len(spaces)]
        g = made[name].sample(rng)
        key = f"{name}:{g}"
        if key in seen:
            continue
        seen.add(key)
        i += 1
        yield name, str(g), made[name].decode(g)


def _key(space: str, genome: str, seed: int) -> str:
    return f"{space}_{seed}_{hashlib.sha256(genome.encode()).hexdigest()[:12]}"


def _code_digest() -> str:
    """Digest of the C the measurements depend on (kernels, generator, harness): cached rows follow it."""
    import tinyevo.codegen as cg

    root = Path(cg.__file__).parent
    h = hashlib.sha256()
    for f in sorted([*root.glob("*.c"), root / "generate.py", *(root / "cortexm" / "harness").iterdir()]):
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def run_one(space: str, genome: str, ir, seed: int, rows: int, tc: Toolchain,  # type: ignore[no-untyped-def]
            plugin_dir: Path, with_host: bool) -> dict[str, object]:
    t0 = time.perf_counter()
    cache = HERE / "out" / "native_tflite" / f"{_key(space, genome, seed)}.tflite"
    if cache.exists():
        lean, fb = strip_passthrough(ir), cache.read_bytes()
    else:
        lean, fb = export_random_tflite(ir, seed=seed)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(fb)
    t_export = time.perf_counter() - t0
    gen = generate(fb)
    x = quantize_input(np.random.default_rng(seed + 1).normal(size=(rows, *lean.input_shape)).astype(np.float32),
                       *gen.input_quant)
    ref = tflm_outputs(fb, x)
    with tempfile.TemporaryDirectory(prefix="tinyevo-nvt-") as tmp:
        host = build_host(gen, Path(tmp) / "host").run(x) if with_host else None
        meas = {t: measure(gen, x, t, Path(tmp) / t, toolchain=tc, plugin_dir=plugin_dir) for t in TARGETS}
    alloc = measure_allocations(fb)
    tail32 = tflm_tail_bytes(tail_spec_from_flatbuffer(inspect_flatbuffer(fb)), pointer_size=4)
    estimate = estimate_cost(lean, planner="native")
    graph = lower(lean)
    exact = {t: compare(m.outputs, ref).as_json() for t, m in meas.items()}
    if host is not None:
        exact["host"] = compare(host, ref).as_json()
    m4 = meas["cortex-m4"]
    return {
        "space": space, "genome": genome, "seed": seed, "macs": gen.macs, "kernels": [o.kind for o in gen.ops],
        "ir_kernels": [o.tflite for o in graph.ops],
        "bit_exact": exact, "all_bit_exact": all(v["bit_exact"] for v in exact.values()),
        "arena_bytes": gen.arena_bytes, "estimated_arena_bytes": estimate.peak_sram_bytes,
        "arena_equals_estimate": gen.arena_bytes == estimate.peak_sram_bytes,
        "tflm_head_bytes": alloc.head, "tflm_tail_mcu32_bytes": tail32, "tflm_arena_mcu32_bytes": alloc.head + tail32,
        "ram_ratio": (alloc.head + tail32) / gen.arena_bytes,
        "tflite_bytes": len(fb), "model_flash_bytes": m4.model_size.flash,
        "model_text_bytes": m4.model_size.text, "model_rodata_bytes": m4.model_size.rodata,
        "image_flash_bytes": m4.size.flash, "image_ram_bytes": m4.size.ram,
        "flash_ratio": m4.model_size.flash / len(fb),
        "instructions": {t: m.instructions for t, m in meas.items()},
        "op_instructions": {t: list(m.op_instructions) for t, m in meas.items()},
        "seconds": time.perf_counter() - t0, "export_seconds": t_export,
        "_measurements": meas, "_graph": graph,
    }


def _attempt(task: tuple) -> tuple[str, object]:  # type: ignore[type-arg]
    """One candidate network in a worker process: ("ok", row) from the cache or a fresh run, or ("skip", why)."""
    space, genome, ir, seed, rows, host, code, fresh = task
    cache = HERE / "out" / "native_rows" / f"{_key(space, genome, seed)}_{code}.pkl"
    if cache.exists() and not fresh:
        return "ok", pickle.loads(cache.read_bytes())
    logging.basicConfig(level=logging.ERROR)
    try:
        row = run_one(space, genome, ir, seed, rows, Toolchain.find(), HERE / "out" / "qemu_plugin", host)
    except (CodegenError, DeployError, ValueError, RuntimeError, subprocess.SubprocessError) as exc:
        return "skip", f"{type(exc).__name__}: {str(exc)[:300]}"
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(pickle.dumps(row))
    return "ok", row


def _median_abs(e: list[float]) -> float:
    return float(np.median(np.abs(e))) if e else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--networks", type=int, default=80, help="networks to run (unsupported ones are replaced)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rows", type=int, default=8, help="random int8 inputs per network")
    ap.add_argument("--spaces", default="chain,blocks,nb201")
    ap.add_argument("--folds", type=int, default=5, help="folds of the cross-validated latency error")
    ap.add_argument("--write-calibration", action="store_true", help=f"write the fit to {CALIBRATION}")
    ap.add_argument("--time-limit-min", type=float, default=None,
                    help="submit no new network after this many minutes (the summary says how many ran)")
    ap.add_argument("--workers", type=int, default=1, help="networks run in parallel processes (default 1)")
    ap.add_argument("--host", action="store_true", help="also build and compare the host build (slower)")
    ap.add_argument("--fresh", action="store_true", help="ignore cached per-network rows")
    ap.add_argument("--out", default=str(HERE / "results" / "native_vs_tflm.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if missing_tools():
        sys.exit(f"missing tools: {', '.join(missing_tools())}")
    rows: list[dict[str, object]] = []
    failed: list[dict[str, object]] = []
    spaces = args.spaces.split(",")
    stream = _genomes(args.networks, args.seed, spaces)
    code = _code_digest()
    attempts = 0
    started = time.time()
    pending: deque = deque()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        while len(rows) < args.networks:
            # keep the workers busy with the next candidates, in stream order: the networks taken are the first
            # --networks that succeed, whatever the timing
            out_of_time = args.time_limit_min is not None and time.time() - started > 60 * args.time_limit_min
            while (len(pending) < args.workers and len(rows) + len(pending) < args.networks
                   and attempts < 3 * args.networks and not out_of_time):
                space, genome, ir = next(stream)
                seed = args.seed + attempts
                attempts += 1
                task = (space, genome, ir, seed, args.rows, args.host, code, args.fresh)
                pending.append((space, genome, seed, pool.submit(_attempt, task)))
            if not pending:
                break
            space, genome, seed, future = pending.popleft()
            status, row = future.result()
            if status != "ok":
                failed.append({"space": space, "genome": genome, "seed": seed, "error": row})
                print(f"{space:<6} SKIPPED {genome[:50]}: {str(row)[:120]}", file=sys.stderr, flush=True)
                continue
            graph = row["_graph"]
            for m in row["_measurements"].values():  # rows cached before Measurement had input_channels
                if not m.input_channels:
                    object.__setattr__(m, "input_channels", graph.tensors[graph.input].shape[0])
            rows.append(row)
            print(f"{len(rows):>3} {space:<6} exact {row['all_bit_exact']!s:<5} arena {row['arena_bytes']:>7} "
                  f"(est {row['estimated_arena_bytes']:>7}) tflm {row['tflm_arena_mcu32_bytes']:>7} "
                  f"x{row['ram_ratio']:.2f} | flash {row['model_flash_bytes']:>7} vs tflite {row['tflite_bytes']:>7} | "
                  f"M4 {row['instructions']['cortex-m4']:>10} insn  {row['seconds']:.0f}s  {genome[:40]}",  # type: ignore[index]
                  flush=True)

    # ---- latency model: the stored fit uses every network; the held-back error is k-fold cross-validated ----
    doc: dict[str, object] = {
        "version": 1, "features": list(FEATURES),
        "source": (f"benchmarks/native_vs_tflm.py --networks {args.networks} --seed {args.seed}: instruction counts "
                   f"of the generated C (arm-none-eabi-gcc -O2, DSP path on) on QEMU mps2-an386 / mps2-an500, "
                   f"{len(rows)} calibration networks from {args.spaces}"),
        "cores": {},
    }
    latency: dict[str, object] = {}
    folds = max(2, min(args.folds, len(rows)))

    def rel(model, r, t: str) -> float:  # type: ignore[no-untyped-def]
        return (model.graph_instructions(r["_graph"]) - r["instructions"][t]) / r["instructions"][t]

    for t, target in TARGETS.items():
        cpi, why = CPI[target.core]
        table = fit([r["_measurements"][t] for r in rows])  # type: ignore[index]
        core_doc: dict[str, object] = {"cpi": cpi, "cpi_source": why, **table}
        ir_err: list[float] = []
        rec_err: list[float] = []
        for k in range(folds):
            fold_table = fit([r["_measurements"][t] for i, r in enumerate(rows) if i % folds != k])  # type: ignore[index]
            fold_model = parse_models({**doc, "cores": {target.core: {"cpi": cpi, **fold_table}}})[target.core]
            held = [r for i, r in enumerate(rows) if i % folds == k]
            ir_err += [rel(fold_model, r, t) for r in held]
            rec_err += [(predict_from_records(fold_table, r["_measurements"][t]) - r["instructions"][t])  # type: ignore[index]
                        / r["instructions"][t] for r in held]  # type: ignore[index]
        held_back = {"method": f"{folds}-fold cross-validation: each network predicted by a fit without it",
                     "networks": len(ir_err), "median_abs_error": _median_abs(ir_err),
                     "p90_abs_error": float(np.percentile(np.abs(ir_err), 90)) if ir_err else float("nan"),
                     "max_abs_error": float(np.max(np.abs(ir_err))) if ir_err else float("nan"),
                     "median_abs_error_from_generated_kernels": _median_abs(rec_err)}
        core_doc["held_back"] = held_back
        doc["cores"][target.core] = core_doc  # type: ignore[index]
        full = parse_models(doc)[target.core]
        latency[t] = {**held_back, "in_sample_median_abs_error": _median_abs([rel(full, r, t) for r in rows]),
                      "errors": [float(e) for e in ir_err]}
    # instructions per MAC per kernel type (kernels with MACs, all networks)
    per_mac: dict[str, dict[str, float]] = {}
    for t in TARGETS:
        acc: dict[str, list[float]] = {}
        for r in rows:
            m: Measurement = r["_measurements"][t]  # type: ignore[index]
            for key, _cls, feats, n in m.kernel_rows():
                if feats[0] > 0:
                    acc.setdefault(key, [0.0, 0.0])
                    acc[key][0] += n
                    acc[key][1] += feats[0]
        per_mac[t] = {k: v[0] / v[1] for k, v in sorted(acc.items())}

    def ratio_stats(key: str) -> dict[str, float]:
        v = np.array([float(r[key]) for r in rows])  # type: ignore[arg-type]
        return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max())} if len(v) else {}

    summary = {
        "networks": len(rows), "skipped": len(failed), "stopped_by_time_limit": len(rows) < args.networks,
        "per_space": {s: sum(r["space"] == s for r in rows) for s in spaces},
        "bit_exact_networks": sum(bool(r["all_bit_exact"]) for r in rows),
        "bit_exact_percent": 100.0 * sum(bool(r["all_bit_exact"]) for r in rows) / max(1, len(rows)),
        "arena_equals_estimate_percent": 100.0 * sum(bool(r["arena_equals_estimate"]) for r in rows) / max(1, len(rows)),
        "ram_tflm_over_native": ratio_stats("ram_ratio"),
        "flash_native_over_tflite": ratio_stats("flash_ratio"),
        "latency_model": latency,
        "instructions_per_mac": per_mac,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "latency_model"}, indent=1))
    for t, v in latency.items():
        print(f"latency model {t}: held-back ({v['method']}) median |error| "  # type: ignore[index]
              f"{100 * v['median_abs_error']:.1f} % over {v['networks']} networks "  # type: ignore[index]
              f"(in sample {100 * v['in_sample_median_abs_error']:.1f} %)")  # type: ignore[index]
    clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "platform": platform.platform(), "summary": summary,
                               "calibration": doc, "rows": clean, "skipped": failed}, indent=1, default=str) + "\n")
    print(f"wrote {out}")
    if args.write_calibration:
        CALIBRATION.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {CALIBRATION}")


if __name__ == "__main__":
    main()
