"""Instructions per MAC of the native kernels on an emulated Cortex-M4 / M7 with and without the DSP path.

The kernels' dot product (``te_dot_s8``: convolutions and fully connected layers) uses dual 16-bit
multiply-accumulates (SMLAD) when ``__ARM_FEATURE_DSP`` is defined; building with ``-U__ARM_FEATURE_DSP`` gives
the plain C loop on the same core. For the first ``--networks`` networks of ``native_vs_tflm.py``'s stream (same
spaces, options and seeds; its ``.tflite`` cache is reused), both builds run with op hooks on one input; outputs
must be equal, and the per-kernel instruction counts are summed per kernel type over all networks.

    python benchmarks/native_dsp_ab.py --networks 6

Writes ``benchmarks/results/native_dsp_ab.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from native_vs_tflm import HERE, _genomes, _key  # noqa: E402

from tinyevo.codegen.check import export_random_tflite  # noqa: E402
from tinyevo.codegen.cortexm import ModelSources, Toolchain, build_firmware, emulate  # noqa: E402
from tinyevo.codegen.errors import CodegenError  # noqa: E402
from tinyevo.codegen.generate import generate  # noqa: E402
from tinyevo.cost.latency_native import kernel_key  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--networks", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--spaces", default="chain,blocks,nb201")
    ap.add_argument("--out", default=str(HERE / "results" / "native_dsp_ab.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    tc = Toolchain.find()
    stream = _genomes(args.networks, args.seed, args.spaces.split(","))
    sums: dict[str, dict[str, dict[str, list[float]]]] = {}
    networks = []
    attempts = 0
    while len(networks) < args.networks and attempts < 3 * args.networks:
        space, genome, ir = next(stream)
        seed = args.seed + attempts
        attempts += 1
        cache = HERE / "out" / "native_tflite" / f"{_key(space, genome, seed)}.tflite"
        if cache.exists():
            fb = cache.read_bytes()
        else:
            _lean, fb = export_random_tflite(ir, seed=seed)
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_bytes(fb)
        try:
            gen = generate(fb)
        except CodegenError as exc:
            print(f"skipped {space} {genome[:40]}: {str(exc)[:80]}", file=sys.stderr)
            continue
        x = np.random.default_rng(seed).integers(-128, 128, size=(1, gen.input_bytes), dtype=np.int8)
        row: dict[str, object] = {"space": space, "genome": genome, "seed": seed}
        with tempfile.TemporaryDirectory(prefix="tinyevo-dsp-") as tmp:
            for target in ("cortex-m4", "cortex-m7"):
                outs = {}
                for variant, flags in (("dsp", ()), ("plain", ("-U__ARM_FEATURE_DSP",))):
                    fw = build_firmware(ModelSources(gen.h_source, gen.c_source), target,
                                        Path(tmp) / target / variant, toolchain=tc, extra_cflags=flags)
                    run = emulate(fw, x, toolchain=tc, plugin_dir=Path(tmp))
                    outs[variant] = run.outputs
                    per = sums.setdefault(target, {}).setdefault(variant, {})
                    for op, n in zip(gen.ops, run.inferences[0].ops, strict=True):
                        macs = op.macs
                        if macs > 0:
                            acc = per.setdefault(kernel_key(op.kind, op.op_class), [0.0, 0.0])
                            acc[0] += n
                            acc[1] += macs
                    row[f"{target}_{variant}_instructions"] = run.inferences[0].instructions
                row[f"{target}_outputs_equal"] = bool(np.array_equal(outs["dsp"], outs["plain"]))
        networks.append(row)
        print(json.dumps(row), flush=True)
    per_mac = {t: {v: {k: a[0] / a[1] for k, a in sorted(d.items())} for v, d in vs.items()}
               for t, vs in sums.items()}
    summary = {
        "networks": len(networks),
        "outputs_equal": all(r[f"{t}_outputs_equal"] for r in networks for t in ("cortex-m4", "cortex-m7")),
        "instructions_per_mac": per_mac,
        "whole_network_speedup_median": {
            t: float(np.median([r[f"{t}_plain_instructions"] / r[f"{t}_dsp_instructions"] for r in networks]))
            for t in ("cortex-m4", "cortex-m7")},
    }
    print(json.dumps(summary, indent=1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "platform": platform.platform(), "summary": summary,
                               "networks": networks}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
