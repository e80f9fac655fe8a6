"""Small data with default settings: a synthetic 4-class sensor set with 10 training series per class.

Issue 16: a sensor data set of 4 classes x 10 training series (which simple classifiers solve at 100 %) got
50 % test accuracy with ``tinyevo search``'s defaults (a 4-sample validation split, 4 optimiser steps per
candidate). This benchmark builds such a set -- four waveform shapes (sine, square, sawtooth, one Gaussian
pulse) with random frequency, phase, amplitude, offset and noise, 128 samples long, 10 training and 30 test
series per class -- saves it as ``.npz`` (``x, y, x_test, y_test``; ``x`` is ``N x T x 1``, read as a
one-channel ``T x 1`` image), runs the default ``tinyevo search --data that.npz`` with a small budget for a few
seeds, and records the test accuracy of the run's model, the settings the run chose (stored in the run) and the
warnings the CLI printed. Writes ``benchmarks/results/small_data.json``::

    python benchmarks/small_data.py                      # seeds 0,1,2; budget 20
    python benchmarks/small_data.py --seeds 0 --budget 10 --json /tmp/x.json
    PYTHONPATH=/tmp/old/src python benchmarks/small_data.py --label old --json benchmarks/out/small_data_old.json
    python benchmarks/small_data.py --before benchmarks/out/small_data_old.json   # embeds the old numbers

Run it with ``PYTHONPATH=<older checkout>/src`` to measure an older version's defaults on the same data.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "small_data"
RESULTS = ROOT / "benchmarks" / "results" / "small_data.json"
SHAPES = ("sine", "square", "sawtooth", "pulse")


def waveforms(n_per_class: int, *, length: int = 128, noise: float = 0.3,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n_per_class`` noisy series of each shape in :data:`SHAPES`: ``x`` (N, length, 1) float32, ``y`` (N,)."""
    t = np.linspace(0.0, 1.0, length, endpoint=False)
    xs, ys = [], []
    for label, shape in enumerate(SHAPES):
        for _ in range(n_per_class):
            freq, phase = rng.uniform(2.0, 4.0), rng.uniform(0.0, 1.0)
            cycle = (freq * t + phase) % 1.0
            if shape == "sine":
                s = np.sin(2 * np.pi * cycle)
            elif shape == "square":
                s = np.where(cycle < 0.5, 1.0, -1.0)
            elif shape == "sawtooth":
                s = 2.0 * cycle - 1.0
            else:  # one Gaussian pulse at a random place
                centre, width = rng.uniform(0.2, 0.8), rng.uniform(0.04, 0.1)
                s = 2.0 * np.exp(-0.5 * ((t - centre) / width) ** 2) - 0.5
            s = rng.uniform(0.8, 1.2) * s + rng.uniform(-0.2, 0.2) + noise * rng.standard_normal(length)
            xs.append(s)
            ys.append(label)
    order = rng.permutation(len(ys))
    return np.asarray(xs, dtype=np.float32)[order, :, None], np.asarray(ys, dtype=np.int64)[order]


def make_fixture(path: Path, *, train_per_class: int = 10, test_per_class: int = 30, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    x, y = waveforms(train_per_class, rng=rng)
    xs, ys = waveforms(test_per_class, rng=rng)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x, y=y, x_test=xs, y_test=ys, classes=np.asarray(SHAPES))
    return path


def run_search(data: Path, run_dir: Path, *, seed: int, budget: int, extra: list[str],
               existing: bool = False) -> dict[str, object]:
    """Run the search into ``run_dir`` (or, with ``existing``, only read a finished run already there)."""
    cmd = [sys.executable, "-m", "tinyevo.cli.main", "search", "--data", str(data), "--budget", str(budget),
           "--seed", str(seed), "--out", str(run_dir), "-q", *extra]
    stderr, wall = "", None
    if not (existing and (run_dir / "final").is_dir()):
        shutil.rmtree(run_dir, ignore_errors=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=os.environ.copy())
        wall = round(time.perf_counter() - t0, 1)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        stderr = proc.stderr
    from tinyevo.run.engine import load_run_config
    from tinyevo.run.retraining import best_retrained
    from tinyevo.run.view import open_run

    view = open_run(run_dir)
    model = best_retrained(view.finals) if view.finals else None
    stored = load_run_config(run_dir).to_json()
    return {
        "seed": seed,
        "test_acc": None if model is None else model.metrics.get("test_acc"),
        "val_acc": None if model is None else model.metrics.get("val_acc"),
        "trial": None if model is None else model.trial,
        "genome": None if model is None else next(r.trial.genome for r in view.records if r.trial.number == model.trial),
        "stored_data": stored["data"],
        "stored_train": {k: stored["estimator"]["train"].get(k) for k in ("epochs", "batch_size")},
        "stored_final_train": {k: stored["final"]["train"].get(k) for k in ("epochs", "batch_size")},
        "budget": budget,
        "trials": len(view.records),
        "stderr_lines": [ln for ln in stderr.splitlines() if ln.strip()][:20],
        "wall_s": wall,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2", help="run seeds (comma-separated)")
    ap.add_argument("--budget", type=int, default=20, help="evaluated trials per search")
    ap.add_argument("--label", default="defaults", help="name of this measurement in the JSON")
    ap.add_argument("--json", type=Path, default=RESULTS, help="where the JSON goes")
    ap.add_argument("--before", type=Path, help="JSON of an earlier measurement (e.g. an older version) to embed")
    ap.add_argument("search_args", nargs="*", help="extra `tinyevo search` flags (after --)")
    ap.add_argument("--existing", action="store_true",
                    help="read a finished run already in the run directory instead of running it again")
    ap.add_argument("--combine", type=Path, nargs="+", metavar="JSON",
                    help="only merge the runs of these JSON files (e.g. one per seed, run in parallel) into --json")
    args = ap.parse_args()
    data = make_fixture(OUT / "sensor4.npz")
    if args.combine:
        parts = [json.loads(p.read_text()) for p in args.combine]
        write(args, data, [r for part in parts for r in part["runs"]], parts[0].get("before"))
        return 0
    before = json.loads(args.before.read_text()) if args.before else None
    runs: list[dict[str, object]] = []
    for seed in (int(s) for s in args.seeds.split(",")):
        res = run_search(data, OUT / f"run-{args.label}-seed{seed}", seed=seed, budget=args.budget,
                         extra=args.search_args, existing=args.existing)
        runs.append(res)
        print(f"seed {seed}: test_acc {res['test_acc']}, train {res['stored_train']}, "
              f"final {res['stored_final_train']}, data {res['stored_data']}, {res['wall_s']} s", flush=True)
        write(args, data, runs, before)  # after every seed: a long run that is stopped keeps what it measured
    return 0


def write(args: argparse.Namespace, data: Path, runs: list[dict[str, object]], before: object) -> None:
    accs = [float(r["test_acc"]) for r in runs if r["test_acc"] is not None]  # type: ignore[arg-type]
    out = {
        "benchmark": "small_data",
        "label": args.label,
        "command": f"tinyevo search --data {data.relative_to(ROOT)} --budget B --seed S -q "
                   + " ".join(args.search_args),
        "data": {"classes": list(SHAPES), "train_per_class": 10, "test_per_class": 30, "length": 128,
                 "noise": 0.3, "fixture_seed": 0},
        "mean_test_acc": float(np.mean(accs)) if accs else None,
        "runs": runs,
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
    }
    if before is not None:
        out["before"] = before
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"mean test_acc {out['mean_test_acc']} over {len(accs)} run(s); wrote {args.json}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
