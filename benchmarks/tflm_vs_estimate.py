"""Cost-model estimates vs. what TFLite-Micro really allocates, for random architectures.

For random genomes of the ``chain``, ``blocks`` and ``nb201`` spaces (small options), each network (seeded random
weights, int8 PT2E calibration on random inputs with the exporter's default histogram observer, ``--observer``) is exported to an int8 ``.tflite`` with litert-torch and loaded
in the ``tflite-micro`` Python interpreter. Per architecture it records

* the flatbuffer size vs. the cost model's ``flash_bytes``;
* TFLM's arena: total, head (non-persistent: the greedy planner's activation layout + kernel scratch) and tail
  (persistent interpreter data), vs. the cost model's ``peak_sram_bytes`` (default planner) and with its ``tflm``
  planner (TFLM's greedy planner, reference-kernel scratch: the comparison the goal is stated on) and
  ``tflm-cmsis`` planner (CMSIS-NN scratch, for reference);
* a replay of TFLM's greedy planner on the real flatbuffer's tensors (``replay``: tensors in index order,
  ties in size broken later-tensor-first as TFLM's reversed bubble sort does, plus the int8 MEAN scratch) and
  the same rule applied to the cost model's own lowered graph (``rule``), to separate planner behaviour,
  scratch buffers and graph differences (extra / missing ops);
* the whole arena: the 64-bit host estimate vs the bisected smallest working arena, and the default planner
  (``tflm-mcu``, 32-bit) vs TFLM's rule on the real flatbuffer with the measured head; the summary counts
  estimate == TFLM and lists every under-count (a model that "fits" but not on the device);
* linear fits of the flatbuffer overhead and of TFLM's persistent (tail) arena part.

Prints a table and writes ``benchmarks/out/tflm_vs_estimate.json`` (one row per architecture plus a summary).
Needs the ``tinyevo[deploy]`` extra.

    python benchmarks/tflm_vs_estimate.py --per-space 8 --seed 0
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from tinyevo.cost import TFLMArenaPlanner, TFLMPlanner, estimate_cost, lower, tflm_persistent_bytes
from tinyevo.cost.tflm_tail import tail_spec_from_flatbuffer, tflm_arena_required
from tinyevo.deploy.errors import DeployError
from tinyevo.deploy.graph import strip_passthrough
from tinyevo.deploy.model import load_weights
from tinyevo.deploy.quantize import QuantConfig, quantize_int8
from tinyevo.deploy.tflite import strip_flatbuffer, to_tflite
from tinyevo.deploy.tflm import FlatbufferInfo, inspect_flatbuffer, measure_arena
from tinyevo.errors import ConfigError
from tinyevo.spaces import create_space

SPACE_OPTIONS: dict[str, dict[str, object]] = {
    "chain": {"input_shape": (1, 28, 28), "num_classes": 10},
    "blocks": {"input_shape": (3, 64, 64), "num_classes": 10, "width_multipliers": (0.3, 0.5, 0.75),
               "resolutions": (32, 48, 64)},
    "nb201": {"input_shape": (3, 32, 32), "num_classes": 10, "channels": 8, "cells_per_stage": 1},
}


def _align(n: int, a: int = 16) -> int:
    return -(-n // a) * a


def greedy_arena(bufs: list[tuple[int, int, int]]) -> int:
    """TFLM's GreedyMemoryPlanner on ``(size, first op, last op)`` buffers listed in the order TFLM adds them.

    TFLM puts the buffers into its sort array from the back and bubble-sorts it by size, descending and stable,
    so among equal sizes the buffer added *last* is placed first. Each buffer goes at the lowest offset where it
    does not overlap an already placed buffer that is alive at the same time (sizes 16-byte aligned).
    """
    order = sorted(range(len(bufs)), key=lambda i: (-bufs[i][0], -i))  # equal sizes: last added first
    placed: list[tuple[int, int, int, int]] = []
    for size, f, la in (bufs[i] for i in order):
        offset = 0
        for o, sz, _f, _l in sorted((p for p in placed if p[2] <= la and f <= p[3]), key=lambda p: p[0]):
            if offset + size <= o:
                break
            offset = max(offset, o + sz)
        placed.append((offset, size, f, la))
    return max((o + sz for o, sz, _f, _l in placed), default=0)


def mean_scratch(out_elements: int) -> list[int]:
    """Scratch buffers an int8 MEAN / SUM asks for in TFLM (reference kernels): int32 sums per output element,
    plus two small index buffers (measured: total = align16(4 * outputs) + 32)."""
    return [_align(4 * out_elements), 16, 16]


def replay_tflm_planner(info: FlatbufferInfo) -> dict[str, int]:
    """TFLM's arena head recomputed from the real flatbuffer: tensors in index order, then kernel scratch.

    Lifetimes as in TFLM's AllocationInfoBuilder: graph inputs live from op 0, an op's outputs from that op, a
    tensor until its last reader, graph outputs until the last op.
    """
    n_ops = len(info.ops)
    first: dict[int, int] = {t: 0 for t in info.inputs}
    last: dict[int, int] = {}
    for j, op in enumerate(info.ops):
        for t in op.inputs:
            if t >= 0 and not info.tensors[t].constant:
                last[t] = j
        for t in op.outputs:
            first.setdefault(t, j)
    for t in info.outputs:
        last[t] = n_ops - 1
    bufs = [(_align(info.tensors[t].nbytes), first[t], last.get(t, first[t])) for t in sorted(first)]
    for j, op in enumerate(info.ops):
        if op.name in ("MEAN", "SUM") and info.tensors[op.inputs[0]].dtype == "int8":
            bufs += [(s, j, j) for s in mean_scratch(info.tensors[op.outputs[0]].nbytes)]
    live = max((sum(s for s, f, la in bufs if f <= j <= la) for j in range(n_ops)), default=0)
    return {"replay": greedy_arena(bufs), "live_bound": live}


def tflm_rule_on_cost_graph(ir) -> int:  # type: ignore[no-untyped-def]
    """The same TFLM rule applied to the cost model's own lowered graph (what its ``tflm`` planner would give
    with TFLM's tie order and reference-kernel scratch instead of CMSIS-NN scratch)."""
    g = lower(ir)
    index = {g.input: 0}
    first = {g.input: 0}
    last: dict[str, int] = {}
    for j, op in enumerate(g.ops):
        for t in op.inputs:
            last[t] = j
        index.setdefault(op.output, len(index))
        first.setdefault(op.output, j)
    last[g.output] = len(g.ops) - 1
    names = sorted(index, key=index.get)
    bufs = [(_align(g.tensors[t].nbytes), first[t], last.get(t, first[t])) for t in names]
    for j, op in enumerate(g.ops):
        if op.tflite in ("MEAN", "SUM"):
            bufs += [(s, j, j) for s in mean_scratch(g.tensors[op.output].nbytes)]
    return greedy_arena(bufs)


