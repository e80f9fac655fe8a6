"""Rank correlation (Kendall tau) of cheap performance estimators against full training, and their cost.

Architectures: ``--archs`` (default 32) distinct genomes of the ``chain`` space on MNIST (28x28), within
``--max-macs`` / ``--max-params`` (tinyML-sized networks, which also keeps full training feasible on a shared
2-core CPU). A third are sampled at random; the rest are mutants of earlier ones (what an evolutionary search
evaluates, and what weight inheritance needs: each mutant's parent is recorded).

"Full training" (the reference): ``--full-epochs`` (default 3) epochs on the whole training split (54,000
images; 6,000 validation), AdamW lr 0.01, batch 128, cosine schedule, one torch thread, seed 0; validation
accuracy measured 4x per epoch (the learning curve). Cheap estimators, each on the same seed:

* ``epochs-1``: 1 epoch on the full training split;
* ``data-10%``: the full epochs on a stratified 10 % of the training split;
* ``lowfi`` / ``lowres``: the registered presets (a quarter of the epochs on 25 % of the data with half-width
  networks / half the epochs on 14x14 inputs);
* ``inherit``: 1 epoch starting from the parent's weights as trained by this estimator (random genomes start
  from scratch);
* ``lc``: learning-curve extrapolation (CurveStopper(min_epochs=1, top_k=5)), replayed in order on the
  recorded full-training curves -- training is deterministic, so the prefix until the stop point is exactly
  what the ``lc`` estimator would train; its cost is the time to the stop point;
* zero-cost proxies ``synflow``, ``naswot``, ``grad-norm``; and the baselines ``params`` and ``macs``;
* with ``--teacher GENOME`` (a bigger ``chain`` network, trained once for ``--teacher-epochs`` on the same data):
  ``epochs-1+teacher`` and ``data-10%+teacher``, the same estimators trained by distillation from it (what
  ``tinyevo search --teacher`` does), to see whether a teacher makes cheap fitness rank candidates better. The
  teacher is not part of the settings, so it can be added to an existing ``--out``.

Usage (writes JSON to benchmarks/out/ after every architecture and resumes from it)::

    nice -n 10 python benchmarks/estimator_correlation.py                 # the full benchmark
    python benchmarks/estimator_correlation.py --archs 8 --full-epochs 1 --fraction 0.1 --out /tmp/ec.json
    python benchmarks/estimator_correlation.py --fraction 0.1 --teacher TEACHER \
        --out benchmarks/out/estimator_correlation_teacher.json      # TEACHER: see --teacher's default
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from tinyevo.cost import estimate_cost
from tinyevo.data import load_dataset, subset
from tinyevo.estimators import (
    CurveStopper,
    EvalContext,
    Fidelity,
    TrainConfig,
    TrainingEstimator,
    WeightStore,
    fit,
    proxy_score,
)
from tinyevo.estimators.presets import low_fidelity, low_resolution
from tinyevo.training import torch_threads
from tinyevo.nn import build_model
from tinyevo.spaces import create_space

ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    env = os.environ.get("TINYEVO_SHARED")
    return Path(env) if env else ROOT / ".." / "shared"


def make_archs(space, n: int, *, seed: int, max_macs: float, max_params: float) -> list[dict]:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    out: list[dict] = []
    seen: set[str] = set()
    n_random = max(1, n // 3)

    def ok(g) -> dict | None:  # type: ignore[no-untyped-def]
        s = str(g)
        if s in seen:
            return None
        m = estimate_cost(space.decode(g)).as_metrics()
        if m["macs"] > max_macs or m["params"] > max_params or m["macs"] < 1000:
            return None
        return {"genome": s, "macs": m["macs"], "params": m["params"]}

    for _ in range(100000):
        if len(out) >= n:
            break
        if len(out) < n_random:
            rec, parent = ok(space.sample(rng)), None
        else:
            parent = out[int(rng.integers(len(out)))]["genome"]
            rec = ok(space.mutate(space.parse(parent), rng))
        if rec is not None:
            rec["parent"] = parent
            seen.add(rec["genome"])
            out.append(rec)
    return out


def full_training(ir, data, cfg: TrainConfig) -> dict:  # type: ignore[no-untyped-def]
    with torch_threads(cfg.threads):
        start = time.perf_counter()
        model = build_model(ir, seed=0)
        history, _ = fit(model, data, config=cfg, seed=0, evals_per_epoch=4)
        seconds = time.perf_counter() - start
    # the reference cost is that of the ``train`` estimator, which measures validation once per epoch: the
    # curve's three extra measurements per epoch (there for the lc replay) are not charged to full training
    extra = history[-1].eval_seconds * 3 / 4
    return {
        "val_acc": history[-1].val_acc,
        "seconds_with_curve": seconds,
        "seconds": seconds - extra,
        "curve": [[r.epoch, r.val_acc, r.seconds] for r in history],
    }


TEACHER = "conv_k3_s2_c32_r-conv_k3_s1_c64_r-conv_k3_s1_c64_r-conv_k3_s2_c128_r-gap-dense_c128"


def train_teacher(state: dict, genome: str, epochs: int, data, cfg: TrainConfig):  # type: ignore[no-untyped-def]
    """The teacher network, trained (deterministically, seed 0) on ``data``; its accuracy goes into ``state``. A
    state scored with another teacher loses those scores."""
    from tinyevo.estimators import train_model

    space = create_space("chain", input_shape=data.input_shape, num_classes=data.num_classes, max_layers=8,
                         channels=(16, 32, 64, 128))
    start = time.perf_counter()
    result = train_model(space.decode(space.parse(genome)), data, config=replace(cfg, epochs=epochs), seed=0)
    info = {"genome": genome, "epochs": epochs, "val_acc": result.metrics["val_acc"],
            "test_acc": result.metrics["test_acc"], "seconds": time.perf_counter() - start}
    old = state.get("teacher")
    if old is not None and (old["genome"], old["epochs"]) != (genome, epochs):
        for a in state["archs"]:
            for name in [n for n in a["est"] if n.endswith("+teacher")]:
                del a["est"][name]
    state["teacher"] = info
    return result.model.eval()


def replay_lc(archs: list[dict], stopper: CurveStopper, epochs: int) -> None:
    """What the ``lc`` estimator does, on the recorded (deterministic) full-training curves, in order."""
    finished: list[float] = []
    for a in archs:
        curve = a["full"]["curve"]
        threshold = stopper.threshold(finished)
        rec = {"score": curve[-1][1], "seconds": a["full"]["seconds"], "stopped": False, "predicted": None}
        for i in range(len(curve)):
            stop, pred = stopper.should_stop(
                [c[0] for c in curve[: i + 1]], [c[1] for c in curve[: i + 1]], horizon=float(epochs),
                threshold=threshold,
            )
            if stop:
                rec = {"score": curve[i][1], "seconds": curve[i][2], "stopped": True, "predicted": pred}
                break
        if not rec["stopped"]:
            finished.append(curve[-1][1])
        a["est"]["lc"] = rec


def report(state: dict) -> dict:
    archs = [a for a in state["archs"] if "full" in a]
    full = np.array([a["full"]["val_acc"] for a in archs])
    full_cost = float(np.mean([a["full"]["seconds"] for a in archs]))
    rows = []
    names = list(archs[0]["est"]) if archs else []
    for name in names:
        vals = [a["est"][name] for a in archs if name in a["est"]]
        if len(vals) != len(archs):
            continue
        scores = np.array([v["score"] for v in vals], dtype=np.float64)
        finite = np.isfinite(scores)
        tau = kendalltau(scores[finite], full[finite]).statistic if finite.sum() > 2 else math.nan
        cost = float(np.mean([v["seconds"] for v in vals]))
        row = {"estimator": name, "kendall_tau": float(tau), "mean_seconds": cost,
               "speedup_vs_full": full_cost / cost if cost > 0 else None, "n": int(finite.sum())}
        if name == "lc":
            stopped = [i for i, v in enumerate(vals) if v["stopped"]]
            row["stopped"] = len(stopped)
            # a wrong stop: the candidate's full accuracy would have reached the top-5 of those before it
            wrong = 0
            for i in stopped:
                before = sorted((a["full"]["val_acc"] for a in archs[:i]), reverse=True)
                if len(before) >= 5 and full[i] >= before[4]:
                    wrong += 1
            row["wrong_stops"] = wrong
        if name == "inherit":
            row["mean_inherited_fraction"] = float(np.mean([v.get("inherited_fraction", 0.0) for v in vals]))
        rows.append(row)
    return {"n_archs": len(archs), "full_mean_seconds": full_cost, "full_val_acc_range": [float(full.min()),
            float(full.max())], "rows": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", type=int, default=32)
    p.add_argument("--full-epochs", type=int, default=3)
    p.add_argument("--fraction", type=float, default=1.0, help="share of the training split (1.0 = all 54k)")
    p.add_argument("--max-macs", type=float, default=1e6)
    p.add_argument("--max-params", type=float, default=1e5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=None, help="default: ../shared/data/mnist.npz")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "estimator_correlation.json"))
    p.add_argument("--report-only", action="store_true", help="only print the table of an existing --out")
    p.add_argument("--teacher", nargs="?", const=TEACHER, default=None, metavar="GENOME",
                   help=f"also score with distillation from this chain network (default genome: {TEACHER})")
    p.add_argument("--teacher-epochs", type=int, default=10)
    args = p.parse_args(argv)
    if args.report_only:
        state = json.loads(Path(args.out).read_text())
        replay_lc(state["archs"], CurveStopper(min_epochs=1.0, top_k=5), state["settings"]["full_epochs"])
        state["report"] = report(state)
        Path(args.out).write_text(json.dumps(state, indent=1))
        print_table(state["report"], state["settings"], Path(args.out), state.get("teacher"))
        return 0

    data_path = Path(args.data) if args.data else shared_dir() / "data" / "mnist.npz"
    if not data_path.exists():
        print(f"data not found: {data_path} (set TINYEVO_SHARED)", file=sys.stderr)
        return 2
    data = load_dataset(data_path, seed=0, val_fraction=0.1)
    if args.fraction < 1.0:
        data = subset(data, args.fraction, seed=0)
    space = create_space("chain", input_shape=data.input_shape, num_classes=data.num_classes, max_layers=5,
                         channels=(2, 4, 8, 12, 16, 24, 32))
    full_cfg = TrainConfig(epochs=args.full_epochs, batch_size=128, threads=1)
    settings = {"archs": args.archs, "full_epochs": args.full_epochs, "fraction": args.fraction,
                "max_macs": args.max_macs, "max_params": args.max_params, "seed": args.seed,
                "data": data.summary(), "full_config": asdict(full_cfg)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = json.loads(out.read_text()) if out.exists() else {}
    if state.get("settings") != settings:
        state = {"settings": settings,
                 "archs": make_archs(space, args.archs, seed=args.seed, max_macs=args.max_macs,
                                     max_params=args.max_params)}
    for a in state["archs"]:
        a.setdefault("est", {})

    one = replace(full_cfg, epochs=1)
    trained = {
        "epochs-1": TrainingEstimator(config=one, name="epochs-1"),
        "data-10%": TrainingEstimator(config=full_cfg, fidelity=Fidelity(data_fraction=0.1), name="data-10%"),
        "lowfi": low_fidelity(config=full_cfg),
        "lowres": low_resolution(config=full_cfg),
    }
    if args.teacher:
        teacher = train_teacher(state, args.teacher, args.teacher_epochs, data, full_cfg)
        trained["epochs-1+teacher"] = TrainingEstimator(config=one, name="epochs-1+teacher", teacher=teacher)
        trained["data-10%+teacher"] = TrainingEstimator(config=full_cfg, fidelity=Fidelity(data_fraction=0.1),
                                                        name="data-10%+teacher", teacher=teacher)
    store = WeightStore()
    inherit = TrainingEstimator(config=one, inherit=store, name="inherit")

    def save() -> None:
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(out)

    t0 = time.perf_counter()
    for i, a in enumerate(state["archs"]):
        ir = space.decode(space.parse(a["genome"]))
        if "full" not in a:
            a["full"] = full_training(ir, data, full_cfg)
        for name, est in trained.items():
            if name not in a["est"]:
                start = time.perf_counter()
                m = est.evaluate(ir, data, seed=0)
                a["est"][name] = {"score": m["val_acc"], "seconds": time.perf_counter() - start}
        # inheritance needs the parent's weights from this session: recompute (cheap) when resuming
        start = time.perf_counter()
        m = inherit.evaluate(ir, data, seed=0, context=EvalContext(
            genome=a["genome"], parents=(a["parent"],) if a["parent"] else ()))
        a["est"]["inherit"] = {"score": m["val_acc"], "seconds": time.perf_counter() - start,
                               "inherited_fraction": m["inherited_fraction"]}
        for proxy in ("synflow", "naswot", "grad_norm"):
            start = time.perf_counter()
            s = proxy_score(proxy, ir, data, seed=0)
            a["est"][proxy.replace("_", "-")] = {"score": s, "seconds": time.perf_counter() - start}
        a["est"]["params"] = {"score": a["params"], "seconds": 0.0}
        a["est"]["macs"] = {"score": a["macs"], "seconds": 0.0}
        save()
        elapsed = time.perf_counter() - t0
        print(f"[{i + 1}/{len(state['archs'])}] {elapsed:7.0f}s full={a['full']['val_acc']:.4f} "
              f"({a['full']['seconds']:.0f}s) {a['genome']}", flush=True)

    replay_lc(state["archs"], CurveStopper(min_epochs=1.0, top_k=5), args.full_epochs)
    state["report"] = report(state)
    save()
    print_table(state["report"], settings, out, state.get("teacher"))
    return 0


def print_table(r: dict, settings: dict, out: Path, teacher: dict | None = None) -> None:
    print(f"\n{r['n_archs']} chain architectures on {settings['data']}")
    if teacher is not None:
        print(f"teacher {teacher['genome']}: {teacher['epochs']} epochs, val acc {teacher['val_acc']:.4f}, "
              f"{teacher['seconds']:.0f} s")
    print(f"full training: {settings['full_epochs']} epochs on the training split (fraction "
          f"{settings['fraction']:g}), mean {r['full_mean_seconds']:.1f} s per architecture, "
          f"val acc {r['full_val_acc_range'][0]:.4f} .. {r['full_val_acc_range'][1]:.4f}")
    print(f"{'estimator':<16} {'tau':>7} {'mean s':>9} {'speed-up':>9}  notes")
    for row in r["rows"]:
        notes = ""
        if "stopped" in row:
            notes = f"stopped {row['stopped']}, wrong stops {row['wrong_stops']}"
        if "mean_inherited_fraction" in row:
            notes = f"mean inherited fraction {row['mean_inherited_fraction']:.2f}"
        speed = row["speedup_vs_full"]
        speed_text = f"{speed:9.1f}" if speed is not None else f"{'-':>9}"
        tau, secs = row["kendall_tau"], row["mean_seconds"]
        print(f"{row['estimator']:<16} {tau:7.3f} {secs:9.3f} {speed_text}  {notes}")
    print(f"\nJSON: {out}")


if __name__ == "__main__":
    raise SystemExit(main())
