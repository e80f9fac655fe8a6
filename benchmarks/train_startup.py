"""Start-up of one small training in a fresh interpreter against ``import torch``.

Each repetition runs, in fresh ``python`` processes and in rotating order: ``import torch``; ``import
tinyevo.training``; and a script that imports tinyevo, builds an MLP from the ``chain`` space and trains it for one
epoch on 256 random 8x8 images (``tinyevo.training.fit``), then reports whether ``torch._dynamo`` was imported.
Medians of the wall-clock times; the ratio is the training script's over ``import torch``. The machine's load
average is recorded with the numbers (a shared machine slows both sides). Writes JSON::

    python benchmarks/train_startup.py --reps 9 --out benchmarks/results/train_startup.json

``--pythonpath DIR`` adds the training script run with ``DIR`` first on ``PYTHONPATH`` (e.g. an older
checkout's ``src``) to the rotation (``train_one_epoch_other``), for a before / after comparison in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "train_startup.json"

TRAIN = """
import sys
import numpy as np
from tinyevo.data import from_arrays
from tinyevo.nn import build_model
from tinyevo.spaces import create_space
from tinyevo.training import TrainConfig, fit
rng = np.random.default_rng(0)
x = rng.normal(size=(256, 1, 8, 8)).astype(np.float32)
data = from_arrays(x, (x.mean((1, 2, 3)) > 0).astype(np.int64), name="t", seed=0, val_fraction=0.25)
space = create_space("chain", input_shape=(1, 8, 8), num_classes=2)
model = build_model(space.decode(space.parse("flat-dense_c32-dense_c64")), seed=0)
fit(model, data, config=TrainConfig(epochs=1, batch_size=64), seed=0)
print("torch._dynamo" in sys.modules)
"""

SCRIPTS = {
    "import_torch": "import torch",
    "import_tinyevo_training": "import tinyevo.training",
    "train_one_epoch": TRAIN,
}


def _time(code: str, env: dict[str, str] | None) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - t, out.stdout.strip()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=9)
    p.add_argument("--pythonpath", default=None, help="prepend this to PYTHONPATH (another checkout's src)")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    runs: dict[str, tuple[str, dict[str, str] | None]] = {n: (code, None) for n, code in SCRIPTS.items()}
    if args.pythonpath:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.pythonpath, env.get("PYTHONPATH", "")]))
        runs["train_one_epoch_other"] = (TRAIN, env)
    names = list(runs)
    times: dict[str, list[float]] = {n: [] for n in names}
    dynamo: dict[str, set[str]] = {n: set() for n in names if n.startswith("train")}
    load = [os.getloadavg()[0]]
    for name in dynamo:
        _time(*runs[name])  # warm the file cache
    for rep in range(args.reps):
        for name in names[rep % len(names):] + names[: rep % len(names)]:  # rotating order
            seconds, out = _time(*runs[name])
            times[name].append(seconds)
            if name in dynamo:
                dynamo[name].add(out)
        load.append(os.getloadavg()[0])
    med = {n: statistics.median(v) for n, v in times.items()}
    result = {
        "command": "python benchmarks/train_startup.py --reps " + str(args.reps)
        + (f" --pythonpath {args.pythonpath}" if args.pythonpath else ""),
        "python": platform.python_version(), "reps": args.reps,
        "median_s": med, "runs_s": times,
        "ratio_train_to_import_torch": med["train_one_epoch"] / med["import_torch"],
        **({"ratio_other_train_to_import_torch": med["train_one_epoch_other"] / med["import_torch"],
            "pythonpath_other": args.pythonpath} if args.pythonpath else {}),
        "dynamo_imported": {n: sorted(v) for n, v in dynamo.items()},
        "load_average_1min": {"min": min(load), "max": max(load), "samples": load},
        "cpus": os.cpu_count(),
    }
    for n in names:
        print(f"{n:>24}: {med[n]:.3f} s (median of {args.reps})")
    for n, seen in dynamo.items():
        print(f"{n} / import torch: {med[n] / med['import_torch']:.2f}x; torch._dynamo imported: {sorted(seen)}")
    print(f"load average {min(load):.1f}-{max(load):.1f} on {os.cpu_count()} CPUs")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
