"""What reading a data set's bytes instead of its float32 arrays costs the training loop (and whether it trains the
same weights).

Loads Fashion-MNIST (``../shared/data/fashion_mnist.npz``) through the data cache (``--cache-dir``: a prepared,
memory-mapped entry with ``bytes_*.npy`` beside the float32 files) and trains a small chain conv net
(``conv_k3_s2_c16-dsc_k3_s2_c32-gap-dense_c32``, the default network of ``benchmarks/memory_rss.py``) for one epoch
with the candidate-training defaults (:func:`tinyevo.training.fit`), 1 torch thread, at each ``--batch-sizes``:

* ``bytes``: the data set as loaded: batches are gathered from the uint8 bytes and converted
  (:class:`tinyevo.training.evaluate.ByteBatches`);
* ``float32``: the same data set without its bytes (``dataclasses.replace``): batches gathered from the float32
  arrays, as before.

Repetitions alternate the order (bytes, float32, float32, bytes, ...) after one untimed epoch of each (the pages
of both files are then in the page cache); medians of wall-clock and process CPU time are compared, and the
weights of the two are compared bit for bit. Also timed: gathering one batch of random rows alone (float32 rows,
bytes + conversion).

    python benchmarks/byte_batches.py --reps 3 --cache-dir /tmp/cache

Writes ``benchmarks/results/byte_batches.json`` (``--out``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fashion_mnist.npz"
GENOME = "conv_k3_s2_c16-dsc_k3_s2_c32-gap-dense_c32"


def _epoch(data: object, batch_size: int) -> tuple[float, float, dict[str, torch.Tensor]]:
    from tinyevo.nn import build_model
    from tinyevo.spaces import create_space
    from tinyevo.training import TrainConfig, fit

    space = create_space("chain", input_shape=data.input_shape, num_classes=data.num_classes)  # type: ignore[attr-defined]
    model = build_model(space.decode(space.parse(GENOME)), seed=0)
    t, c = time.perf_counter(), time.process_time()
    fit(model, data, config=TrainConfig(epochs=1, batch_size=batch_size), seed=0)  # type: ignore[arg-type]
    return time.perf_counter() - t, time.process_time() - c, model.state_dict()


def _gather_ms(data: object, batch_size: int, reps: int = 200) -> dict[str, float]:
    from tinyevo.training.evaluate import ByteBatches, to_tensor

    x = to_tensor(data.x_train)  # type: ignore[attr-defined]
    b = ByteBatches(data.inputs("train"), torch.device("cpu"))  # type: ignore[attr-defined]
    rng = np.random.default_rng(0)
    idx = [torch.from_numpy(rng.permutation(len(x))[:batch_size]) for _ in range(reps)]
    out: dict[str, float] = {}
    for name, source in (("float32_gather_ms", x), ("bytes_gather_convert_ms", b),
                         ("float32_gather_ms_again", x), ("bytes_gather_convert_ms_again", b)):
        t = time.perf_counter()
        for i in idx:
            source[i]
        out[name] = (time.perf_counter() - t) / reps * 1e3
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--batch-sizes", default="64,1024")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--cache-dir", default=None, help="TINYEVO_CACHE_DIR (default: as set)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "byte_batches.json"))
    args = ap.parse_args()
    if args.cache_dir:
        os.environ["TINYEVO_CACHE_DIR"] = args.cache_dir
    torch.set_num_threads(1)
    from tinyevo.data import load_dataset
    from tinyevo.training.evaluate import ByteBatches

    data = load_dataset(args.data, seed=0)
    if data.byte_inputs is None:
        raise SystemExit(f"{args.data} has no bytes (not uint8, or too small to be prepared in the cache)")
    floats = replace(data)  # the same arrays, no bytes
    variants = {"bytes": data, "float32": floats}
    rows = []
    for bs in (int(v) for v in args.batch_sizes.split(",")):
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}
        weights = {k: _epoch(d, bs)[2] for k, d in variants.items()}  # untimed: warm-up, page cache
        same = all(torch.equal(p, q) for p, q in zip(weights["bytes"].values(), weights["float32"].values(),
                                                       strict=True))
        for rep in range(args.reps):
            order = list(variants) if rep % 2 == 0 else list(variants)[::-1]
            for k in order:
                wall, cpu, _ = _epoch(variants[k], bs)
                times[k].append((wall, cpu))
        med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in times.items()}
        row = {
            "batch_size": bs,
            "bytes_epoch_s": med["bytes"][0], "float32_epoch_s": med["float32"][0],
            "ratio_wall": med["bytes"][0] / med["float32"][0],
            "bytes_epoch_cpu_s": med["bytes"][1], "float32_epoch_cpu_s": med["float32"][1],
            "ratio_cpu": med["bytes"][1] / med["float32"][1],
            "runs": {k: [[round(w, 3), round(c, 3)] for w, c in v] for k, v in times.items()},
            "same_weights_bit_for_bit": same,
            **_gather_ms(data, bs),
        }
        rows.append(row)
        print(f"batch {bs:5d}: bytes {row['bytes_epoch_s']:.2f} s / float32 {row['float32_epoch_s']:.2f} s "
              f"(x{row['ratio_wall']:.3f} wall, x{row['ratio_cpu']:.3f} CPU); gather one batch: "
              f"float32 {row['float32_gather_ms']:.2f} ms, bytes + convert {row['bytes_gather_convert_ms']:.2f} ms; "
              f"same weights: {same}", flush=True)
    result = {
        "command": "python benchmarks/byte_batches.py " + " ".join(sys.argv[1:]),
        "data": Path(args.data).name, "genome": GENOME, "train_samples": len(data.x_train), "threads": 1,
        "exact_arithmetic": ByteBatches(data.inputs("val"), torch.device("cpu")).exact_arithmetic,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__},
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