def run_one(space_name: str, genome: str, ir, seed: int,  # type: ignore[no-untyped-def]
            model_dir: Path | None = None, observer: str = "histogram") -> dict[str, object]:
    rng = np.random.default_rng(seed)
    lean = strip_passthrough(ir)
    model = load_weights(lean, None, seed=seed)
    x = rng.normal(size=(16, *lean.input_shape)).astype(np.float32)
    t0 = time.perf_counter()
    # the exporter's default calibration (histogram observer), as `tinyevo export` quantises: min-max hid the
    # float fallback of duplicate ops (docs/tflm_arena.md)
    q = quantize_int8(model, x, config=QuantConfig(calibration_samples=16, batch_size=16, observer=observer,
                                                   qat_mode="never"), rng=rng)
    raw = to_tflite(q, lean.input_shape, strip=False)
    fb = strip_flatbuffer(raw)
    convert_s = time.perf_counter() - t0
    info = inspect_flatbuffer(fb)
    arena = measure_arena(fb)
    if model_dir is not None:
        model_dir.mkdir(parents=True, exist_ok=True)
        (model_dir / f"{space_name}-{seed}.tflite").write_bytes(fb)
    est = estimate_cost(ir, planner="optimal")  # activations only (the default, tflm-mcu, adds the tail)
    est_tflm = estimate_cost(ir, planner="tflm")
    est_opt = estimate_cost(ir, planner="optimal")
    est_tflm_noscratch = estimate_cost(ir, planner=TFLMPlanner(scratch=False))
    est_tflm_cmsis = estimate_cost(ir, planner="tflm-cmsis")
    # the whole arena: the host's (64-bit, recording allocator) vs the bisected smallest working arena, and a
    # 32-bit MCU's (the default planner) vs TFLM's rule on the real flatbuffer with the measured head
    est_host = estimate_cost(ir, planner=TFLMArenaPlanner(pointer_size=8, recording=True, compression=True))
    est_mcu = estimate_cost(ir, planner="tflm-mcu")
    spec = tail_spec_from_flatbuffer(info)
    required_mcu32 = tflm_arena_required(spec, arena.head, pointer_size=4)
    float_kernels = sorted({op.name for op in info.ops for t in (*op.inputs, *op.outputs)
                            if t >= 0 and not info.tensors[t].constant and info.tensors[t].dtype != "int8"})
    est_ops: dict[str, int] = {}
    for op in lower(ir).ops:
        est_ops[op.tflite] = est_ops.get(op.tflite, 0) + 1
    rep = replay_tflm_planner(info)
    ops: dict[str, int] = {}
    for name in info.op_names():
        ops[name] = ops.get(name, 0) + 1
    activation_tensors = sum(1 for t in info.tensors if not t.constant)
    op_diff = {k: ops.get(k, 0) - est_ops.get(k, 0) for k in sorted(set(ops) | set(est_ops))
               if ops.get(k, 0) != est_ops.get(k, 0)}
    return {
        "space": space_name, "genome": genome, "file": f"{space_name}-{seed}.tflite", "n_ops": len(info.ops), "ops": ops,
        "n_tensors": len(info.tensors), "n_activation_tensors": activation_tensors,
        "tflite_bytes": len(fb), "tflite_bytes_unstripped": len(raw), "constant_bytes": info.constant_bytes,
        "quant_channels": sum(t.quant_channels for t in info.tensors),
        "n_quantized_tensors": sum(1 for t in info.tensors if t.quant_channels),
        "n_opcodes": len(set(info.op_names())),
        "weight_channels": sum(t.quant_channels for t in info.tensors if t.constant and t.dtype == "int8"),
        "est_flash_bytes": est.flash_bytes, "est_flash_breakdown": {
            "weights": est.flash.weights, "biases": est.flash.biases, "quantization": est.flash.quantization,
            "metadata": est.flash.metadata},
        "arena_total": arena.total, "arena_head": arena.head, "arena_tail": arena.tail,
        # the structural tail model with the host's parameters (64-bit, recording allocator, compression build)
        "est_tflm_persistent_bytes": tflm_persistent_bytes(lower(ir), pointer_size=8, recording=True,
                                                           compression=True),
        "arena_sections": {k: list(v) for k, v in arena.sections.items()},
        "arena_required": arena.required,
        "est_arena_host64": est_host.peak_sram_bytes, "arena_required_mcu32": required_mcu32,
        "est_arena_mcu32": est_mcu.peak_sram_bytes, "non_int8_kernels": float_kernels,
        "est_peak_sram_bytes": est.peak_sram_bytes, "est_peak_sram_tflm_planner": est_tflm.peak_sram_bytes,
        "est_peak_sram_optimal": est_opt.peak_sram_bytes,
        "est_peak_sram_tflm_planner_no_scratch": est_tflm_noscratch.peak_sram_bytes,
        "est_peak_sram_tflm_cmsis": est_tflm_cmsis.peak_sram_bytes,
        "est_ops": est_ops, "op_diff_real_minus_est": op_diff,
        "replay_tflm_planner": rep["replay"], "live_bound": rep["live_bound"],
        "est_tflm_rule_on_cost_graph": tflm_rule_on_cost_graph(ir),
        "est_kernels": len(est.ops), "macs": est.macs, "params": est.params, "convert_s": convert_s,
    }


