"""A padded strided average pool of a 1-channel input: TFLite-Micro's arena with the exporter's two-copy chain
(``CONCATENATION`` + 2-channel ``AVERAGE_POOL_2D`` + ``SLICE``) and with the chain folded back into one pool (what
``tinyevo export`` now writes), against the cost model's estimates.

For each chain genome (seeded random weights, the exporter's default histogram calibration) the same converted
model is stripped twice, with and without the fold (``strip_flatbuffer(fold_copies=...)``); each is measured in
TFLM child processes (the ``--verify`` probe: head, tail, bisected smallest arena on the 64-bit host) and the
TFLM outputs of the two on random rows are compared. The 32-bit arena is TFLM's rule on the flatbuffer with the
measured head (``tflm_arena_required``). Writes ``benchmarks/results/two_copy_pool_arena.json``.

    python benchmarks/two_copy_pool_arena.py
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from tinyevo.cost import TFLMArenaPlanner, estimate_cost
from tinyevo.cost.tflm_tail import tail_spec_from_flatbuffer, tflm_arena_required
from tinyevo.deploy.graph import strip_passthrough
from tinyevo.deploy.model import load_weights
from tinyevo.deploy.quantize import QuantConfig, quantize_int8
from tinyevo.deploy.tflite import strip_flatbuffer, to_tflite
from tinyevo.deploy.tflm import inspect_flatbuffer, measure_arena, run_tflm
from tinyevo.spaces import create_space

NETWORKS = (  # (genome, input (C, H, W))
    ("avgpool_k3_s2-conv_k3_s1_c4-flat-dense_c8", (1, 12, 12)),
    ("avgpool_k3_s2-conv_k3_s1_c8-gap-dense_c8", (1, 28, 28)),
    ("avgpool_k2_s2-avgpool_k3_s2-flat-dense_c8", (1, 13, 13)),
)
HOST = {"pointer_size": 8, "recording": True, "compression": True}


def _measure(fb: bytes) -> dict[str, object]:
    info = inspect_flatbuffer(fb)
    arena = measure_arena(fb)
    spec = tail_spec_from_flatbuffer(info)
    return {"ops": list(info.op_names()), "tflite_bytes": len(fb), "head": arena.head, "tail": arena.tail,
            "host_arena_required": arena.required,
            "mcu32_arena_required": tflm_arena_required(spec, arena.head, pointer_size=4)}


def run_one(genome: str, shape: tuple[int, int, int], seed: int) -> dict[str, object]:
    space = create_space("chain", input_shape=shape, num_classes=5)
    ir = space.decode(space.parse(genome))
    lean = strip_passthrough(ir)
    rng = np.random.default_rng(seed)
    model = load_weights(lean, None, seed=seed)
    x = rng.normal(size=(32, *lean.input_shape)).astype(np.float32)
    q = quantize_int8(model, x, config=QuantConfig(calibration_samples=32, batch_size=16, qat_mode="never"),
                      rng=rng)
    raw = to_tflite(q, lean.input_shape, strip=False)
    chain, folded = strip_flatbuffer(raw, fold_copies=False), strip_flatbuffer(raw)
    rows = rng.normal(scale=2.0, size=(64, *lean.input_shape)).astype(np.float32)
    same = bool(np.array_equal(run_tflm(chain, rows).logits, run_tflm(folded, rows).logits))
    return {
        "genome": genome, "input_shape": list(shape), "seed": seed,
        "chain": _measure(chain), "folded": _measure(folded), "tflm_outputs_equal": same,
        "est_tflm_head": estimate_cost(ir, planner="tflm").peak_sram_bytes,
        "est_tflm_mcu32": estimate_cost(ir).peak_sram_bytes,
        "est_tflm_host64": estimate_cost(ir, planner=TFLMArenaPlanner(**HOST)).peak_sram_bytes,
        "est_flash_bytes": estimate_cost(ir).flash_bytes,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "two_copy_pool_arena.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    console = Console(width=160)
    rows = [run_one(g, s, args.seed) for g, s in NETWORKS]
    table = Table(title="1-channel padded strided average pool: TFLM arena, chain vs folded export, vs estimate")
    for col in ("genome", "input", "head chain", "head folded", "est tflm", "host arena chain", "folded",
                "est 64-bit", "MCU32 chain", "folded", "est tflm-mcu", "outputs equal"):
        table.add_column(col, justify="left" if col == "genome" else "right")
    for r in rows:
        c, f = r["chain"], r["folded"]
        table.add_row(r["genome"], "x".join(map(str, r["input_shape"])), str(c["head"]), str(f["head"]),
                      str(r["est_tflm_head"]), str(c["host_arena_required"]), str(f["host_arena_required"]),
                      str(r["est_tflm_host64"]), str(c["mcu32_arena_required"]), str(f["mcu32_arena_required"]),
                      str(r["est_tflm_mcu32"]), str(r["tflm_outputs_equal"]))
    console.print(table)
    summary = {
        "n": len(rows),
        "outputs_equal": sum(r["tflm_outputs_equal"] for r in rows),
        "head_equal_estimate_folded": sum(r["folded"]["head"] == r["est_tflm_head"] for r in rows),
        "head_under_estimate_chain": sum(r["chain"]["head"] > r["est_tflm_head"] for r in rows),
        "mcu32_equal_estimate_folded": sum(r["folded"]["mcu32_arena_required"] == r["est_tflm_mcu32"] for r in rows),
        "host_arena_within_16_folded": sum(0 <= r["est_tflm_host64"] - r["folded"]["host_arena_required"] <= 16
                                           for r in rows),
    }
    console.print(json.dumps(summary, indent=1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "platform": platform.platform(), "summary": summary,
                               "rows": rows}, indent=1))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
