"""Supernet search vs training-based search at equal total CPU time, and one supernet for three devices
(issue 20, benchmark 2; see docs/supernet.md).

* Data: a stratified subset of ``../shared/data/fashion_mnist.npz``: ``--fraction`` of the 60,000 training images
  (the run carves its 10 % validation split from them) and ``--test`` test images, written to
  ``benchmarks/out/supernet_search/fmnist_<fraction>_<test>.npz``. Both arms and all searches use this file.
* Arm ``supernet`` (A), on the first device (default nrf52840, 64 KB SRAM, 256 KB flash):
  ``tinyevo supernet train`` (``--supernet-epochs``, sandwich rule with 4 random sub-networks, one torch thread) of
  a small MBConv ``blocks`` sub-space (that of ``supernet_rank.py``), then ``tinyevo search --supernet`` with
  ``--candidates`` scored candidates (one worker) and the final training (``--final-epochs``, inheriting the
  supernet's weights).
* Arm ``training`` (B): ``tinyevo search`` of the same space with the default strategy and estimator (one worker),
  ``--time`` = A's CPU time less A's final training time, then the same final training from scratch; so both arms
  spend about the same total CPU time (both are reported).
* For each arm: int8 test accuracy of the retrained model on TFLite-Micro (export -> .tflite -> TFLM interpreter,
  ``benchmarks/_realdata.py``), whether the limits hold (cost model), CPU time (``getrusage`` of the child processes)
  and wall time.
* After both arms, devices 2 and 3 (default stm32f412 at 96 KB / 512 KB and stm32f746 at its own limits) are searched with the SAME
  supernet, ``--candidates`` evaluated trials each, ``--device-workers`` (2) workers, no final training: wall time
  and candidates scored.

Every step is written to the JSON at once; a step whose record is already there (same settings) is skipped, so a
killed run continues. The issue's full configuration (2,000 candidates per device, full training split)::

    nice -n 10 python benchmarks/supernet_search.py --fraction 1.0 --supernet-epochs 10 --candidates 2000 \
        --test 10000 --out benchmarks/results/supernet_search.json

The small configuration that was run on the shared 2-core machine::

    nice -n 10 python benchmarks/supernet_search.py --fraction 0.1 --supernet-epochs 4 --candidates 300 \
        --test 2000 --final-epochs 5 --out benchmarks/results/supernet_search_small.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _realdata import int8_accuracy, shared_dir, summarise

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "out" / "supernet_search"
# the small MBConv sub-space of supernet_rank.py, as `tinyevo supernet train` flags
SPACE_FLAGS = ["--resolution", "16,20,24", "--width", "0.5,0.75,1.0", "--block-types", "mb", "--depths", "1,2,3",
               "--kernels", "3,5,7", "--expands", "1,3,4", "--stage-strides", "1,2,2,2",
               "--stage-channels", "8,16/16,24/24,32/32,48", "--stem-channels", "8"]


def make_data(src: Path, fraction: float, n_test: int, seed: int) -> Path:
    d = np.load(src)
    rng = np.random.default_rng(seed)

    def pick(y: np.ndarray, n: int) -> np.ndarray:
        return np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), n // 10, replace=False)
                                       for c in range(10)]))

    tr = pick(d["y_train"], round(fraction * len(d["y_train"])))
    te = pick(d["y_test"], min(n_test, len(d["y_test"])))
    out = WORK / f"fmnist_{fraction}_{n_test}.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, x_train=d["x_train"][tr], y_train=d["y_train"][tr], x_test=d["x_test"][te], y_test=d["y_test"][te])
    return out


def cli(args: list[str], log: Path) -> tuple[float, float]:
    """Run ``tinyevo ARGS``; (wall seconds, CPU seconds of the child processes)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with log.open("w") as fh:
        fh.write("$ tinyevo " + " ".join(args) + "\n")
        fh.flush()
        subprocess.run([sys.executable, "-m", "tinyevo.cli.main", *args], check=True, stdout=fh,
                       stderr=subprocess.STDOUT, cwd=ROOT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - t0, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def run_record(run_dir: Path, wall: float, cpu: float, *, int8: bool) -> dict[str, Any]:
    s = summarise(run_dir)
    best = s["best_trial"] or {}
    metrics = best.get("metrics") or {}
    bounds = {k: v for k, v in s["limits"].items() if v is not None}
    final = s["final"][0] if s["final"] else None
    fm = final["metrics"] if final else {}
    out: dict[str, Any] = {
        "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "trials": s["trials"], "trial_status": s["trial_status"],
        "scored": s["trained_trials"], "search_span_s": None if s["search_span_s"] is None else
        round(s["search_span_s"], 1), "limits": bounds,
        "best_genome": best.get("genome"), "search_val_acc": metrics.get("val_acc"),
        "cost": {m: metrics.get(m) for m in ("peak_sram_bytes", "flash_bytes", "macs", "latency_ms")},
        "limits_hold": bool(metrics) and all(metrics.get(m, float("inf")) <= b for m, b in bounds.items()),
    }
    if final is not None:
        out["final"] = {"genome": final["genome"], "val_acc": fm.get("val_acc"), "test_acc_float": fm.get("test_acc"),
                        "final_train_s": fm.get("final_train_s", fm.get("train_time_s")),
                        "limits_hold": all(fm.get(m, float("inf")) <= b for m, b in bounds.items())}
    if int8 and final is not None:
        try:
            out["int8"] = int8_accuracy(run_dir, s)
        except Exception as exc:  # noqa: BLE001 - say why the int8 number is missing
            out["int8"] = {"int8_test_acc": None, "int8_note": f"not measured: {type(exc).__name__}: {exc}"}
    return out


def inherited_from(run_dir: Path) -> list[str | None]:
    """``inherited_from`` of each retrained model (top level of ``final/trial-NNNN/metrics.json``)."""
    return [json.loads(f.read_text()).get("inherited_from") for f in sorted(run_dir.glob("final/*/metrics.json"))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=shared_dir() / "data" / "fashion_mnist.npz")
    p.add_argument("--fraction", type=float, default=1.0, help="fraction of the 60,000 training images used")
    p.add_argument("--test", type=int, default=10000, help="test images (int8 accuracy on TFLite-Micro)")
    p.add_argument("--supernet-epochs", type=int, default=10)
    p.add_argument("--random-subnets", type=int, default=4)
    p.add_argument("--candidates", type=int, default=2000, help="evaluated trials per supernet search")
    p.add_argument("--final-epochs", type=int, default=10)
    p.add_argument("--device-workers", type=int, default=2, help="workers of the device 2 and 3 searches")
    p.add_argument("--device", nargs=3, default=["nrf52840:64KB:256KB", "stm32f412:96KB:512KB", "stm32f746"],
                   metavar="DEV[:SRAM:FLASH]", help="the arms' device, then the two other devices")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-int8", action="store_true")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "supernet_search.json")
    a = p.parse_args()

    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items() if k != "out"}
    settings["data"] = a.data.name
    result: dict[str, Any] = {}
    if a.out.exists():
        old = json.loads(a.out.read_text())
        if old.get("settings") == settings:
            result = old
    result["settings"] = settings
    result["configuration"] = ("small" if (a.fraction, a.candidates) != (1.0, 2000) else "full")
    result["full_command"] = ("nice -n 10 python benchmarks/supernet_search.py --fraction 1.0 --supernet-epochs 10 "
                              "--candidates 2000 --test 10000 --out benchmarks/results/supernet_search.json")
    result["command"] = " ".join(["python", *sys.argv])
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                         "load_average_at_start": os.getloadavg()}

    def save() -> None:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=2, default=str) + "\n")

    tag = f"f{a.fraction}_e{a.supernet_epochs}_r{a.random_subnets}_s{a.seed}"
    data = make_data(a.data, a.fraction, a.test, a.seed)
    result["data"] = {"file": str(data.relative_to(ROOT)), "train_incl_val": round(a.fraction * 60000) // 10 * 10,
                      "test": min(a.test, 10000)}

    def limits(spec: str) -> list[str]:
        dev, *rest = spec.split(":")
        return ["--device", dev, *(["--sram", rest[0], "--flash", rest[1]] if rest else [])]

    common = ["--data", str(data), "--seed", str(a.seed), "--quiet"]
    sn_dir = WORK / f"sn_{tag}"

    # --- A.1 the supernet --------------------------------------------------------------------------------
    if "supernet_train" not in result or not (sn_dir / "supernet.pt").exists():
        shutil.rmtree(sn_dir, ignore_errors=True)
        wall, cpu = cli(["supernet", "train", "--data", str(data), *SPACE_FLAGS, "--epochs", str(a.supernet_epochs),
                         "--random-subnets", str(a.random_subnets), "--threads", "1", "--seed", str(a.seed),
                         "--quiet", "--out", str(sn_dir)], WORK / f"sn_{tag}.log")
        result["supernet_train"] = {"dir": str(sn_dir.relative_to(ROOT)), "wall_s": round(wall, 1),
                                    "cpu_s": round(cpu, 1)}
        save()

    # --- A.2 search with supernet scoring + final training (inheriting) ----------------------------------
    arms = result.setdefault("arms", {})
    if "supernet" not in arms:
        run = WORK / f"A_{tag}"
        shutil.rmtree(run, ignore_errors=True)
        wall, cpu = cli(["search", "--supernet", str(sn_dir), *common, *limits(a.device[0]),
                         "--budget", str(a.candidates), "--workers", "1", "--final-epochs", str(a.final_epochs),
                         "--out", str(run)], WORK / f"A_{tag}.log")
        rec = run_record(run, wall, cpu, int8=not a.no_int8)
        rec["search_and_final_cpu_s"] = rec.pop("cpu_s")
        rec["search_and_final_wall_s"] = rec.pop("wall_s")
        rec["cpu_s_total"] = round(result["supernet_train"]["cpu_s"] + rec["search_and_final_cpu_s"], 1)
        rec["wall_s_total"] = round(result["supernet_train"]["wall_s"] + rec["search_and_final_wall_s"], 1)
        arms["supernet"] = rec
        save()

    # --- B: training-based search at A's CPU time ----------------------------------------------------------
    if "training" not in arms:
        A = arms["supernet"]
        budget = int(A["cpu_s_total"] - ((A.get("final") or {}).get("final_train_s") or 0.0))
        run = WORK / f"B_{tag}"
        shutil.rmtree(run, ignore_errors=True)
        space_cfg = WORK / "space.toml"
        sn_space = json.loads((sn_dir / "supernet.json").read_text())["space"]
        opts = {k: v for k, v in sn_space.items() if k not in ("input_shape", "num_classes")}
        space_cfg.write_text('space = "blocks"\n[space_options]\n' + "".join(
            f"{k} = {json.dumps(v)}\n" for k, v in opts.items()))
        wall, cpu = cli(["search", "--config", str(space_cfg), *common, *limits(a.device[0]), "--time", f"{budget}s",
                         "--budget", "100000", "--workers", "1", "--final-epochs", str(a.final_epochs),
                         "--out", str(run)], WORK / f"B_{tag}.log")
        rec = run_record(run, wall, cpu, int8=not a.no_int8)
        rec["search_time_budget_s"] = budget
        rec["cpu_s_total"], rec["wall_s_total"] = rec.pop("cpu_s"), rec.pop("wall_s")
        arms["training"] = rec
        save()

    # --- devices 2 and 3 from the same supernet ----------------------------------------------------------
    devices = result.setdefault("other_devices", {})
    for spec in a.device[1:]:
        if spec in devices:
            continue
        run = WORK / f"D_{spec.split(':')[0]}_{tag}"
        shutil.rmtree(run, ignore_errors=True)
        wall, cpu = cli(["search", "--supernet", str(sn_dir), *common, *limits(spec), "--budget", str(a.candidates),
                         "--workers", str(a.device_workers), "--no-final", "--out", str(run)],
                        WORK / f"D_{spec.split(':')[0]}_{tag}.log")
        rec = run_record(run, wall, cpu, int8=False)
        rec["workers"] = a.device_workers
        rec["goal_10min_2000"] = rec["wall_s"] <= 600 and rec["scored"] >= 2000
        devices[spec] = rec
        save()

    for name, prefix in (("supernet", "A"), ("training", "B")):  # where each final model's weights started
        run = WORK / f"{prefix}_{tag}"
        if name in arms and run.exists():
            arms[name]["final_inherited_from"] = [None if d is None else str(Path(d).relative_to(ROOT))
                                                  for d in inherited_from(run)]
    result["load_average_at_end"] = os.getloadavg()
    save()
    print(json.dumps({k: result[k] for k in ("arms", "other_devices")}, indent=1, default=str)[:6000])


if __name__ == "__main__":
    main()