def _err(est: float, real: float) -> float:
    return 100.0 * (est - real) / real if real else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-space", type=int, default=8, help="architectures per space (nb201 gets half)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--spaces", default="chain,blocks,nb201")
    ap.add_argument("--observer", choices=("histogram", "minmax"), default="histogram",
                    help="calibration observer (default: the exporter's, histogram)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "out" / "tflm_vs_estimate.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    for noisy in ("jax", "absl", "root"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    console = Console(width=200)
    rows: list[dict] = []
    failed: list[dict] = []
    rng = np.random.default_rng(args.seed)
    for space_name in args.spaces.split(","):
        space = create_space(space_name, **SPACE_OPTIONS.get(space_name, {}))  # type: ignore[arg-type]
        n = args.per_space if space_name != "nb201" else max(1, args.per_space // 2)
        seen: set[str] = set()
        tries = 0
        while len(seen) < n and tries < 20 * n:
            tries += 1
            g = space.sample(rng)
            if str(g) in seen:
                continue
            seen.add(str(g))
            try:
                row = run_one(space_name, str(g), space.decode(g), seed=args.seed + len(rows) + len(failed),
                              model_dir=Path(args.out).parent / "tflm_models", observer=args.observer)
            except (DeployError, ConfigError) as exc:
                failed.append({"space": space_name, "genome": str(g), "error": str(exc)})
                console.print(f"[red]{space_name} FAILED[/red] {str(g)[:60]}: {exc}")
                continue
            rows.append(row)
            console.print(f"{space_name:<6} {row['tflite_bytes']:>8} B flash (est {row['est_flash_bytes']}), arena "
                          f"head {row['arena_head']} (est {row['est_peak_sram_bytes']}, tflm-planner "
                          f"{row['est_peak_sram_tflm_planner']}, replay {row['replay_tflm_planner']})  {str(g)[:60]}")
    table = Table(title="TFLite-Micro vs cost model (int8; head = TFLM's planned activations + scratch)")
    for col in ("space", "ops", "flash B", "est B", "err %", "head B", "est B", "err %", "tflm-pl B", "err %",
                "rule B", "err %", "replay B", "tail B", "arena B"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            str(r["space"]), str(r["n_ops"]), str(r["tflite_bytes"]), str(r["est_flash_bytes"]),
            f"{_err(r['est_flash_bytes'], r['tflite_bytes']):+.1f}", str(r["arena_head"]),
            str(r["est_peak_sram_bytes"]), f"{_err(r['est_peak_sram_bytes'], r['arena_head']):+.1f}",
            str(r["est_peak_sram_tflm_planner"]), f"{_err(r['est_peak_sram_tflm_planner'], r['arena_head']):+.1f}",
            str(r["est_tflm_rule_on_cost_graph"]), f"{_err(r['est_tflm_rule_on_cost_graph'], r['arena_head']):+.1f}",
            str(r["replay_tflm_planner"]), str(r["arena_tail"]), str(r["arena_required"]),
        )
    console.print(table)
    flash_err = np.array([_err(r["est_flash_bytes"], r["tflite_bytes"]) for r in rows])
    sram_err = np.array([_err(r["est_peak_sram_bytes"], r["arena_head"]) for r in rows])
    tflm_err = np.array([_err(r["est_peak_sram_tflm_planner"], r["arena_head"]) for r in rows])
    rule_err = np.array([_err(r["est_tflm_rule_on_cost_graph"], r["arena_head"]) for r in rows])
    total_err = np.array([_err(r["est_peak_sram_bytes"], r["arena_total"]) for r in rows])
    # flatbuffer overhead model: tflite - constant bytes = fixed + per_op * ops + per_tensor * tensors
    #                                                     + per_channel * quantisation (scale, zero point) pairs
    a = np.array([[1.0, r["n_ops"], r["n_tensors"], r["quant_channels"]] for r in rows])
    b = np.array([r["tflite_bytes"] - r["constant_bytes"] for r in rows], dtype=float)
    coef = np.linalg.lstsq(a, b, rcond=None)[0] if len(rows) >= 4 else np.full(4, np.nan)
    resid = b - a @ coef if len(rows) >= 4 else np.full(len(rows), np.nan)
    # persistent arena part (64-bit host): tail = fixed + per_op * ops + per_tensor * tensors
    #                                          + per_weight_channel * (output channels of quantised weights)
    ta = np.array([[1.0, r["n_ops"], r["n_tensors"], r["weight_channels"]] for r in rows])
    tb = np.array([r["arena_tail"] for r in rows], dtype=float)
    tcoef = np.linalg.lstsq(ta, tb, rcond=None)[0] if len(rows) >= 4 else np.full(4, np.nan)
    tresid = tb - ta @ tcoef if len(rows) >= 4 else np.full(len(rows), np.nan)
    tail_err = np.array([_err(r["est_tflm_persistent_bytes"], r["arena_tail"]) for r in rows])
    waste = [100.0 * (r["arena_head"] - r["est_peak_sram_optimal"]) / r["arena_head"] for r in rows
             if r["arena_head"]]

    def stats(e: np.ndarray) -> dict[str, float]:
        return {"mean_abs": float(np.mean(np.abs(e))), "max_abs": float(np.max(np.abs(e))),
                "within_2pct": int(np.sum(np.abs(e) <= 2)), "within_5pct": int(np.sum(np.abs(e) <= 5))}

    summary = {
        "n": len(rows), "failed": len(failed), "flash_error_pct": stats(flash_err), "peak_sram_vs_head_error_pct": stats(sram_err),
        "tflm_planner_vs_head_error_pct": stats(tflm_err),
        "tflm_rule_on_cost_graph_vs_head_error_pct": stats(rule_err),
        "tflm_persistent_vs_tail_error_pct": stats(tail_err), "peak_sram_vs_total_error_pct": stats(total_err),
        "flatbuffer_overhead_fit": {"fixed": float(coef[0]), "per_op": float(coef[1]), "per_tensor": float(coef[2]),
                                    "per_quant_channel": float(coef[3]),
                                    "max_abs_residual_bytes": float(np.max(np.abs(resid)))},
        "tail_fit_64bit_host": {"fixed": float(tcoef[0]), "per_op": float(tcoef[1]), "per_tensor": float(tcoef[2]),
                                "per_weight_channel": float(tcoef[3]),
                                "max_abs_residual_bytes": float(np.max(np.abs(tresid)))},
        "required_minus_reported_total_bytes": [int(r["arena_required"] - r["arena_total"]) for r in rows],
        "replay_equals_head": int(sum(r["replay_tflm_planner"] == r["arena_head"] for r in rows)),
        # "it fits" on the device: estimate == TFLM, and every under-count (the estimate below what TFLM needs)
        "tflm_head_equal": int(sum(r["est_peak_sram_tflm_planner"] == r["arena_head"] for r in rows)),
        "tflm_head_under": [{"genome": r["genome"], "est": r["est_peak_sram_tflm_planner"], "tflm": r["arena_head"]}
                            for r in rows if r["est_peak_sram_tflm_planner"] < r["arena_head"]],
        # the host's bisected arena start is not always 16-byte aligned: up to 16 B above counts as equal
        "host_arena_equal_within_16": int(sum(0 <= r["est_arena_host64"] - r["arena_required"] <= 16
                                              for r in rows)),
        "host_arena_under": [{"genome": r["genome"], "est": r["est_arena_host64"], "tflm": r["arena_required"]}
                             for r in rows if r["est_arena_host64"] < r["arena_required"]],
        "mcu32_arena_equal": int(sum(r["est_arena_mcu32"] == r["arena_required_mcu32"] for r in rows)),
        "mcu32_arena_under": [{"genome": r["genome"], "est": r["est_arena_mcu32"], "tflm_rule":
                               r["arena_required_mcu32"]} for r in rows
                              if r["est_arena_mcu32"] < r["arena_required_mcu32"]],
        "with_non_int8_kernels": [r["genome"] for r in rows if r["non_int8_kernels"]],
        "tflm_waste_vs_optimal_pct_mean": float(np.mean(waste)) if waste else float("nan"),
        "tflm_waste_vs_optimal_pct_max": float(np.max(waste)) if waste else float("nan"),
    }
    console.print(json.dumps(summary, indent=1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "platform": platform.platform(), "summary": summary,
                               "rows": rows, "failed": failed}, indent=1, default=str))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
