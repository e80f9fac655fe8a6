"""Training speed of tinyevo's trainer: seconds per epoch of one chain-space network on CIFAR-10, on the CPU or
a GPU, with 1 or several models trained at once (one process each, as `tinyevo retrain --workers N` does).

Prints a table and writes ``benchmarks/out/train_speed_<device>.json``. Needs ``../shared/data/cifar10-jpg.tar.gz``
(or ``--data``)::

    python benchmarks/train_speed.py --device cpu --procs 1 --epochs 1
    python benchmarks/train_speed.py --device cpu --threads 2 --channels-last on,off --epochs 2 --genome GENOME
    python benchmarks/train_speed.py --device cuda --procs 1,8 --epochs 3     # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
DEFAULT_GENOME = "conv_k3_s1_c16-conv_k3_s1_c16_r-conv_k3_s2_c32-conv_k3_s1_c32_r-conv_k3_s2_c48-conv_k3_s1_c48_r-gap"


def _train(job: tuple[str, str, str, int, int, int, int, bool | None]) -> dict[str, float]:
    data_spec, genome, device, epochs, batch_size, seed, threads, channels_last = job
    from tinyevo.estimators import TrainConfig, train_model
    from tinyevo.run.assembly import cached_dataset
    from tinyevo.spaces import create_space

    data = cached_dataset(data_spec, 0, 0.1)
    space = create_space("chain", input_shape=data.input_shape, num_classes=data.num_classes)
    ir = space.decode(space.parse(genome))
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, optimizer="sgd", lr=0.1, augment=("shift", "flip"),
                      shift_pixels=4, device=device, threads=threads, channels_last=channels_last)
    res = train_model(ir, data, config=cfg, seed=seed)
    secs = [b.seconds - a.seconds for a, b in zip(res.history, res.history[1:], strict=False)]
    return {"epoch_s": statistics.median(secs) if secs else res.history[-1].seconds,
            "first_epoch_s": res.history[0].seconds, "val_acc": res.metrics["val_acc"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT / ".." / "shared" / "data" / "cifar10-jpg.tar.gz"))
    p.add_argument("--genome", default=DEFAULT_GENOME, help="chain-space genome")
    p.add_argument("--device", default="cpu")
    p.add_argument("--procs", default="1", help="comma-separated numbers of models trained at once")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per model")
    p.add_argument("--channels-last", default="auto",
                   help="comma-separated: on, off or auto (the trainer's default: on for the CPU)")
    p.add_argument("--out", type=Path, default=None, help="JSON file (default benchmarks/out/train_speed_DEV.json)")
    args = p.parse_args()
    from tinyevo.run.assembly import cached_dataset

    t0 = time.perf_counter()
    cached_dataset(args.data, 0, 0.1)  # decode once, so the workers read the on-disk cache
    load_s = time.perf_counter() - t0
    rows = []
    ctx = mp.get_context("spawn")
    layouts = {"on": True, "off": False, "auto": None}
    variants = [(int(n), layout) for layout in args.channels_last.split(",") for n in args.procs.split(",")]
    for n, layout in variants:
        if layout not in layouts:
            p.error(f"--channels-last: expected on, off or auto, got {layout!r}")
        jobs = [(args.data, args.genome, args.device, args.epochs, args.batch_size, i, args.threads, layouts[layout])
                for i in range(n)]
        start = time.perf_counter()
        with ctx.Pool(n) as pool:
            res = pool.map(_train, jobs)
        wall = time.perf_counter() - start
        epoch_s = statistics.mean(r["epoch_s"] for r in res)
        rows.append({"models_at_once": n, "channels_last": layout, "epoch_s": epoch_s, "model_epochs_per_min": 60.0 * n / epoch_s,
                     "first_epoch_s": statistics.mean(r["first_epoch_s"] for r in res), "wall_s": wall,
                     "val_acc": statistics.mean(r["val_acc"] for r in res)})
        print(f"{n} model(s) at once on {args.device} (channels_last {layout}): {epoch_s:.2f} s/epoch each, "
              f"{rows[-1]['model_epochs_per_min']:.1f} model-epochs/min (wall {wall:.0f} s)", flush=True)
    import torch

    doc = {"device": args.device, "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
           "torch": torch.__version__, "genome": args.genome, "epochs": args.epochs, "batch_size": args.batch_size,
           "threads": args.threads,
           "data_load_s": load_s, "rows": rows}
    out = args.out or OUT / f"train_speed_{args.device.replace(':', '')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
