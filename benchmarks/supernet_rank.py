"""Rank correlation (Kendall tau) of supernet-inherited validation accuracy against stand-alone training.

Data: Fashion-MNIST (``../shared/data/fashion_mnist.npz``), a stratified ``--fraction`` (default 10 %: 5,400
images) of the training split, ``--val-rows`` (default 2,000) seeded random rows of the validation split (a seeded
stratified 10 % of the official training set), inputs resampled to each genome's resolution.

Space: a small MCUNet-style ``blocks`` sub-space for 28x28 one-channel images: MBConv stages only, resolutions
16/20/24, width multipliers 0.5/0.75/1.0, per stage depth 1-3, kernel 3/5/7, expansion 1/3/4, four stages
(strides 1, 2, 2, 2; base widths 8-16, 16-24, 24-32, 32-48), stem 8.

Architectures: ``--archs`` (default 30) distinct genomes spread over the size range: 2,000 random genomes sorted
by MACs, one taken at each of ``--archs`` evenly spaced quantiles.

* **Supernet**: trained once with the sandwich rule (largest + smallest + 2 random sub-networks per step,
  in-place distillation) for ``--supernet-epochs`` (default 8) epochs, AdamW lr 0.01 (cosine), batch 128, seed 0,
  one torch thread; checkpointed (a killed benchmark resumes). Each candidate is then scored by
  :class:`~tinyevo.supernet.score.SupernetScorer`: BatchNorm recalibrated on 500 training images, accuracy on the
  validation rows.
* **Stand-alone** (the reference): each architecture trained from scratch with the same recipe for all,
  ``--epochs`` (default 3) epochs, AdamW lr 0.01 (cosine), batch 128, seed 0, one torch thread; validation
  accuracy on the same rows.

Reported: Kendall tau (and Spearman rho) of supernet score vs stand-alone accuracy; the same for MACs (a free
baseline); the cost per candidate of both (seconds; the supernet's training time also amortised over the
candidates). The JSON is rewritten after every step and the benchmark resumes from it (and from the supernet's
checkpoint); a run with other supernet settings (``--supernet-epochs``, ``--supernet-batch-size``,
``--random-subnets``, ``--calibration-rows``) and the same reference settings keeps the stand-alone results::

    nice -n 10 python benchmarks/supernet_rank.py                  # writes benchmarks/results/supernet_rank.json
    nice -n 10 python benchmarks/supernet_rank.py --supernet-epochs 14   # the same reference, a longer supernet
    python benchmarks/supernet_rank.py --archs 6 --epochs 1 --supernet-epochs 1 --fraction 0.02 \
        --out benchmarks/out/supernet_rank_smoke.json              # a quick smoke run
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
from scipy.stats import kendalltau, spearmanr

from tinyevo.data import Dataset, load_dataset, subset
from tinyevo.nn import build_model
from tinyevo.spaces import create_space
from tinyevo.spaces.blocks import BlocksSpace
from tinyevo.supernet import Supernet, macs
from tinyevo.supernet.score import ScoreConfig, SupernetScorer
from tinyevo.supernet.store import load_supernet, save_supernet, space_options
from tinyevo.supernet.train import train_supernet
from tinyevo.training import Recipe, fit_data_to_ir, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _realdata import shared_dir

ROOT = Path(__file__).resolve().parents[1]
SPACE = {
    "input_shape": (1, 28, 28), "num_classes": 10, "resolutions": (16, 20, 24),
    "width_multipliers": (0.5, 0.75, 1.0), "block_types": ("mb",), "depths": (1, 2, 3), "kernels": (3, 5, 7),
    "expands": (1, 3, 4), "stage_strides": (1, 2, 2, 2),
    "stage_channels": ((8, 16), (16, 24), (24, 32), (32, 48)), "stem_channels": 8,
}


def load_split(path: Path, fraction: float, val_rows: int, seed: int) -> Dataset:
    """Fashion-MNIST (or any npz): a stratified ``fraction`` of the training split and ``val_rows`` validation rows,
    the same for every supernet benchmark."""
    full = load_dataset(str(path), seed=seed, val_fraction=0.1)
    rows = np.sort(np.random.default_rng(seed).permutation(len(full.x_val))[:val_rows])
    return subset(full, fraction, seed=seed).with_splits(x_val=full.x_val[rows], y_val=full.y_val[rows])


def pick_archs(space: BlocksSpace, n: int, seed: int) -> list[str]:
    """``n`` distinct genomes at evenly spaced MACs quantiles of 2,000 random ones."""
    rng = np.random.default_rng(seed)
    pool = {str(g): macs(space.decode(g)) for g in (space.sample(rng) for _ in range(2000))}
    ranked = sorted(pool, key=lambda s: (pool[s], s))
    picked: list[str] = []
    for q in np.linspace(0, len(ranked) - 1, n):
        i = int(round(q))
        while ranked[i] in picked:
            i += 1
        picked.append(ranked[i])
    return picked


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=shared_dir() / "data" / "fashion_mnist.npz")
    p.add_argument("--fraction", type=float, default=0.1, help="fraction of the training split used")
    p.add_argument("--val-rows", type=int, default=2000)
    p.add_argument("--archs", type=int, default=30)
    p.add_argument("--epochs", type=int, default=3, help="stand-alone training epochs (the reference)")
    p.add_argument("--supernet-epochs", type=int, default=8)
    p.add_argument("--supernet-batch-size", type=int, default=128)
    p.add_argument("--random-subnets", type=int, default=2)
    p.add_argument("--calibration-rows", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "supernet_rank.json")
    p.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "supernet_rank",
                   help="scratch directory: the supernet's checkpoint and saved directory")
    args = p.parse_args()
    torch.set_num_threads(1)

    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in ("out", "work")}
    settings["data"] = Path(args.data).name
    supernet_keys = ("supernet_epochs", "supernet_batch_size", "random_subnets", "calibration_rows")
    reference = {k: v for k, v in settings.items() if k not in supernet_keys}
    result: dict[str, Any] = {}
    if args.out.exists():  # resume: keep what was measured with the same settings
        old = json.loads(args.out.read_text())
        same_reference = {k: v for k, v in old.get("settings", {}).items() if k not in supernet_keys} == reference
        if same_reference:
            result = old
            if old.get("settings") != settings:  # another supernet: its scores go, the stand-alone results stay
                result.pop("supernet", None)
                result.pop("summary", None)
                for rec in result.get("archs", {}).values():
                    rec.pop("supernet_acc", None)
                    rec.pop("supernet_seconds", None)
    result["settings"] = settings
    work = args.work / "sn_e{supernet_epochs}_b{supernet_batch_size}_r{random_subnets}".format(**settings)
    result["command"] = " ".join(["python", *sys.argv])
    result["machine"] = {"cpus": os.cpu_count(), "torch_threads": 1, "python": platform.python_version(),
                         "torch": torch.__version__, "load_average_at_start": os.getloadavg()}

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")

    data = load_split(args.data, args.fraction, args.val_rows, args.seed)
    space = create_space("blocks", **SPACE)
    assert isinstance(space, BlocksSpace)
    result["space"] = space_options(space)
    result["data"] = {"name": data.name, "train": len(data.x_train), "val": len(data.x_val)}
    archs = pick_archs(space, args.archs, args.seed)
    result.setdefault("archs", {g: {"macs": macs(space.decode(space.parse(g)))} for g in archs})
    save()

    # --- 1. the supernet ---------------------------------------------------------------------------------
    recipe_sn = Recipe(epochs=args.supernet_epochs, batch_size=args.supernet_batch_size, optimizer="adamw", threads=1)
    saved = work / "supernet"
    if "supernet" not in result or not (saved / "supernet.pt").exists():
        torch.manual_seed(args.seed)
        net = Supernet(space)
        t0 = time.perf_counter()
        fitted = train_supernet(net, data, recipe_sn, seed=args.seed, random_subnets=args.random_subnets,
                                checkpoint=work / "supernet.ckpt", checkpoint_every_s=30.0)
        train_s = time.perf_counter() - t0  # this process's share (a resumed run counts from the checkpoint)
        save_supernet(saved, net, data={"name": data.name, "input_shape": list(data.input_shape)},
                      training={"recipe": recipe_sn.math(), "seed": args.seed, "random_subnets": args.random_subnets})
        result["supernet"] = {"train_seconds": round(fitted.history[-1].seconds if fitted.history else train_s, 1),
                              "curve": [[h.epoch, round(h.train_loss, 4), h.val_acc] for h in fitted.history],
                              "largest": str(net.largest()), "smallest": str(net.smallest())}
        save()
    net, _ = load_supernet(saved)

    # --- 2. supernet scores ----------------------------------------------------------------------------
    scorer = SupernetScorer(net, data, config=ScoreConfig(calibration_rows=args.calibration_rows, seed=args.seed))
    for g in archs:
        rec = result["archs"][g]
        if "supernet_acc" not in rec:
            t0 = time.perf_counter()
            rec["supernet_acc"] = scorer.score(g)
            rec["supernet_seconds"] = round(time.perf_counter() - t0, 3)
    save()

    # --- 3. stand-alone training (the reference) ------------------------------------------------------
    recipe = Recipe(epochs=args.epochs, batch_size=128, optimizer="adamw", threads=1)
    for i, g in enumerate(archs):
        rec = result["archs"][g]
        if "standalone_acc" in rec:
            continue
        model = build_model(space.decode(space.parse(g)), seed=args.seed)
        t0 = time.perf_counter()
        fitted = train(model, fit_data_to_ir(model.ir, data), recipe, seed=args.seed)
        rec["standalone_acc"] = fitted.history[-1].val_acc
        rec["standalone_seconds"] = round(time.perf_counter() - t0, 2)
        print(f"[{i + 1}/{len(archs)}] {g}  macs={rec['macs']}  supernet={rec['supernet_acc']:.4f}  "
              f"standalone={rec['standalone_acc']:.4f}  {rec['standalone_seconds']}s", flush=True)
        save()

    # --- 4. summary -------------------------------------------------------------------------------------
    recs = [result["archs"][g] for g in archs]
    sn = [r["supernet_acc"] for r in recs]
    sa = [r["standalone_acc"] for r in recs]
    mc = [r["macs"] for r in recs]
    sn_s = float(np.mean([r["supernet_seconds"] for r in recs]))
    sa_s = float(np.mean([r["standalone_seconds"] for r in recs]))
    train_s = result["supernet"]["train_seconds"]
    result["summary"] = {
        "archs": len(recs),
        "kendall_tau_supernet": round(float(kendalltau(sn, sa).statistic), 4),
        "spearman_supernet": round(float(spearmanr(sn, sa).statistic), 4),
        "kendall_tau_macs": round(float(kendalltau(mc, sa).statistic), 4),
        "standalone_acc_range": [min(sa), max(sa)],
        "supernet_acc_range": [min(sn), max(sn)],
        "seconds_per_candidate_supernet_scoring": round(sn_s, 3),
        "seconds_per_candidate_standalone": round(sa_s, 2),
        "supernet_training_seconds": train_s,
        "seconds_per_candidate_supernet_incl_training": round(sn_s + train_s / len(recs), 2),
        "load_average_at_end": os.getloadavg(),
    }
    save()
    s = result["summary"]
    print(f"Kendall tau supernet vs stand-alone: {s['kendall_tau_supernet']} (MACs: {s['kendall_tau_macs']}); "
          f"cost per candidate {s['seconds_per_candidate_supernet_scoring']} s vs "
          f"{s['seconds_per_candidate_standalone']} s; supernet training {train_s} s")


if __name__ == "__main__":
    main()
