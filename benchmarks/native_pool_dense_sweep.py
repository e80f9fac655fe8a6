"""Random chain genomes whose last feature layer is a pool read by the dense head (``...-maxpool_k2_s2-flat-
dense_c16``): the exporter wraps the dense layer's input requantisation in layout TRANSPOSE ops there. For each
network: the exported op list, native C vs TFLite-Micro bit-exactness on random inputs, and the arena against
``estimate_cost(ir, planner="native")``.

    python benchmarks/native_pool_dense_sweep.py --networks 10 --seed 0

Writes ``benchmarks/results/native_pool_dense.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from tinyevo.codegen import check_network
from tinyevo.codegen.check import export_random_tflite
from tinyevo.codegen.errors import CodegenError
from tinyevo.codegen.tflite_model import read_tflite
from tinyevo.errors import TinyEvoError
from tinyevo.spaces import create_space

OUT = Path(__file__).parent / "results" / "native_pool_dense.json"


def genomes(n: int, seed: int) -> list[str]:
    """``n`` distinct valid chain genomes: a random genome's feature layers, then a random pool, a ``flat``
    head and 0-2 hidden dense layers."""
    space = create_space("chain", input_shape=(1, 12, 12), num_classes=5)
    rng = np.random.default_rng(seed)
    out: list[str] = []
    while len(out) < n:
        g = space.sample(rng)
        layers = [str(layer) for layer in g.layers][: int(rng.integers(0, 3))]
        pool = f"{rng.choice(['maxpool', 'avgpool'])}_k{rng.choice([2, 3])}_s{rng.choice([1, 2])}"
        dense = [f"dense_c{int(rng.choice([8, 16, 32]))}" for _ in range(int(rng.integers(0, 3)))]
        text = "-".join([*layers, pool, "flat", *dense])
        try:
            space.parse(text)
        except TinyEvoError:
            continue
        if text not in out:
            out.append(text)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--networks", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rows", type=int, default=16)
    args = ap.parse_args()
    space = create_space("chain", input_shape=(1, 12, 12), num_classes=5)
    rows = []
    for i, text in enumerate(genomes(args.networks, args.seed)):
        t0 = time.perf_counter()
        ir = space.decode(space.parse(text))
        _lean, model = export_random_tflite(ir, seed=i, calibration=32)
        exported = [op.kind for op in read_tflite(model).ops]
        try:
            r = check_network(ir, seed=i, rows=args.rows, model=model).as_json()
        except CodegenError as exc:
            r = {"error": str(exc)[:200], "bit_exact": False, "arena_matches_estimate": False}
        rows.append({"genome": text, "exported_ops": exported, **r, "seconds": round(time.perf_counter() - t0, 1)})
    doc = {"command": f"python benchmarks/native_pool_dense_sweep.py --networks {args.networks} --seed "
                      f"{args.seed} --rows {args.rows}",
           "networks": len(rows),
           "with_transpose_chain": sum("TRANSPOSE" in r["exported_ops"] for r in rows),
           "errors": sum("error" in r for r in rows),
           "bit_exact": sum(bool(r["bit_exact"]) for r in rows),
           "arena_equals_estimate": sum(bool(r["arena_matches_estimate"]) for r in rows),
           "rows": rows}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps({k: v for k, v in doc.items() if k != "rows"}))


if __name__ == "__main__":
    main()
