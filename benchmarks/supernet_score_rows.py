"""How many calibration / validation rows a supernet score needs: Kendall tau against a many-row reference.

A supernet score (:class:`~tinyevo.supernet.score.SupernetScorer`) costs forward passes over its calibration rows
(BatchNorm re-estimation) and its validation rows, so fewer rows score faster -- as long as the candidates keep
their order. This benchmark scores ``--genomes`` (default 120) distinct random genomes of the ``supernet_rank.py``
space with an existing trained supernet (``--supernet``; default the rank benchmark's 10-epoch one) under every
``--calibration`` x ``--validation`` row count, for ``--seeds`` (default 2) row draws each, and reports the Kendall tau of each
configuration's scores against a **reference** score of the same genomes.

To keep the comparison honest the Fashion-MNIST validation split (6,000 rows) is cut in two disjoint halves: the
configurations draw their validation rows from half A, the reference evaluates on all of half B (3,000 rows) after
recalibrating on ``--reference-calibration`` (default 2,000) training rows drawn with another seed. (Nested subsets
would agree with their superset by construction.) The tau between "all of A" and the reference is the ceiling that
the validation noise of 3,000 rows leaves. Mean and spread of tau over the seeds, and the CPU seconds per candidate
of each configuration, are written to JSON::

    nice -n 5 python benchmarks/supernet_score_rows.py     # writes benchmarks/results/supernet_score_rows.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import kendalltau

from tinyevo.supernet import load_supernet
from tinyevo.supernet.score import ScoreConfig, SupernetScorer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from supernet_rank import load_split, shared_dir  # (the rank benchmark's data)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SUPERNET = ROOT / "benchmarks" / "out" / "supernet_rank" / "sn_e10_b128_r4" / "supernet"


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def scores(net: Any, data: Any, genomes: list[str], config: ScoreConfig) -> tuple[list[float], float]:
    """(scores, CPU seconds per genome) of ``genomes`` under ``config`` (the first resampling not timed)."""
    scorer = SupernetScorer(net, data, config=config)
    for r in net.space.resolutions:
        scorer.inputs(r)
    t0 = time.process_time()
    out = scorer.score_many(genomes)
    return out, (time.process_time() - t0) / len(genomes)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=shared_dir() / "data" / "fashion_mnist.npz")
    p.add_argument("--supernet", type=Path, default=DEFAULT_SUPERNET)
    p.add_argument("--genomes", type=int, default=120)
    p.add_argument("--calibration", type=ints, default=[64, 128, 256, 500, 1000])
    p.add_argument("--validation", type=ints, default=[500, 1000, 2000, 3000])
    p.add_argument("--seeds", type=ints, default=[0, 1])
    p.add_argument("--reference-calibration", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "supernet_score_rows.json")
    args = p.parse_args()
    torch.set_num_threads(1)

    full = load_split(args.data, 0.1, 10**9, args.seed)  # every validation row (6,000)
    halves = np.random.default_rng(args.seed).permutation(len(full.x_val))
    a, b = np.sort(halves[: len(halves) // 2]), np.sort(halves[len(halves) // 2 :])
    data_a = full.with_splits(x_val=full.x_val[a], y_val=full.y_val[a])
    data_b = full.with_splits(x_val=full.x_val[b], y_val=full.y_val[b])
    net, _ = load_supernet(args.supernet)
    rng = np.random.default_rng(args.seed)
    genomes = list(dict.fromkeys(str(net.space.sample(rng)) for _ in range(4 * args.genomes)))[: args.genomes]

    ref_cfg = ScoreConfig(calibration_rows=args.reference_calibration, validation_rows=None, seed=10_000)
    ref, ref_cpu = scores(net, data_b, genomes, ref_cfg)
    print(f"reference: {args.reference_calibration} calibration rows, {len(b)} validation rows (half B), "
          f"{ref_cpu:.3f} CPU s per genome, mean {np.mean(ref):.3f}", flush=True)

    rows: list[dict[str, Any]] = []
    for c in args.calibration:
        for v in args.validation:
            taus, cpus, means = [], [], []
            for s in args.seeds:
                got, cpu = scores(net, data_a, genomes, ScoreConfig(calibration_rows=c, validation_rows=v, seed=s))
                taus.append(float(kendalltau(got, ref).statistic))
                cpus.append(cpu)
                means.append(float(np.mean(got)))
            row = {"calibration_rows": c, "validation_rows": v, "kendall_tau_mean": round(float(np.mean(taus)), 4),
                   "kendall_tau_min": round(min(taus), 4), "kendall_tau_max": round(max(taus), 4),
                   "kendall_tau_per_seed": [round(t, 4) for t in taus],
                   "cpu_s_per_genome": round(float(np.mean(cpus)), 4), "mean_score": round(float(np.mean(means)), 4)}
            rows.append(row)
            print(json.dumps(row), flush=True)

    result = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": 1,
                    "torch": torch.__version__, "load_average": os.getloadavg()},
        "command": "python benchmarks/supernet_score_rows.py " + " ".join(
            f"--{k.replace('_', '-')} {','.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items() if k not in ("out", "data")).replace(f"{ROOT}/", ""),
        "supernet": str(args.supernet.relative_to(ROOT)) if args.supernet.is_relative_to(ROOT) else str(args.supernet),
        "genomes": len(genomes),
        "data": {"name": full.name, "train": len(full.x_train), "validation_half_a": len(a),
                 "validation_half_b": len(b)},
        "reference": {"calibration_rows": args.reference_calibration, "validation_rows": len(b),
                      "calibration_seed": ref_cfg.seed, "cpu_s_per_genome": round(ref_cpu, 4),
                      "mean_score": round(float(np.mean(ref)), 4)},
        "configurations": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
