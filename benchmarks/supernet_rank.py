"""Rank correlation (Kendall tau) of supernet-inherited validation accuracy against stand-alone training.

Data: Fashion-MNIST (``../shared/data/fashion_mnist.npz``), a stratified ``--fraction`` (default 10 %: 5,400
images) of the training split, ``--val-rows`` (default 2,000) seeded random rows of the validation split (a seeded
stratified 10 % of the official training set), inputs resampled to each genome's resolution.

Space: a small MCUNet-style ``blocks`` sub-space for 28x28 one-channel images: MBConv stages only, resolutions
16/20/24, width multipliers 0.5/0.75/1.0, per stage depth 1-3, kernel 3/5/7, expansion 1/3/4, four stages
(strides 1, 2, 2, 2; base widths 8-16, 16-24, 24-32, 32-48), stem 8. ``--space wide``: the same but resolutions
12/16/20/24/28 and width multipliers 0.25/0.5/0.75/1.0 (the span of an MCUNet-style search; its own ``--work``
``benchmarks/out/supernet_rank_wide`` and ``--out`` ``benchmarks/results/supernet_rank_wide.json``).

Architectures: ``--archs`` (default 30) distinct genomes spread over the size range: 2,000 random genomes sorted
by MACs, one taken at each of ``--archs`` evenly spaced quantiles.

* **Supernet**: trained once with the sandwich rule (largest + smallest + ``--random-subnets`` (default 4) random
  sub-networks per step, in-place distillation) for ``--supernet-epochs`` (10) epochs, AdamW (``--supernet-lr``
  0.003, ``--supernet-warmup`` 1 epoch of warm-up, cosine), batch ``--supernet-batch-size`` (32), seed 0, one torch
  thread (``--shrinking ofa``: progressive shrinking);
  checkpointed (a killed benchmark resumes). Each candidate is then scored by
  :class:`~tinyevo.supernet.score.SupernetScorer` with the default :class:`~tinyevo.supernet.score.ScoreConfig` (what
  ``tinyevo search --supernet`` uses; ``--calibration-rows`` / ``--validation-rows`` override it).
* **Stand-alone** (the reference): each architecture trained from scratch with the same recipe for all,
  ``--epochs`` (default 3) epochs, AdamW lr 0.01 (cosine), batch 128, one torch thread, once per training seed of
  ``--reference-seeds`` (default 0,1,2,3); the reference is the mean validation accuracy over the seeds, and the Kendall
  tau between the seeds is the reference's own noise (no proxy can agree with one seed better than another seed
  of the same training does, on average).

Reported: Kendall tau (and Spearman rho) of supernet score vs the reference, and vs each seed; tau between the
reference seeds; the same for MACs (a free baseline); the cost per candidate of both (seconds; the supernet's training
time also amortised over the candidates); a ``variants`` table of every supernet trained in ``--work`` (other
epochs, batch sizes, learning rates, ...) against the same reference. Everything is cached under ``--work``:
stand-alone results per training seed and genome, each supernet (checkpoint, weights, ``meta.json``) and its scores
per scorer configuration; a rerun computes only what is missing. ``--stage reference`` / ``--stage supernet`` run
one half (two processes can share the work directory); ``--stage summary`` trains nothing and writes ``--out``
from the caches (``"partial"`` says what is missing)::

    nice -n 10 python benchmarks/supernet_rank.py                  # writes benchmarks/results/supernet_rank.json
    nice -n 10 python benchmarks/supernet_rank.py --supernet-batch-size 128 --supernet-lr 0.01 --supernet-warmup 0 \
        --out benchmarks/out/supernet_rank_b128.json             # another supernet, the same (cached) reference
    python benchmarks/supernet_rank.py --archs 6 --epochs 1 --supernet-epochs 1 --fraction 0.02 \
        --reference-seeds 0 --work benchmarks/out/supernet_rank_smoke \
        --out benchmarks/out/supernet_rank_smoke.json              # a quick smoke run
    nice -n 5 python benchmarks/supernet_rank.py --space wide --reference-seeds 0,1   # the wide sub-space, 2 seeds
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
from scipy.stats import kendalltau, spearmanr

from tinyevo.data import Dataset, load_dataset, subset
from tinyevo.nn import build_model
from tinyevo.spaces import create_space
from tinyevo.spaces.blocks import BlocksSpace
from tinyevo.supernet import Supernet, macs
from tinyevo.supernet.score import ScoreConfig, SupernetScorer, finetune_data, finetune_recipe
from tinyevo.supernet.store import load_supernet, save_supernet, space_options
from tinyevo.supernet.train import Shrinking, train_supernet
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
#: ``--space``: ``default`` (above) or ``wide``: the same but resolutions 12-28 and widths 0.25-1.0 (what an
#: MCUNet-style search would span; its own work directory and JSON)
SPACES = {"default": SPACE,
          "wide": {**SPACE, "resolutions": (12, 16, 20, 24, 28), "width_multipliers": (0.25, 0.5, 0.75, 1.0)}}


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


def read_json(path: Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.exists() else default


def write_json(path: Path, obj: Any) -> None:
    """Atomically (another process may read the caches while this one writes them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    tmp.replace(path)


def reference_key(args: argparse.Namespace, seed: int) -> str:
    """The identity of one stand-alone reference run (data split, recipe, training seed)."""
    return f"{Path(args.data).stem}_f{args.fraction:g}_v{args.val_rows}_split{args.seed}_e{args.epochs}_s{seed}"


def variant_name(args: argparse.Namespace) -> str:
    """The identity of one supernet training (its directory under ``--work``)."""
    name = f"sn_e{args.supernet_epochs}_b{args.supernet_batch_size}_r{args.random_subnets}"
    if args.supernet_lr is not None:
        name += f"_lr{args.supernet_lr:g}"
    if args.supernet_warmup:
        name += f"_w{args.supernet_warmup:g}"
    if args.supernet_fraction is not None and args.supernet_fraction != args.fraction:
        name += f"_f{args.supernet_fraction:g}"
    if args.shrinking != "none":
        name += f"_{args.shrinking}"
    return name


#: Progressive-shrinking schedules of ``--shrinking``: ``ofa``: the largest network alone for the first 20 % of the
#: steps, then resolution and kernel, depth at 40 %, expansion and width at 60 % (Once-for-All's order).
SHRINKING = {"none": None, "ofa": Shrinking((("resolution", 0.2), ("kernel", 0.2), ("depth", 0.4), ("expand", 0.6),
                                             ("width", 0.6)))}


def score_key(args: argparse.Namespace, config: ScoreConfig) -> str:
    """The identity of the scores of one supernet (the validation rows and the scorer's configuration)."""
    skip = {"cache_size"} | ({"finetune_steps", "finetune_lr", "finetune_batch_size"} if not config.finetune_steps
                             else set())  # (the keys of scores without fine-tuning stay what they were)
    fields = "_".join(f"{k}={v}" for k, v in sorted(asdict(config).items()) if k not in skip)
    return f"{Path(args.data).stem}_f{args.fraction:g}_v{args.val_rows}_split{args.seed}_{fields}"


def run_standalone(space: BlocksSpace, data: Dataset, archs: list[str], args: argparse.Namespace,
                   seed: int) -> dict[str, dict[str, float]]:
    """Stand-alone training of every architecture with training seed ``seed`` (cached per genome)."""
    path = args.work / f"standalone_{reference_key(args, seed)}.json"
    cache: dict[str, dict[str, float]] = read_json(path, {})
    recipe = Recipe(epochs=args.epochs, batch_size=128, optimizer="adamw", threads=1)
    for i, g in enumerate(archs):
        if g in cache:
            continue
        model = build_model(space.decode(space.parse(g)), seed=seed)
        t0, c0 = time.perf_counter(), time.process_time()
        fitted = train(model, fit_data_to_ir(model.ir, data), recipe, seed=seed)
        cache[g] = {"acc": fitted.history[-1].val_acc, "seconds": round(time.perf_counter() - t0, 2),
                    "cpu_seconds": round(time.process_time() - c0, 2)}
        write_json(path, cache)
        print(f"[seed {seed} {i + 1}/{len(archs)}] {g}  acc={cache[g]['acc']:.4f}  {cache[g]['seconds']} s",
              flush=True)
    return cache


def run_supernet(space: BlocksSpace, data: Dataset, args: argparse.Namespace, vdir: Path) -> dict[str, Any]:
    """Train (or resume, or reuse) the supernet of this variant; returns its description (``meta.json``)."""
    meta_path, saved = vdir / "meta.json", vdir / "supernet"
    meta = read_json(meta_path, None)
    if meta is not None and (saved / "supernet.pt").exists():
        return meta
    recipe = Recipe(epochs=args.supernet_epochs, batch_size=args.supernet_batch_size, optimizer="adamw", threads=1,
                    lr=args.supernet_lr, warmup_epochs=args.supernet_warmup)
    torch.manual_seed(args.seed)
    net = Supernet(space)
    t0, c0 = time.perf_counter(), time.process_time()
    fitted = train_supernet(net, data, recipe, seed=args.seed, random_subnets=args.random_subnets,
                            checkpoint=vdir / "supernet.ckpt", checkpoint_every_s=30.0,
                            shrinking=SHRINKING[args.shrinking])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    training = {"recipe": recipe.math(), "seed": args.seed, "random_subnets": args.random_subnets,
                "shrinking": args.shrinking, "train_rows": len(data.x_train)}
    save_supernet(saved, net, data={"name": data.name, "input_shape": list(data.input_shape)}, training=training)
    meta = {**training,
            # the loop's own clock (it adds up over a resumed training); this process's wall and CPU time
            "train_seconds": round(fitted.history[-1].seconds if fitted.history else wall, 1),
            "process_wall_seconds": round(wall, 1), "process_cpu_seconds": round(cpu, 1),
            "load_average_at_end": os.getloadavg(),
            "curve": [[h.epoch, round(h.train_loss, 4), h.val_acc] for h in fitted.history],
            "largest": str(net.largest()), "smallest": str(net.smallest())}
    write_json(meta_path, meta)
    return meta


def run_scores(data: Dataset, archs: list[str], args: argparse.Namespace, vdir: Path,
               config: ScoreConfig) -> dict[str, dict[str, float]]:
    """Supernet scores of every architecture (cached per supernet and scorer configuration)."""
    path = vdir / "scores.json"
    cache = read_json(path, {})
    key = score_key(args, config)
    scores = cache.setdefault(key, {})
    if all(g in scores for g in archs):
        return scores
    net, _ = load_supernet(vdir / "supernet")
    scorer = SupernetScorer(net, data, config=config)
    for i, g in enumerate(archs):
        if g not in scores:
            t0, c0 = time.perf_counter(), time.process_time()
            acc = scorer.score(g)
            scores[g] = {"acc": acc, "seconds": round(time.perf_counter() - t0, 3),
                         "cpu_seconds": round(time.process_time() - c0, 3)}
            if config.finetune_steps:  # seconds each: save as it goes, say where it is
                write_json(path, cache)
                print(f"[scored {i + 1}/{len(archs)}, {config.finetune_steps} fine-tuning steps] {g}  "
                      f"acc={acc:.4f}  {scores[g]['seconds']} s", flush=True)
    write_json(path, cache)
    return scores


def run_scratch_control(space: BlocksSpace, data: Dataset, archs: list[str], args: argparse.Namespace,
                        config: ScoreConfig) -> dict[str, dict[str, float]]:
    """The control of fine-tuned scores: every architecture trained from scratch (the scorer's seed) for the same
    steps on the
    same rows as the scorer's fine-tuning, with the reference's learning rate (0.01), scored on the same
    validation rows (cached per genome)."""
    path = args.work / f"scratch_{score_key(args, config)}.json"
    cache: dict[str, dict[str, float]] = read_json(path, {})
    ft_data = finetune_data(data, config)
    recipe = replace(finetune_recipe(config, len(ft_data.x_train)), lr=0.01)
    for i, g in enumerate(archs):
        if g in cache:
            continue
        model = build_model(space.decode(space.parse(g)), seed=config.seed)
        t0, c0 = time.perf_counter(), time.process_time()
        fitted = train(model, fit_data_to_ir(model.ir, ft_data), recipe, seed=config.seed)
        cache[g] = {"acc": fitted.history[-1].val_acc, "seconds": round(time.perf_counter() - t0, 3),
                    "cpu_seconds": round(time.process_time() - c0, 3)}
        write_json(path, cache)
        print(f"[scratch {i + 1}/{len(archs)}] {g}  acc={cache[g]['acc']:.4f}", flush=True)
    return cache


def gene_features(space: BlocksSpace, archs: list[str]) -> dict[str, list[float]]:
    """Per architecture: its resolution, width multiplier, total depth, mean kernel, mean expansion ratio, the
    number of stages without expansion (``e1``), the total stage channels and log MACs."""
    out: dict[str, list[float]] = {k: [] for k in ("resolution", "width", "depth", "kernel", "expand",
                                                   "stages_e1", "channels", "log_macs")}
    for g in archs:
        genome = space.parse(g)
        st = genome.stages
        ex = [s.expand if s.expand is not None else 1 for s in st]
        for key, value in (("resolution", genome.resolution), ("width", genome.width),
                           ("depth", sum(s.depth for s in st)), ("kernel", float(np.mean([s.kernel for s in st]))),
                           ("expand", float(np.mean(ex))), ("stages_e1", sum(e == 1 for e in ex)),
                           ("channels", sum(s.channels for s in st)),
                           ("log_macs", float(np.log(macs(space.decode(genome)))))):
            out[key].append(float(value))
    return out


def per_seed_scores(args: argparse.Namespace, vdir: Path, archs: list[str], ref: list[float],
                    configs: list[ScoreConfig]) -> dict[str, Any]:
    """Kendall tau of the supernet's scores (and of the scratch control, where run) against ``ref`` for each
    scorer configuration (one per scorer seed), with means and CPU seconds per candidate."""
    out: dict[str, Any] = {}
    for cfg in configs:
        key = score_key(args, cfg)
        sc = read_json(vdir / "scores.json", {}).get(key, {})
        scratch = read_json(args.work / f"scratch_{key}.json", {}) if cfg.finetune_steps else {}
        row: dict[str, Any] = {}
        if all(g in sc for g in archs):
            row["kendall_tau_supernet"] = tau([sc[g]["acc"] for g in archs], ref)
            row["cpu_seconds_per_candidate"] = round(float(np.mean([sc[g]["cpu_seconds"] for g in archs])), 3)
        if scratch and all(g in scratch for g in archs):
            row["kendall_tau_scratch_same_steps"] = tau([scratch[g]["acc"] for g in archs], ref)
            row["cpu_seconds_per_candidate_scratch"] = round(
                float(np.mean([scratch[g]["cpu_seconds"] for g in archs])), 3)
        out[str(cfg.seed)] = row
    rows = list(out.values())
    every = [read_json(vdir / "scores.json", {}).get(score_key(args, cfg), {}) for cfg in configs]
    if len(every) > 1 and all(all(g in sc for g in archs) for sc in every):  # one score: the mean over the seeds
        out["kendall_tau_supernet_of_the_mean_score"] = tau(
            [float(np.mean([sc[g]["acc"] for sc in every])) for g in archs], ref)
    for name in ("kendall_tau_supernet", "kendall_tau_scratch_same_steps"):
        values = [r[name] for r in rows if name in r]
        if values:
            out[f"mean_{name}"] = round(float(np.mean(values)), 4)
            out[f"range_{name}"] = [min(values), max(values)]
    return out


def tau(a: list[float], b: list[float]) -> float:
    return round(float(kendalltau(a, b).statistic), 4)


def rho(a: list[float], b: list[float]) -> float:
    return round(float(spearmanr(a, b).statistic), 4)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=shared_dir() / "data" / "fashion_mnist.npz")
    p.add_argument("--fraction", type=float, default=0.1, help="fraction of the training split used")
    p.add_argument("--val-rows", type=int, default=2000)
    p.add_argument("--archs", type=int, default=30)
    p.add_argument("--epochs", type=int, default=3, help="stand-alone training epochs (the reference)")
    p.add_argument("--reference-seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2, 3],
                   help="training seeds of the stand-alone reference (comma list); the reference is their mean")
    p.add_argument("--supernet-epochs", type=int, default=10)
    p.add_argument("--supernet-batch-size", type=int, default=32)
    p.add_argument("--supernet-lr", type=float, default=0.003, help="AdamW learning rate")
    p.add_argument("--supernet-warmup", type=float, default=1.0, help="epochs of linear learning-rate warm-up")
    p.add_argument("--supernet-fraction", type=float, default=None,
                   help="fraction of the training split the supernet trains on (default: --fraction)")
    p.add_argument("--random-subnets", type=int, default=4)
    p.add_argument("--shrinking", choices=tuple(SHRINKING), default="none",
                   help="progressive shrinking schedule of the supernet's training (none: the plain sandwich rule)")
    p.add_argument("--calibration-rows", type=int, default=None,
                   help="BatchNorm calibration rows of the scorer (default: ScoreConfig's, as the search uses)")
    p.add_argument("--validation-rows", type=int, default=None,
                   help="validation rows of the scorer (0: all --val-rows; default: ScoreConfig's)")
    p.add_argument("--finetune-steps", type=int, default=0,
                   help="score each candidate after this many steps of fine-tuning from its inherited weights "
                        "(ScoreConfig.finetune_steps; 0: the inherited weights as they are)")
    p.add_argument("--finetune-lr", type=float, default=None, help="their AdamW learning rate (ScoreConfig's)")
    p.add_argument("--score-seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0],
                   help="scorer seeds (ScoreConfig.seed: calibration, validation and fine-tuning rows, the "
                        "fine-tuning's order; comma list): the first is the summary's, every one is in "
                        "per_score_seed with their mean")
    p.add_argument("--scratch-control", action="store_true",
                   help="with --finetune-steps: also train every architecture from scratch for the same steps on "
                        "the same rows (lr 0.01, the reference's) and rank by that (the control)")
    p.add_argument("--stage", choices=("all", "reference", "supernet", "summary"), default="all",
                   help="run only the stand-alone reference or only the supernet (two processes can share one "
                        "--work directory); 'all' also writes --out; 'summary' trains nothing and writes --out "
                        "from what is cached (marked partial where architectures or the supernet are missing)")
    p.add_argument("--seed", type=int, default=0, help="picks the architectures, the data split and the supernet's "
                                                       "training")
    p.add_argument("--space", choices=tuple(SPACES), default="default",
                   help="the sub-space: default (resolutions 16/20/24, widths 0.5/0.75/1.0) or wide (resolutions "
                        "12/16/20/24/28, widths 0.25/0.5/0.75/1.0); wide changes the defaults of --out and --work")
    p.add_argument("--out", type=Path, default=None,
                   help="default: benchmarks/results/supernet_rank.json (supernet_rank_wide.json for --space wide)")
    p.add_argument("--work", type=Path, default=None,
                   help="scratch directory: stand-alone results, supernets (checkpoints, weights, scores); default "
                        "benchmarks/out/supernet_rank (supernet_rank_wide for --space wide)")
    args = p.parse_args()
    suffix = "" if args.space == "default" else f"_{args.space}"
    if args.out is None:
        args.out = ROOT / "benchmarks" / "results" / f"supernet_rank{suffix}.json"
    if args.work is None:
        args.work = ROOT / "benchmarks" / "out" / f"supernet_rank{suffix}"
    torch.set_num_threads(1)

    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                if k not in ("out", "work", "stage")}
    settings["data"] = Path(args.data).name
    data = load_split(args.data, args.fraction, args.val_rows, args.seed)
    space = create_space("blocks", **SPACES[args.space])
    assert isinstance(space, BlocksSpace)
    archs = pick_archs(space, args.archs, args.seed)
    overrides: dict[str, Any] = {}
    if args.calibration_rows is not None:
        overrides["calibration_rows"] = args.calibration_rows
    if args.validation_rows is not None:
        overrides["validation_rows"] = args.validation_rows or None
    if args.finetune_steps:
        overrides["finetune_steps"] = args.finetune_steps
    if args.finetune_lr is not None:
        overrides["finetune_lr"] = args.finetune_lr
    config = ScoreConfig(**overrides, seed=args.score_seeds[0])
    seeded = [replace(config, seed=s) for s in args.score_seeds]
    vname = variant_name(args)
    vdir = args.work / vname

    if args.stage in ("all", "supernet"):
        sn_data = data
        if args.supernet_fraction is not None and args.supernet_fraction != args.fraction:
            sn_data = load_split(args.data, args.supernet_fraction, args.val_rows, args.seed)
        run_supernet(space, sn_data, args, vdir)
        for cfg in seeded:
            run_scores(data, archs, args, vdir, cfg)
            if args.scratch_control and cfg.finetune_steps:
                run_scratch_control(space, data, archs, args, cfg)
    if args.stage in ("all", "reference"):
        for seed in args.reference_seeds:
            run_standalone(space, data, archs, args, seed)
    if args.stage not in ("all", "summary"):
        return

    # --- the summary: this variant, and every other supernet in --work scored against the same reference ----
    if args.stage == "summary":  # only what is cached: the architectures every reference seed has finished
        refs = {s: read_json(args.work / f"standalone_{reference_key(args, s)}.json", {})
                for s in args.reference_seeds}
    else:
        refs = {s: run_standalone(space, data, archs, args, s) for s in args.reference_seeds}
    all_archs = len(archs)
    archs = [g for g in archs if all(g in refs[s] for s in args.reference_seeds)]
    mc = [macs(space.decode(space.parse(g))) for g in archs]
    ref = [float(np.mean([refs[s][g]["acc"] for s in args.reference_seeds])) for g in archs]
    per_seed = {s: [refs[s][g]["acc"] for g in archs] for s in args.reference_seeds}
    skey = score_key(args, config)

    def judged(d: Path) -> dict[str, Any] | None:
        meta, scores = read_json(d / "meta.json", None), read_json(d / "scores.json", {}).get(skey, {})
        if meta is None or not all(g in scores for g in archs):
            return None
        sn = [scores[g]["acc"] for g in archs]
        return {"kendall_tau": tau(sn, ref), "spearman": rho(sn, ref),
                "kendall_tau_per_reference_seed": {str(s): tau(sn, per_seed[s]) for s in per_seed},
                "supernet_acc_range": [min(sn), max(sn)],
                "train_seconds": meta["train_seconds"], "train_cpu_seconds": meta.get("process_cpu_seconds"),
                "epochs": meta["recipe"]["epochs"], "batch_size": meta["recipe"]["batch_size"],
                "lr": meta["recipe"]["lr"], "warmup_epochs": meta["recipe"]["warmup_epochs"],
                "random_subnets": meta["random_subnets"], "shrinking": meta.get("shrinking", "none"),
                "train_rows": meta.get("train_rows")}

    meta = read_json(vdir / "meta.json", {})
    scores = read_json(vdir / "scores.json", {}).get(skey, {})
    has_sn = bool(meta) and all(g in scores for g in archs)
    sn = [scores[g]["acc"] for g in archs] if has_sn else []

    def if_sn(f: Any) -> Any:  # a supernet number, or None where the supernet is not (yet) trained and scored
        return f() if has_sn else None

    scratch: dict[str, dict[str, float]] = (
        read_json(args.work / f"scratch_{skey}.json", {}) if config.finetune_steps else {})
    seeds = args.reference_seeds
    ceiling = {f"{a}-{b}": tau(per_seed[a], per_seed[b]) for i, a in enumerate(seeds) for b in seeds[i + 1:]}
    sa_s = float(np.mean([refs[s][g]["seconds"] for s in seeds for g in archs]))
    sn_s = float(np.mean([scores[g]["seconds"] for g in archs])) if has_sn else float("nan")
    sa_cpu = [refs[s][g]["cpu_seconds"] for s in seeds for g in archs if "cpu_seconds" in refs[s][g]]
    sn_cpu = [scores[g]["cpu_seconds"] for g in archs if has_sn and "cpu_seconds" in scores[g]]
    result: dict[str, Any] = {
        "command": " ".join(["python", *sys.argv]),
        "settings": settings, "variant": vname, "score_config": asdict(config),
        "machine": {"cpus": os.cpu_count(), "torch_threads": 1, "python": platform.python_version(),
                    "torch": torch.__version__, "load_average_at_end": os.getloadavg()},
        "space": space_options(space),
        "data": {"name": data.name, "train": len(data.x_train), "val": len(data.x_val)},
        "reference": {"recipe": {"epochs": args.epochs, "batch_size": 128, "optimizer": "adamw"},
                      "seeds": seeds, "what": "mean validation accuracy over the training seeds"},
        "partial": None if has_sn and len(archs) == all_archs else {
            "archs_with_every_reference_seed": len(archs), "archs_picked": all_archs,
            "supernet_trained_and_scored": has_sn},
        "summary": {
            "archs": len(archs),
            "kendall_tau_supernet": if_sn(lambda: tau(sn, ref)),
            "spearman_supernet": if_sn(lambda: rho(sn, ref)),
            "kendall_tau_supernet_per_reference_seed": if_sn(lambda: {str(s): tau(sn, per_seed[s]) for s in seeds}),
            "kendall_tau_between_reference_seeds": ceiling,
            "spearman_between_reference_seeds": {f"{a}-{b}": rho(per_seed[a], per_seed[b])
                                                 for i, a in enumerate(seeds) for b in seeds[i + 1:]},
            # the mean of the first half of the seeds vs that of the second: the noise of a half-size reference
            "kendall_tau_between_reference_halves": (
                tau(*[[float(np.mean([per_seed[s][i] for s in half])) for i in range(len(archs))]
                      for half in (seeds[: len(seeds) // 2], seeds[len(seeds) // 2:])])
                if len(seeds) >= 4 else None),
            # one stand-alone training (one seed) as a proxy of the mean of the other seeds: what a perfect
            # imitation of a single training run would score against a reference of len(seeds) - 1 seeds
            "kendall_tau_one_seed_vs_mean_of_the_others": {
                str(s): tau(per_seed[s], [float(np.mean([per_seed[o][i] for o in seeds if o != s]))
                                          for i in range(len(archs))]) for s in seeds} if len(seeds) >= 2 else None,
            "kendall_tau_macs": tau(mc, ref),
            # every scorer seed of --score-seeds (the first is the summary's): tau of the supernet's scores and of
            # the scratch control, and their means over the seeds that have all architectures scored
            "per_score_seed": per_seed_scores(args, vdir, archs, ref, seeded),
            # the control of fine-tuned scores: the same steps on the same rows from scratch (--scratch-control)
            "kendall_tau_scratch_same_steps": (
                tau([scratch[g]["acc"] for g in archs], ref) if all(g in scratch for g in archs) else None),
            "cpu_seconds_per_candidate_scratch_same_steps": (
                round(float(np.mean([scratch[g]["cpu_seconds"] for g in archs])), 3)
                if all(g in scratch for g in archs) else None),
            # what each ranking rewards: Spearman rho of every gene (summed or averaged over the stages) with the
            # reference and with the supernet's scores; a gene the two weigh differently is where they disagree
            "spearman_per_gene": {name: {"reference": rho(values, ref), "supernet": if_sn(lambda v=values: rho(v, sn))}
                                  for name, values in gene_features(space, archs).items()},
            "standalone_acc_range": [min(ref), max(ref)],
            "supernet_acc_range": if_sn(lambda: [min(sn), max(sn)]),
            "seconds_per_candidate_supernet_scoring": if_sn(lambda: round(sn_s, 3)),
            "seconds_per_candidate_standalone_per_seed": round(sa_s, 2),
            # CPU time (one thread) where it was recorded: wall time on a shared machine depends on its load
            "cpu_seconds_per_candidate_supernet_scoring": round(float(np.mean(sn_cpu)), 3) if sn_cpu else None,
            "cpu_seconds_per_candidate_standalone_per_seed": round(float(np.mean(sa_cpu)), 2) if sa_cpu else None,
            "supernet_training_cpu_seconds": meta.get("process_cpu_seconds"),
            "supernet_training_seconds": meta.get("train_seconds"),
            "seconds_per_candidate_supernet_incl_training": if_sn(
                lambda: round(sn_s + meta["train_seconds"] / len(archs), 2)),
        },
        "supernet": meta,
        "variants": {d.name: v for d in sorted(args.work.glob("sn_*")) if (v := judged(d)) is not None},
        "archs": {g: {"macs": m, "standalone_acc": {str(s): refs[s][g]["acc"] for s in seeds},
                      "standalone_mean": r, "supernet_acc": scores[g]["acc"] if has_sn else None}
                  for g, m, r in zip(archs, mc, ref, strict=True)},
    }
    write_json(args.out, result)
    s = result["summary"]
    for name, v in result["variants"].items():
        print(f"{name:40s} tau {v['kendall_tau']:.3f}  spearman {v['spearman']:.3f}  train {v['train_seconds']} s")
    print(f"Kendall tau supernet ({vname}) vs stand-alone (mean of seeds {seeds}): {s['kendall_tau_supernet']} "
          f"(MACs: {s['kendall_tau_macs']}; between reference seeds: {ceiling}); cost per candidate "
          f"{s['seconds_per_candidate_supernet_scoring']} s vs {s['seconds_per_candidate_standalone_per_seed']} s "
          f"per seed; supernet training {meta.get('train_seconds')} s")


if __name__ == "__main__":
    main()
