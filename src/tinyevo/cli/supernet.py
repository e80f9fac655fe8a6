"""``tinyevo supernet train|score``: train a weight-sharing supernet of the blocks space once; score genomes with it.

::

    tinyevo supernet train --data fashion_mnist.npz --resolution 20,24,28 --width 0.5,0.75,1.0 --epochs 10 --out sn/
    tinyevo supernet train --data d.npz --tinynas --device nrf52840 --sram 64KB --flash 256KB --epochs 10 --out sn/
    tinyevo supernet score sn/ --data fashion_mnist.npz r24_w1.0-mb_d2_k3_e3_c16-...

Training is checkpointed in ``DIR/checkpoint.pt``: the same command after a kill resumes it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from tinyevo.cli.devices import add_device_options, limits_from_args
from tinyevo.cli._argtypes import floats as _floats
from tinyevo.cli._argtypes import ints as _ints
from tinyevo.errors import ConfigError


def _channels(text: str) -> tuple[tuple[int, ...], ...]:
    return tuple(_ints(stage) for stage in text.split("/") if stage.strip())


def _strs(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("supernet", help="train a weight-sharing supernet once; score genomes with it",
                              description="One-shot weight-sharing supernet of the blocks space (docs/supernet.md).")
    sub = p.add_subparsers(dest="supernet_command", metavar="ACTION", required=True)

    t = sub.add_parser("train", help="train a supernet (sandwich rule, in-place distillation)",
                       description="Train the supernet of a blocks (sub-)space on a data set and save it to "
                                   "--out (supernet.json + supernet.pt). Re-running the same command after a kill "
                                   "resumes from DIR/checkpoint.pt.")
    t.add_argument("--space", default="blocks", help="search space (only 'blocks' has a supernet)")
    t.add_argument("--data", required=True, metavar="PATH", help="data set (as for `tinyevo search --data`)")
    t.add_argument("--out", required=True, metavar="DIR", help="directory the trained supernet is written to")
    t.add_argument("--width", type=_floats, metavar="W,W,...",
                   help="width multipliers (default: the blocks space's 0.3,...,1.0)")
    t.add_argument("--resolution", type=_ints, metavar="R,R,...",
                   help="input resolutions (default: the data's own)")
    t.add_argument("--block-types", type=_strs, default=("mb", "res", "conv"), metavar="T,T,...",
                   help="block types (mb, res, conv; default all three)")
    t.add_argument("--depths", type=_ints, metavar="D,D,...", help="blocks per stage choices (default 1,2,3,4)")
    t.add_argument("--kernels", type=_ints, metavar="K,K,...", help="kernel sizes (default 3,5,7)")
    t.add_argument("--expands", type=_ints, metavar="E,E,...", help="MBConv expansion ratios (default 1,3,4,6)")
    t.add_argument("--stage-strides", type=_ints, metavar="S,S,...",
                   help="the skeleton: one stride per stage (default 1,2,2,2,1,2)")
    t.add_argument("--stage-channels", type=_channels, metavar="C,C/C,C/...",
                   help="base width choices of each stage, stages separated by '/' (default "
                        "8,16/16,24/24,32,40/48,64,80/80,96,112/128,160,192)")
    t.add_argument("--stem-channels", type=int, metavar="C", help="base width of the stem (default 16)")
    t.add_argument("--tinynas", action="store_true",
                   help="choose the (width, resolution) sub-space for --device / limits first (TinyNAS stage 1; "
                        "--width / --resolution, when given, are the grid it scans)")
    t.add_argument("--tinynas-samples", type=int, default=100, metavar="N",
                   help="architectures sampled per sub-space with --tinynas (default 100)")
    add_device_options(t)
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--lr", type=float, help="learning rate (default: the optimiser's, AdamW 0.01)")
    t.add_argument("--random-subnets", type=int, default=4, metavar="N",
                   help="random sub-networks per step besides the largest and smallest (default 4; measured better than 2 in benchmarks/supernet_rank.py)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--val-fraction", type=float, default=0.1)
    t.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default: all usable CPUs)")
    t.add_argument("--torch-device", default="cpu", metavar="DEV", help="cpu, cuda, cuda:N or auto")
    t.add_argument("--quiet", "-q", action="store_true", help="no progress messages")
    t.set_defaults(func=run_train)

    s = sub.add_parser("score", help="score genomes with a trained supernet (validation accuracy)",
                       description="Validation accuracy of genomes with the weights they inherit from a trained "
                                   "supernet (BatchNorm recalibrated on 500 training images).")
    s.add_argument("directory", metavar="DIR", help="a trained supernet (tinyevo supernet train --out DIR)")
    s.add_argument("genomes", nargs="*", metavar="GENOME", help="genome strings (default: --sample random ones)")
    s.add_argument("--data", required=True, metavar="PATH")
    s.add_argument("--sample", type=int, default=0, metavar="N", help="also score N random genomes of its space")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--val-fraction", type=float, default=0.1)
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=run_score)


def _space(args: argparse.Namespace, data_shape: tuple[int, int, int], num_classes: int):  # type: ignore[no-untyped-def]
    from tinyevo.spaces import create_space

    if args.space != "blocks":
        raise ConfigError(f"only the 'blocks' space has a supernet, not {args.space!r} (see docs/supernet.md)")
    skeleton: dict[str, object] = {"input_shape": data_shape, "num_classes": num_classes,
                                   "block_types": args.block_types}
    for name in ("depths", "kernels", "expands", "stage_strides", "stage_channels", "stem_channels"):
        if getattr(args, name) is not None:
            skeleton[name] = getattr(args, name)
    widths, resolutions = args.width, args.resolution
    choice = None
    if args.tinynas:  # --width / --resolution, when given, are the grid TinyNAS scans
        from tinyevo.cost import MCUCostModel
        from tinyevo.tinynas import DEFAULT_RESOLUTIONS, DEFAULT_WIDTHS, optimize_space

        limits = limits_from_args(args)
        if limits.is_empty():
            raise ConfigError("--tinynas needs --device and/or limits (--sram, --flash, ...)")

        def cell(w: float, r: int):  # type: ignore[no-untyped-def]
            return create_space("blocks", **{**skeleton, "width_multipliers": (w,), "resolutions": (r,)})

        result = optimize_space(
            limits, factory=cell, width_multipliers=widths or DEFAULT_WIDTHS,
            resolutions=resolutions or DEFAULT_RESOLUTIONS, samples=args.tinynas_samples, seed=args.seed,
            cost_model=MCUCostModel(device=limits.device))
        widths, resolutions = (result.best.width_multiplier,), (result.best.resolution,)
        choice = {"width_multiplier": result.best.width_multiplier, "resolution": result.best.resolution,
                  "limits": limits.bounds(), "device": limits.device.name if limits.device else None}
    if resolutions is None:
        if data_shape[1] != data_shape[2]:
            raise ConfigError(f"the data's images are {data_shape[1]}x{data_shape[2]}; give --resolution")
        resolutions = (data_shape[1],)
    options = {**skeleton, "resolutions": resolutions}
    if widths is not None:
        options["width_multipliers"] = widths
    return create_space("blocks", **options), choice  # type: ignore[arg-type]


def run_train(args: argparse.Namespace) -> int:
    from tinyevo.data import load_dataset
    from tinyevo.supernet import Supernet, save_supernet, train_supernet
    from tinyevo.training import BaseCallback, EpochRecord, Recipe, TrainState, available_cpus

    data = load_dataset(args.data, seed=args.seed, val_fraction=args.val_fraction)
    space, choice = _space(args, data.input_shape, data.num_classes)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    recipe = Recipe(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, device=args.torch_device,
                    threads=args.threads if args.threads is not None else available_cpus())

    class Progress(BaseCallback):
        def on_evaluate(self, state: TrainState, record: EpochRecord) -> None:
            if not args.quiet:
                print(f"epoch {record.epoch:g}/{state.planned}: loss {record.train_loss:.4f}, largest sub-network "
                      f"val_acc {record.val_acc:.4f} (running BN), {record.seconds:.0f} s", file=sys.stderr,
                      flush=True)

    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        net = Supernet(space)
    if not args.quiet:
        n = sum(p.numel() for p in net.parameters())
        print(f"supernet of {space.name}: {n:,} parameters; largest {net.largest()}; smallest {net.smallest()}",
              file=sys.stderr)
    t0 = time.perf_counter()
    fitted = train_supernet(net, data, recipe, seed=args.seed, random_subnets=args.random_subnets,
                            checkpoint=out / "checkpoint.pt", callbacks=[Progress()])
    training = {"recipe": recipe.math(), "seed": args.seed, "random_subnets": args.random_subnets,
                "seconds": round(fitted.history[-1].seconds if fitted.history else time.perf_counter() - t0, 1),
                "curve": [[h.epoch, h.train_loss, h.val_acc] for h in fitted.history]}
    if choice is not None:
        training["tinynas"] = choice
    meta = {"name": data.name, "path": str(args.data), "input_shape": list(data.input_shape),
            "num_classes": data.num_classes, "val_fraction": args.val_fraction}
    save_supernet(out, net.cpu(), data=meta, training=training)
    if not args.quiet:
        print(f"supernet written to {out} (supernet.json, supernet.pt)", file=sys.stderr)
    return 0


def run_score(args: argparse.Namespace) -> int:
    import numpy as np

    from tinyevo.data import load_dataset
    from tinyevo.supernet import SupernetScorer, load_supernet

    net, _ = load_supernet(args.directory)
    data = load_dataset(args.data, seed=args.seed, val_fraction=args.val_fraction)
    scorer = SupernetScorer(net, data)
    genomes = [net.genome(g) for g in args.genomes]
    rng = np.random.default_rng(args.seed)
    genomes += [net.space.sample(rng) for _ in range(args.sample)]
    if not genomes:
        raise ConfigError("give genome strings or --sample N")
    rows = []
    for g in genomes:
        t0 = time.perf_counter()
        acc = scorer.score(g)
        rows.append({"genome": str(g), "val_acc": acc, "seconds": round(time.perf_counter() - t0, 3)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"supernet {args.directory} on {data.name} (validation, {len(data.x_val)} images)")
    for col in ("genome", "val_acc", "seconds"):
        table.add_column(col, justify="left" if col == "genome" else "right")
    for r in rows:
        table.add_row(r["genome"], f"{r['val_acc']:.4f}", f"{r['seconds']:.2f}")
    Console().print(table)
    return 0 if all(math.isfinite(r["val_acc"]) for r in rows) else 1
