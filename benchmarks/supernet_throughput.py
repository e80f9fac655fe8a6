"""Scoring throughput: candidates scored per CPU-minute with a supernet vs 1-epoch training-based scoring.

Same machine, same process, same data, same genomes (a prefix of one seeded random list of the supernet's
space), one torch thread each:

* **supernet**: :class:`~tinyevo.estimators.supernet.SupernetEstimator` (what ``tinyevo search --supernet DIR``
  runs per candidate): BatchNorm recalibrated on 500 training images, accuracy on the validation rows. The
  supernet's load and its first scorer set-up are timed separately (once per worker process).
* **train-1ep**: the ``train`` estimator with ``[train] epochs = 1`` (what ``tinyevo search --epochs 1`` runs):
  one epoch on the training split, accuracy on the validation rows.

Time is the process CPU time (``time.process_time``: all threads), also wall time. The supernet's training is a
one-off cost reported from its ``supernet.json`` when it holds one (not part of per-candidate scoring).

Data: Fashion-MNIST (``../shared/data/fashion_mnist.npz``), a stratified ``--fraction`` (default 10 %: 5,400
images) of the training split, ``--val-rows`` (default 2,000) seeded rows of the validation split, as
``supernet_rank.py``. The supernet: ``--supernet DIR`` (default: the one ``supernet_rank.py`` trains under
``benchmarks/out/supernet_rank/``); without one, a 1-epoch supernet is trained first (its time reported)::

    nice -n 10 python benchmarks/supernet_throughput.py    # writes benchmarks/results/supernet_throughput.json
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
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinyevo.estimators import create_estimator
from tinyevo.estimators.base import EvalContext
from tinyevo.estimators.supernet import SupernetEstimator
from tinyevo.supernet import Supernet, load_supernet, save_supernet
from tinyevo.supernet.store import space_from_options
from tinyevo.supernet.train import train_supernet
from tinyevo.training import Recipe, TrainConfig

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
    p.add_argument("--fraction", type=float, default=0.1)
    p.add_argument("--val-rows", type=int, default=2000)
    p.add_argument("--supernet-candidates", type=int, default=200)
    p.add_argument("--train-candidates", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "supernet_throughput.json")
    args = p.parse_args()
    torch.set_num_threads(1)

    data = load_split(args.data, args.fraction, args.val_rows, args.seed)

    result: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": 1,
                    "torch": torch.__version__},
        "data": {"name": data.name, "train": len(data.x_train), "val": len(data.x_val)},
        "command": "python benchmarks/supernet_throughput.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("out", "data")),
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

    # supernet scoring (SupernetEstimator, as a search --supernet worker runs it)
    c0, w0 = clocks()
    est = SupernetEstimator(sn_dir)
    first = genomes[0]
    est.evaluate(net.space.decode(net.space.parse(first)), data, seed=0, context=EvalContext(genome=first))
    c1, w1 = clocks()
    sn_scores = []
    for g in genomes[1:args.supernet_candidates + 1]:
        ir = net.space.decode(net.space.parse(g))
        sn_scores.append(est.evaluate(ir, data, seed=0, context=EvalContext(genome=g))["val_acc"])
    c2, w2 = clocks()
    k = len(sn_scores)
    result["supernet_scoring"] = {
        "candidates": k, "setup_cpu_s": c1 - c0, "setup_wall_s": w1 - w0, "cpu_s": c2 - c1, "wall_s": w2 - w1,
        "cpu_s_per_candidate": (c2 - c1) / k, "per_cpu_minute": 60.0 * k / (c2 - c1),
        "mean_val_acc": float(np.mean(sn_scores)),
    }
    print(json.dumps(result["supernet_scoring"]), flush=True)

    # 1-epoch training-based scoring (the train estimator)
    train_est = create_estimator("train", config=TrainConfig(epochs=1, batch_size=128, lr=0.01, threads=1))
    tr_scores = []
    c0, w0 = clocks()
    for i, g in enumerate(genomes[:args.train_candidates]):
        ir = net.space.decode(net.space.parse(g))
        tr_scores.append(train_est.evaluate(ir, data, seed=i, context=EvalContext(genome=g))["val_acc"])
    c1, w1 = clocks()
    m = len(tr_scores)
    result["train_1epoch_scoring"] = {
        "candidates": m, "cpu_s": c1 - c0, "wall_s": w1 - w0, "cpu_s_per_candidate": (c1 - c0) / m,
        "per_cpu_minute": 60.0 * m / (c1 - c0), "mean_val_acc": float(np.mean(tr_scores)),
    }
    result["speedup_per_cpu_minute"] = (result["supernet_scoring"]["per_cpu_minute"]
                                        / result["train_1epoch_scoring"]["per_cpu_minute"])
    result["goal"] = ">= 100x (issue 20, benchmark 3)"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("train_1epoch_scoring", "speedup_per_cpu_minute")}, indent=2))


if __name__ == "__main__":
    main()
