"""Shared driver of the real-data benchmarks (``mnist_munas.py``, ``fsdd_kws.py``, ``cifar10_mlperf.py``).

Each benchmark runs ``tinyevo search --config benchmarks/configs/<name>.toml`` in a subprocess (the same CLI a
user runs), under a hard wall-clock limit, logging to ``benchmarks/out/<name>.log``, then reads the run
directory with :func:`tinyevo.run.view.open_run` and writes ``benchmarks/out/<name>.json`` and a table.
Everything about the run (limits, the peak-SRAM convention, training) is in the config file;
``--sram-convention`` overrides the config's convention on the command line (passed through to the CLI).
``--parse-only`` skips the search and only summarises an existing run directory.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
CONFIGS = ROOT / "benchmarks" / "configs"


def shared_dir() -> Path:
    env = os.environ.get("TINYEVO_SHARED")
    return Path(env) if env else (ROOT / ".." / "shared").resolve()


def parser(name: str, doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=CONFIGS / f"{name}.toml", help="run config (TOML)")
    p.add_argument("--run-dir", type=Path, default=OUT / f"{name}_run", help="tinyevo run directory")
    p.add_argument("--wall-limit", type=float, default=3600.0,
                   help="hard wall-clock limit of the whole tinyevo search process, seconds")
    p.add_argument("--parse-only", action="store_true", help="only summarise an existing --run-dir")
    p.add_argument("--sram-convention", choices=("mcunet", "munas"),
                   help="override the config's peak SRAM convention: mcunet (input and output buffers count) "
                        "or munas (neither counts); passed to `tinyevo search --sram-convention`")
    p.add_argument("extra", nargs="*", help="extra `tinyevo search` flags after --, e.g. -- --time 10m")
    return p


def run_search(args: argparse.Namespace, extra: Sequence[str] = ()) -> dict[str, Any]:
    """Run the search CLI (unless --parse-only); returns what was run and how long it took."""
    convention = [] if args.sram_convention is None else ["--sram-convention", args.sram_convention]
    cmd = [sys.executable, "-m", "tinyevo.cli.main", "search", "--config", str(args.config),
           "--out", str(args.run_dir), "--quiet", *convention, *extra, *args.extra]
    info: dict[str, Any] = {"command": shlex.join(cmd), "wall_limit_s": args.wall_limit}
    if args.parse_only:
        info["command"] = None
        return info
    if args.run_dir.exists():
        raise SystemExit(f"{args.run_dir} exists; remove it, or use `tinyevo resume` / --parse-only")
    OUT.mkdir(parents=True, exist_ok=True)
    log = OUT / f"{args.run_dir.name.removesuffix('_run')}.log"
    start = time.time()
    with log.open("w") as fh:
        fh.write(f"$ {info['command']}\n")
        fh.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
        try:
            info["returncode"] = proc.wait(timeout=args.wall_limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            info["returncode"] = None
            info["killed_at_wall_limit"] = True
    info["total_wall_s"] = time.time() - start
    info["log"] = str(log.relative_to(ROOT))
    return info


def _num(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def summarise(run_dir: Path) -> dict[str, Any]:
    """Search trials, best trial, final retraining metrics and timings of a run directory."""
    from tinyevo.run.view import open_run
    from tinyevo.strategies.base import Status

    view = open_run(run_dir)
    trials = view.trials
    counts = view.counts()
    ok = [r for r in view.records if r.trial.status is Status.OK]
    starts = [r.started_at for r in view.records if r.started_at is not None]
    ends = [r.finished_at for r in view.records if r.finished_at is not None]
    best = view.best()
    out: dict[str, Any] = {
        "run_dir": str(run_dir),
        "phase": view.phase,
        "config": view.config.to_json(),
        "limits": {k: _num(v) for k, v in view.bounds.items()},
        "trials": len(trials),
        "trial_status": counts,
        "trained_trials": len(ok),
        "search_eval_s": sum(r.duration_s or 0.0 for r in view.records),
        "search_span_s": (max(ends) - min(starts)) if starts and ends else None,
        "best_trial": None,
        "final": [],
    }
    if best is not None:
        out["best_trial"] = {"number": best.number, "genome": best.genome,
                             "metrics": {k: _num(v) for k, v in best.metrics.items()}}
    from tinyevo.run.retraining import best_retrained

    chosen = best_retrained(view.finals)  # the run's model (best final val_acc) first
    for f in sorted(view.finals, key=lambda f: (chosen is None or f.trial != chosen.trial, f.trial)):
        out["final"].append({"trial": f.trial, "genome": f.genome,
                             "metrics": {k: _num(v) for k, v in f.metrics.items()}, "weights": f.weights})
    return out


DEPLOY_MODULES = ("torchao", "litert_torch", "tflite_micro")


def int8_accuracy(run_dir: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """int8 test accuracy of the run's retrained model (the first in ``summary["final"]``) through the deploy extra (PT2E int8 -> .tflite ->
    TFLite-Micro), or why it was not measured."""
    import importlib.util

    missing = [m for m in DEPLOY_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        return {"int8_test_acc": None, "int8_note": f"not measured: deploy extra not installed ({', '.join(missing)})"}
    if not summary["final"]:
        return {"int8_test_acc": None, "int8_note": "not measured: no retrained model"}
    import torch

    from tinyevo.data import load_dataset
    from tinyevo.deploy import ExportOptions, export_model
    from tinyevo.run.assembly import make_space

    cfg = summary["config"]
    final = summary["final"][0]
    data = load_dataset(cfg["data"]["spec"], seed=cfg["seed"], val_fraction=cfg["data"]["val_fraction"])
    from tinyevo.run.config import RunConfig

    config = RunConfig.from_json(cfg)
    space = make_space(config.space, input_shape=data.input_shape, num_classes=data.num_classes)
    ir = space.decode(space.parse(final["genome"]))
    state = torch.load(run_dir / final["weights"] if not Path(final["weights"]).is_absolute()
                       else final["weights"], weights_only=True)
    rep = export_model(ir, state, data, fmt="tflite", out_dir=run_dir / "deploy",
                       options=ExportOptions(device=config.limits.device, seed=config.seed))
    return {"int8_test_acc": rep.int8_accuracy_tflm if rep.int8_accuracy_tflm is not None
            else rep.int8_accuracy_torch, "tflite_bytes": rep.tflite_bytes,
            # the arena the TFLM interpreter needed on this 64-bit host (pointers and structs are wider than on an
            # MCU), its activation part (the same on any target) and the 32-bit MCU arena (activations measured +
            # the persistent part modelled for 32-bit): the one to hold against an MCU's SRAM limit
            "tflm_arena_bytes": rep.arena_bytes, "tflm_arena_host_bytes": rep.arena_bytes,
            "tflm_arena_head_bytes": rep.arena_head_bytes,
            "tflm_arena_mcu32_bytes": getattr(rep, "arena_required_mcu32_bytes", None),
            "estimated_sram_bytes": rep.estimated_peak_sram_bytes,
            "int8_note": "TFLite-Micro" if rep.int8_accuracy_tflm is not None else "torch int8 simulation"}


def report(name: str, info: dict[str, Any], summary: dict[str, Any], goal: str,
           int8: dict[str, Any] | None = None) -> dict[str, Any]:
    """Print a table and write benchmarks/out/<name>.json."""
    int8 = int8 or {}
    final = summary["final"][0] if summary["final"] else None
    best = (summary["best_trial"] or {}).get("metrics") or {}
    fm = final["metrics"] if final else {k: v for k, v in best.items() if k not in ("val_acc", "epochs")}
    row = {
        "benchmark": name,
        "goal": goal,
        "genome": final["genome"] if final else (summary["best_trial"] or {}).get("genome"),
        "test_acc": fm.get("test_acc"),
        "val_acc_final": fm.get("val_acc"),
        "search_val_acc": ((summary["best_trial"] or {}).get("metrics") or {}).get("val_acc"),
        "peak_sram_bytes": fm.get("peak_sram_bytes"),
        "sram_convention": summary["config"]["limits"].get("sram_convention", "mcunet"),
        "weight_bytes": fm.get("weight_bytes"),
        "flash_bytes": fm.get("flash_bytes"),
        "params": fm.get("params"),
        "macs": fm.get("macs"),
        "latency_ms": fm.get("latency_ms"),
        "energy_mj": fm.get("energy_mj"),
        "device": summary["config"]["limits"]["device"],
        "search_wall_s": summary["search_span_s"],
        "final_train_s": fm.get("final_train_s", fm.get("train_time_s")),
        **int8,
        "final_epochs": fm.get("epochs"),
        "final_epochs_planned": fm.get("epochs_planned"),
        "trials": summary["trials"],
        "trial_status": summary["trial_status"],
        "total_wall_s": info.get("total_wall_s"),
        "command": info.get("command"),
    }
    doc = {"summary": row, "run": info, "details": summary}
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2, default=str))
    width = max(len(k) for k in row)
    for k, v in row.items():
        if isinstance(v, float):
            v = f"{100 * v:.2f} %" if "_acc" in k else f"{v:,.4g}" if v < 1e4 else f"{v:,.0f}"
        print(f"{k:<{width}}  {v}")
    print(f"wrote {path.relative_to(ROOT)}")
    return doc


def main(name: str, doc: str, goal: str, argv: Sequence[str] | None = None,
         check_data: Sequence[Path] = ()) -> int:
    args = parser(name, doc).parse_args(argv)
    for p in check_data:
        if not p.exists():
            print(f"data file {p} is missing (set TINYEVO_SHARED)", file=sys.stderr)
            return 2
    info = run_search(args)
    if not (args.run_dir / "tinyevo.db").exists() and not args.run_dir.is_dir():
        print(f"no run directory at {args.run_dir}; see the log", file=sys.stderr)
        return 1
    summary = summarise(args.run_dir)
    try:
        int8 = int8_accuracy(args.run_dir, summary)
    except Exception as exc:  # noqa: BLE001 - the int8 number is optional; say why it is missing
        int8 = {"int8_test_acc": None, "int8_note": f"not measured: {type(exc).__name__}: {exc}"}
    report(name, info, summary, goal, int8)
    return 0 if info.get("returncode") in (0, None) and not info.get("killed_at_wall_limit") else 1

