"""DNAS (``search --strategy dnas``) vs the default evolutionary search at equal time, on Fashion-MNIST under a small
MCU's limits; and DARTS' collapse to parameter-free ops on NB201 (see docs/dnas.md).

* Data: a stratified subset of ``../shared/data/fashion_mnist.npz`` (``--train`` / ``--test`` images per split,
  28x28), written to ``benchmarks/out/dnas_fmnist_<train>_<test>.npz``.
* Space: ``nb201`` (``--channels`` stem channels, one cell per stage); limits: ``--flash-frac`` of the flash of the
  all-3x3-conv cell and ``--sram-frac`` of its peak SRAM (stm32f412 cost model, int8).
* Arm ``dnas``: ``tinyevo search --strategy dnas --epochs E``; its wall time T (search + the one trial).
  Arm ``evolution``: ``tinyevo search`` (default strategy) with ``--time T``. Both: the same final retraining
  (``--final-epochs``) and int8 accuracy of the retrained model (TFLite-Micro when the deploy extra is present).
  Everything runs with one worker and one torch thread, so wall time is CPU time.
* Collapse: :func:`tinyevo.supernet.dnas.dnas_search` without limits for ``--collapse-epochs``; share of
  parameter-free ops (none / skip / avg pool) in the argmax cell, unguarded (no warm-up, ``none`` allowed) vs
  guarded (warm-up epochs, ``none`` excluded), over ``--seeds`` seeds.

    nice -n 10 python benchmarks/dnas.py            # JSON: benchmarks/results/dnas.json
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _realdata import int8_accuracy, shared_dir, summarise

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
PARAM_FREE = ("none", "skip_connect", "avg_pool_3x3")


def subset(src: Path, n_train: int, n_test: int, seed: int) -> Path:
    d = np.load(src)
    rng = np.random.default_rng(seed)

    def pick(y: np.ndarray, n: int) -> np.ndarray:
        per = n // 10
        return np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), per, replace=False) for c in range(10)]))

    tr, te = pick(d["y_train"], n_train), pick(d["y_test"], n_test)
    out = OUT / f"dnas_fmnist_{n_train}_{n_test}.npz"
    np.savez(out, x_train=d["x_train"][tr], y_train=d["y_train"][tr], x_test=d["x_test"][te], y_test=d["y_test"][te])
    return out


def cli(args: list[str]) -> tuple[float, float]:
    """Run the CLI; (wall seconds, child CPU seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tinyevo.cli.main", "search", "--quiet", *args], check=True,
                   stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - t0, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def arm_result(run_dir: Path, wall: float, cpu: float, bounds: dict[str, float], int8: bool) -> dict[str, object]:
    s = summarise(run_dir)
    final = s["final"][0] if s["final"] else None
    genome_metrics = s["best_trial"]["metrics"] if s["best_trial"] else {}
    out: dict[str, object] = {
        "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "trials": s["trials"], "trial_status": s["trial_status"],
        "genome": None if final is None else final["genome"],
        "search_val_acc": genome_metrics.get("val_acc"),
        "final_test_acc_float": None if final is None else final["metrics"].get("test_acc"),
        "cost": {m: genome_metrics.get(m) for m in bounds},
        "limits_hold": bool(genome_metrics) and all(genome_metrics[m] <= b for m, b in bounds.items()),
    }
    if (run_dir / "dnas.json").exists():
        rec = json.loads((run_dir / "dnas.json").read_text())
        out["dnas"] = {k: rec[k] for k in ("argmax", "projected", "feasible", "moves", "seconds")}
    if int8 and final is not None:
        out.update(int8_accuracy(run_dir, s))
    return out


def collapse(data_path: Path, channels: int, epochs: int, seeds: int) -> dict[str, object]:
    from tinyevo.data import load_dataset
    from tinyevo.spaces.nb201 import NB201Space
    from tinyevo.supernet.dnas import DnasConfig, dnas_search
    from tinyevo.training import Recipe

    data = load_dataset(str(data_path), seed=0, val_fraction=0.1)
    space = NB201Space(channels=channels, cells_per_stage=1, input_shape=data.input_shape,
                       num_classes=data.num_classes)
    recipe = Recipe(epochs=epochs, batch_size=64, optimizer="sgd", lr=0.05, threads=1)
    settings = {"unguarded": DnasConfig(warmup_epochs=0, arch_lr=3e-3),
                "guarded": DnasConfig(warmup_epochs=max(1, epochs // 3), arch_lr=3e-3, exclude=("none",))}
    out: dict[str, object] = {"epochs": epochs, "seeds": seeds, "param_free_ops": list(PARAM_FREE)}
    for name, cfg in settings.items():
        rows = []
        for seed in range(seeds):
            r = dnas_search(space, data, recipe, seed=seed, cfg=cfg)
            ops = r.argmax.ops  # type: ignore[attr-defined]
            rows.append({"seed": seed, "argmax": str(r.argmax), "param_free": sum(o in PARAM_FREE for o in ops),
                         "final_supernet_val_acc": r.history[-1].val_acc, "seconds": round(r.seconds, 1)})
        out[name] = {"runs": rows, "mean_param_free_of_6": float(np.mean([r["param_free"] for r in rows]))}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=shared_dir() / "data" / "fashion_mnist.npz")
    p.add_argument("--train", type=int, default=3000)
    p.add_argument("--test", type=int, default=1000)
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--epochs", type=int, default=6, help="DNAS search epochs")
    p.add_argument("--eval-epochs", type=int, default=3, help="training epochs of a searched candidate")
    p.add_argument("--final-epochs", type=int, default=10)
    p.add_argument("--flash-frac", type=float, default=0.6)
    p.add_argument("--sram-frac", type=float, default=0.9)
    p.add_argument("--collapse-epochs", type=int, default=9)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--no-int8", action="store_true")
    p.add_argument("--skip-arms", action="store_true", help="only the collapse experiment (arms kept from --out)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "dnas.json")
    a = p.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    data = subset(a.data, a.train, a.test, seed=0)

    from tinyevo.cost import estimate_cost
    from tinyevo.spaces.nb201 import NB201Genome, NB201Space

    space = NB201Space(channels=a.channels, cells_per_stage=1, input_shape=(1, 28, 28), num_classes=10)
    big = estimate_cost(space.decode(NB201Genome(("nor_conv_3x3",) * 6)), device="stm32f412").as_metrics()
    bounds = {"flash_bytes": int(a.flash_frac * big["flash_bytes"]),
              "peak_sram_bytes": int(a.sram_frac * big["peak_sram_bytes"])}
    cfg = OUT / "dnas_bench.toml"
    cfg.write_text(f'space = "nb201"\ndata = "{data}"\n[space_options]\nchannels = {a.channels}\ncells_per_stage = 1\n')
    common = ["--config", str(cfg), "--device", "stm32f412", "--flash", f"{bounds['flash_bytes']}B",
              "--sram", f"{bounds['peak_sram_bytes']}B", "--final-epochs", str(a.final_epochs), "--workers", "1"]
    result: dict[str, object] = {
        "data": f"Fashion-MNIST stratified subset: {a.train} train (incl. validation) / {a.test} test, 28x28",
        "space": f"nb201 channels={a.channels} cells_per_stage=1", "device": "stm32f412",
        "limits": bounds, "all_conv3x3_cost": {m: big[m] for m in bounds}, "args": {k: str(v) for k, v in vars(a).items()},
    }
    if a.skip_arms and a.out.exists():  # keep the arms of an earlier run of this benchmark
        earlier = json.loads(a.out.read_text())
        result["arms"] = earlier.get("arms")
        result["arms_args"] = earlier.get("args")
    if not a.skip_arms:
        arms: dict[str, object] = {}
        d_dir, e_dir = OUT / "dnas_run", OUT / "dnas_evo_run"
        for d in (d_dir, e_dir):
            shutil.rmtree(d, ignore_errors=True)
        wall, cpu = cli([*common, "--strategy", "dnas", "--epochs", str(a.epochs), "--out", str(d_dir)])
        arms["dnas"] = arm_result(d_dir, wall, cpu, bounds, not a.no_int8)
        rec = json.loads((d_dir / "dnas.json").read_text())
        search_s = max(30.0, rec["seconds"] + summarise(d_dir)["search_eval_s"])  # DNAS + its one trial
        arms["dnas"]["search_s"] = round(search_s, 1)  # type: ignore[index]
        wall, cpu = cli([*common, "--time", f"{int(search_s)}s", "--budget", "1000", "--epochs", str(a.eval_epochs),
                         "--out", str(e_dir)])
        arms["evolution"] = arm_result(e_dir, wall, cpu, bounds, not a.no_int8)
        arms["evolution"]["time_budget_s"] = int(search_s)  # type: ignore[index]
        result["arms"] = arms
        _dump(a.out, result)
    result["collapse"] = collapse(data, a.channels, a.collapse_epochs, a.seeds)
    _dump(a.out, result)
    print(json.dumps(result, indent=1)[:4000])


def _dump(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, default=str))


if __name__ == "__main__":
    main()
