"""Scoring throughput: candidates scored per CPU-minute with a supernet vs 1-epoch training-based scoring.

Same machine, same process, same data, same genomes (a prefix of one seeded random list of the supernet's
space), one torch thread each:

* **supernet**: :class:`~tinyevo.estimators.supernet.SupernetEstimator` (what ``tinyevo search --supernet DIR``
  runs per candidate) with the default :class:`~tinyevo.supernet.score.ScoreConfig` (``--calibration-rows`` /
  ``--validation-rows`` override it): BatchNorm re-estimated on the calibration rows, accuracy on the validation
  rows. The supernet's load and its first scorer set-up (resampling the inputs) are timed separately (once per
  worker process).
* **module path** (for reference, ``--module-candidates``): the same scores computed the plain way -- extract the
  sub-network as a module (:meth:`Supernet.extract`), ``recalibrate_batchnorm`` on the calibration rows, evaluate
  the module in the default memory layout -- on the first genomes; their scores must agree with the estimator's.
* **train-1ep**: the ``train`` estimator with ``[train] epochs = 1`` (what ``tinyevo search --epochs 1`` runs):
  one epoch on the training split, accuracy on the validation rows.

Time is the process CPU time (``time.process_time``: all threads), also wall time. The supernet's training is a
one-off cost reported from its ``supernet.json`` when it holds one (not part of per-candidate scoring).

Data: Fashion-MNIST (``../shared/data/fashion_mnist.npz``), a stratified ``--fraction`` of the training split
(default 1.0: all 54,000 images, one epoch on the user's training set being the realistic comparison; 0.1: 5,400),
``--val-rows`` (default 2,000) seeded rows of the validation split, as ``supernet_rank.py``. The supernet: ``--supernet DIR`` (default: the one ``supernet_rank.py`` trains under
``benchmarks/out/supernet_rank/``); without one, a 1-epoch supernet is trained first (its time reported)::

    nice -n 5 python benchmarks/supernet_throughput.py    # writes benchmarks/results/supernet_throughput.json
    nice -n 5 python benchmarks/supernet_throughput.py --fraction 0.1 --train-candidates 5 \
        --out benchmarks/results/supernet_throughput_10pct.json
    python benchmarks/supernet_throughput.py --supernet-candidates 20 --train-candidates 2 --fraction 0.02 \
        --out benchmarks/out/supernet_throughput_smoke.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinyevo.estimators import create_estimator
from tinyevo.estimators.base import EvalContext
from tinyevo.estimators.supernet import SupernetEstimator
from tinyevo.supernet import Supernet, load_supernet, save_supernet
from tinyevo.supernet.score import ScoreConfig
from tinyevo.supernet.store import space_from_options
from tinyevo.supernet.train import train_supernet
from tinyevo.training import Recipe, TrainConfig
from tinyevo.training.evaluate import recalibrate_batchnorm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from supernet_rank import SPACE, load_split, shared_dir  # (the rank benchmark's space and data)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SUPERNET = ROOT / "benchmarks" / "out" / "supernet_rank" / "sn_e10_b128_r4" / "supernet"


def clocks() -> tuple[float, float]:
    return time.process_time(), time.perf_counter()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=shared_dir() / "data" / "fashion_mnist.npz")
    p.add_argument("--supernet", type=Path, default=DEFAULT_SUPERNET)
    p.add_argument("--fraction", type=float, default=1.0)
    p.add_argument("--val-rows", type=int, default=2000)
    p.add_argument("--supernet-candidates", type=int, default=200)
    p.add_argument("--train-candidates", type=int, default=5)
    p.add_argument("--module-candidates", type=int, default=10)
    p.add_argument("--calibration-rows", type=int, default=None, help="default: ScoreConfig's")
    p.add_argument("--validation-rows", type=int, default=None, help="default: ScoreConfig's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "supernet_throughput.json")
    args = p.parse_args()
    torch.set_num_threads(1)

    data = load_split(args.data, args.fraction, args.val_rows, args.seed)
    config = ScoreConfig()
    if args.calibration_rows is not None:
        config = replace(config, calibration_rows=args.calibration_rows)
    if args.validation_rows is not None:
        config = replace(config, validation_rows=args.validation_rows)

    result: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": 1,
                    "torch": torch.__version__},
        "data": {"name": data.name, "train": len(data.x_train), "val": len(data.x_val)},
        "command": "python benchmarks/supernet_throughput.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
            if k not in ("out", "data") and v is not None).replace(f"{ROOT}/", ""),
        "score_config": asdict(config),
        "load_average_start": os.getloadavg(),
    }
    sn_dir = args.supernet
    if not (sn_dir / "supernet.json").is_file():
        sn_dir = ROOT / "benchmarks" / "out" / "supernet_throughput" / "supernet"
        if not (sn_dir / "supernet.json").is_file():
            net = Supernet(space_from_options({**SPACE, "input_shape": list(data.input_shape)}))
            c0, w0 = clocks()
            train_supernet(net, data, Recipe(epochs=1, batch_size=128, lr=0.01, threads=1), seed=args.seed)
            c1, w1 = clocks()
            save_supernet(sn_dir, net.eval(), training={"cpu_s": c1 - c0, "wall_s": w1 - w0, "epochs": 1})
    info = json.loads((sn_dir / "supernet.json").read_text())
    result["supernet"] = {"dir": str(sn_dir.relative_to(ROOT)) if sn_dir.is_relative_to(ROOT) else str(sn_dir),
                          "training": {k: v for k, v in info.get("training", {}).items() if k != "curve"}}

    net, _ = load_supernet(sn_dir)
    rng = np.random.default_rng(args.seed)
    n = max(args.supernet_candidates + 1, args.train_candidates)  # genomes[0] warms the scorer up
    genomes = list(dict.fromkeys(str(net.space.sample(rng)) for _ in range(4 * n)))[:n]

    # supernet scoring (SupernetEstimator, as a search --supernet worker runs it) and 1-epoch training-based
    # scoring (the train estimator), interleaved in rounds so that a change of the machine's load during the run
    # falls on both alike: round i scores a block of supernet candidates, then trains candidate i
    c0, w0 = clocks()
    est = SupernetEstimator(sn_dir, config=config)
    first = genomes[0]
    est.evaluate(net.space.decode(net.space.parse(first)), data, seed=0, context=EvalContext(genome=first))
    c1, w1 = clocks()
    setup = (c1 - c0, w1 - w0)
    train_est = create_estimator("train", config=TrainConfig(epochs=1, batch_size=128, lr=0.01, threads=1))
    sn_genomes = genomes[1:args.supernet_candidates + 1]
    rounds = max(1, args.train_candidates)
    blocks = [sn_genomes[i::rounds] for i in range(rounds)]
    sn_scores: dict[str, float] = {}
    tr_scores: list[float] = []
    sn_cpu = sn_wall = tr_cpu = tr_wall = 0.0
    tr_each: list[float] = []  # CPU s of each training
    sn_each: list[float] = []  # CPU s per supernet candidate in each round
    for i in range(rounds):
        c0, w0 = clocks()
        for g in blocks[i]:
            ir = net.space.decode(net.space.parse(g))
            sn_scores[g] = est.evaluate(ir, data, seed=0, context=EvalContext(genome=g))["val_acc"]
        c1, w1 = clocks()
        sn_cpu, sn_wall = sn_cpu + c1 - c0, sn_wall + w1 - w0
        if i < args.train_candidates:
            g = genomes[i]
            ir = net.space.decode(net.space.parse(g))
            tr_scores.append(train_est.evaluate(ir, data, seed=i, context=EvalContext(genome=g))["val_acc"])
            c2, w2 = clocks()
            tr_cpu, tr_wall = tr_cpu + c2 - c1, tr_wall + w2 - w1
            tr_each.append(c2 - c1)
        sn_each.append((c1 - c0) / max(1, len(blocks[i])))
        print(f"round {i + 1}/{rounds}: supernet {len(sn_scores)} candidates {sn_cpu:.1f} CPU s, "
              f"1-epoch {len(tr_scores)} candidates {tr_cpu:.1f} CPU s", flush=True)
    k = len(sn_scores)
    result["supernet_scoring"] = {
        "candidates": k, "setup_cpu_s": setup[0], "setup_wall_s": setup[1], "cpu_s": sn_cpu, "wall_s": sn_wall,
        "cpu_s_per_candidate": sn_cpu / k, "per_cpu_minute": 60.0 * k / sn_cpu,
        "cpu_s_per_candidate_each_round": sn_each, "mean_val_acc": float(np.mean(list(sn_scores.values()))),
    }
    m = len(tr_scores)
    result["train_1epoch_scoring"] = {
        "candidates": m, "cpu_s": tr_cpu, "wall_s": tr_wall, "cpu_s_per_candidate": tr_cpu / m,
        "per_cpu_minute": 60.0 * m / tr_cpu, "cpu_s_each": tr_each, "median_cpu_s": float(np.median(tr_each)),
        "mean_val_acc": float(np.mean(tr_scores)),
    }

    # the same scores the plain way: extracted module, recalibrate_batchnorm, evaluation in the default layout
    scorer = est.scorer(data)
    mod_scores, expected = [], []
    c0, w0 = clocks()
    for g in sn_genomes[:args.module_candidates]:
        genome = net.space.parse(g)
        calib, x_val, y_val = (t.contiguous() for t in scorer.inputs(genome.resolution))
        model = net.extract(genome)
        recalibrate_batchnorm(model, calib, batches=1, batch_size=len(calib))
        model.eval()
        bs = config.batch_size
        with torch.no_grad():
            correct = sum(int((model(x_val[i:i + bs]).argmax(1) == y_val[i:i + bs]).sum())
                          for i in range(0, len(x_val), bs))
        mod_scores.append(correct / len(x_val))
        expected.append(sn_scores[g])
    c1, w1 = clocks()
    if mod_scores:
        j = len(mod_scores)
        diffs = [abs(a - b) for a, b in zip(mod_scores, expected, strict=True)]
        result["module_path_scoring"] = {
            "candidates": j, "cpu_s": c1 - c0, "wall_s": w1 - w0, "cpu_s_per_candidate": (c1 - c0) / j,
            "per_cpu_minute": 60.0 * j / (c1 - c0), "max_abs_score_difference": max(diffs),
            "scores_equal": sum(d == 0 for d in diffs),
        }
    for key in ("supernet_scoring", "module_path_scoring", "train_1epoch_scoring"):
        if key in result:
            print(key, json.dumps(result[key]), flush=True)
    result["speedup_per_cpu_minute"] = (result["supernet_scoring"]["per_cpu_minute"]
                                        / result["train_1epoch_scoring"]["per_cpu_minute"])
    result["speedup_median_training"] = (result["train_1epoch_scoring"]["median_cpu_s"]
                                         / result["supernet_scoring"]["cpu_s_per_candidate"])
    result["goal"] = ">= 100x (issue 20, benchmark 3)"
    result["load_average_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"speed-up (candidates per CPU-minute): {result['speedup_per_cpu_minute']:.1f}x")


if __name__ == "__main__":
    main()
