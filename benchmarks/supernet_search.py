"""Supernet search vs training-based search at equal total CPU time, and one supernet for three devices
(issue 20, benchmark 2; see docs/supernet.md).

* Data: a stratified subset of ``../shared/data/fashion_mnist.npz``: ``--fraction`` of the 60,000 training images
  (the run carves its 10 % validation split from them) and ``--test`` test images, written to
  ``benchmarks/out/supernet_search/fmnist_<fraction>_<test>[_s<seed>].npz``. Both arms and all searches use this file.
* Every evaluation, training and scoring step of both arms and of the other devices runs with ONE torch thread
  (``[train] threads = 1`` in the run config, ``supernet train --threads 1``), so CPU time is comparable: with
  ``--workers 1`` a run otherwise gives its one evaluation all CPUs' threads, which on a loaded machine costs more
  CPU per candidate, not less.
* Arm ``supernet`` (A), on the first device (default nrf52840 with a 20 KB SRAM / 64 KB flash model budget: about
  40 % of the space's random networks exceed it, so the limits bind; the JSON reports the feasible fraction of
  ``--feasible-samples`` random genomes under the cost model and the search's own infeasible count):
  ``tinyevo supernet train`` (``--supernet-epochs``, sandwich rule with 4 random sub-networks, one torch thread) of
  a small MBConv ``blocks`` sub-space (that of ``supernet_rank.py``), then ``tinyevo search --supernet`` with
  ``--candidates`` scored candidates (``--arm-workers`` workers, one thread each) and the final training (``--final-epochs``, inheriting the
  supernet's weights).
* Arm ``training`` (B): ``tinyevo search`` of the same space with the default strategy and estimator (the same
  workers, one thread each), run at the same time as A. Each time B commits a trial, the benchmark copies its run
  database (SQLite online backup) and samples B's process-tree CPU (``/proc``); once B's CPU reaches A's total, B
  is stopped (SIGTERM, which ``tinyevo`` handles like Ctrl-C; a SIGINT would be ignored when the benchmark runs as a
  background job, whose children inherit SIGINT ignored). B's search counts as stopped at X = A's total CPU less
  B's final training CPU: the copy it leaves is the latest taken at or below X (the evaluations still running at X
  are lost, as with any budget that stops a search), and B's final training runs on that copy with ``tinyevo
  resume COPY --time 0.001s`` (the stored trials, no new batch). X needs the final training's CPU, so it is found
  by fixed point: first guess A's final training's CPU, then the measured one, until the copy at X is the copy that
  was trained (at most three tries, all in the JSON). So both arms' total CPU is equal by construction, from
  measured numbers; B's search past X is the benchmark's way to find the stopping point and is not counted
  (``whole_search_until_stopped`` records it; ``search_cpu_s_lost_in_flight`` is X less the CPU at B's last commit).
* ``--rerank K``: also arm **A'** -- A's search (its trials and its search CPU, without A's final training) with its
  K best candidates scored again after ``--rerank-steps`` (100) fine-tuning steps from their inherited weights
  (``tinyevo search --supernet --init run:A:K --budget K`` with ``[supernet_scoring] finetune_steps``), whose best is
  retrained as A's was; its total CPU is the supernet's training + A's search + that re-ranking search with its final
  training -- and arm **B'**: arm B again, alone, stopped at A''s total in the same way (``training_at_<A' key>``).
* For each arm: int8 test accuracy of the retrained model on TFLite-Micro (export -> .tflite -> TFLM interpreter,
  ``benchmarks/_realdata.py``), whether the limits hold (cost model), CPU time (``getrusage`` of the child processes)
  and wall time.
* After both arms, devices 2 and 3 (default stm32f412 at 16 KB / 48 KB and stm32f746 at 24 KB / 80 KB model budgets:
  limits that bind, the largest network needs 53 KB / 239 KB) are searched with the SAME
  supernet, ``--candidates`` evaluated trials each, ``--device-workers`` (2) workers, no final training: wall time
  and CPU seconds (``getrusage`` of the child processes; CPU time is the primary cost, wall time depends on the
  other load, so the load average before and after each step is recorded) and candidates scored.
  ``--devices-from DIR`` runs only this part, from an existing supernet directory (e.g. the ``sn_*`` directory of
  an earlier run), and writes its own JSON; ``--no-devices`` leaves it out of the arms' run.

Every step is written to the JSON at once; a step whose record is already there (same settings) is skipped, so a
killed run continues. The issue's full configuration (2,000 candidates per device, full training split)::

    nice -n 10 python benchmarks/supernet_search.py --fraction 1.0 --supernet-epochs 10 --candidates 2000 \
        --test 10000 --out benchmarks/results/supernet_search_full.json

The larger configuration that was run on the shared 2-core machine (``supernet_search.json``; ``--seed 1`` / ``2``:
``supernet_search_seed1.json`` / ``_seed2.json``, each with its own data subset, supernet and searches)::

    nice -n 5 python benchmarks/supernet_search.py --fraction 0.15 --supernet-epochs 5 --candidates 2000 \
        --arm-candidates 500 --arm-workers 2 --test 3000 --final-epochs 8 --no-devices --rerank 10 \
        --out benchmarks/results/supernet_search.json

The small configuration (an earlier version: no binding limits, 64 KB / 256 KB, two torch threads per evaluation
with one worker)::

    nice -n 10 python benchmarks/supernet_search.py --fraction 0.1 --supernet-epochs 4 --candidates 300 \
        --test 2000 --final-epochs 5 --device nrf52840:64KB:256KB stm32f412:96KB:512KB stm32f746 \
        --out benchmarks/results/supernet_search_small.json

Devices 2 and 3 only, from an existing supernet (one command)::

    nice -n 5 python benchmarks/supernet_search.py --devices-from benchmarks/out/supernet_search/sn_f0.15_e5_r4_s0 \
        --fraction 0.15 --test 3000 --candidates 2000 --out benchmarks/results/supernet_search_devices.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _realdata import int8_accuracy, shared_dir, summarise

from tinyevo.run.view import open_run
from tinyevo.storage import count_rows

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
    # one file per seed (seed 0 keeps the name it always had): runs of different seeds at once must not share it
    out = WORK / f"fmnist_{fraction}_{n_test}{f'_s{seed}' if seed else ''}.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.stem}.{os.getpid()}.tmp.npz")  # atomic: a concurrent run may be reading `out`
    np.savez(tmp, x_train=d["x_train"][tr], y_train=d["y_train"][tr], x_test=d["x_test"][te], y_test=d["y_test"][te])
    os.replace(tmp, out)
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


def tree_cpu_s(root: int) -> float:
    """CPU seconds (user + system) of process ``root`` and its live descendants, with the reaped children of each
    (``/proc/PID/stat`` utime, stime, cutime, cstime); 0 for what has already exited."""
    parent: dict[int, int] = {}
    stats: dict[int, list[str]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                f = (d / "stat").read_text()
            except OSError:
                continue
            fields = f[f.rindex(")") + 2:].split()  # after "pid (comm) "
            stats[int(d.name)], parent[int(d.name)] = fields, int(fields[1])
    tree, frontier = {root}, [root]
    while frontier:
        kids = [pid for pid, pp in parent.items() if pp in frontier and pid not in tree]
        tree.update(kids)
        frontier = kids
    ticks = sum(sum(int(x) for x in stats[pid][11:15]) for pid in tree if pid in stats)
    return ticks / os.sysconf("SC_CLK_TCK")


DB = "trials.db"  # a run's database (tinyevo.storage.DB_NAME)


def snapshot_db(db: Path, dst: Path) -> None:
    """A consistent copy of the live run database ``db`` (SQLite's online backup; the run writes in WAL mode)."""
    src = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    out = sqlite3.connect(dst)
    try:
        src.backup(out)
    finally:
        out.close()
        src.close()


class Child:
    """``tinyevo ARGS`` started in the background; ``done()`` reaps it with ``os.wait4`` (its own rusage: its CPU
    and that of the descendants it waited for, as ``getrusage(RUSAGE_CHILDREN)`` counts), ``cpu()`` is that
    rusage once done and the live process tree's CPU before, ``interrupt()`` stops it like Ctrl-C."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self._fh = log.open("w")
        self._fh.write("$ tinyevo " + " ".join(args) + "\n")
        self._fh.flush()
        self.t0 = self._t0 = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-m", "tinyevo.cli.main", *args], stdout=self._fh,
                                     stderr=subprocess.STDOUT, cwd=ROOT)
        self.rc: int | None = None
        self.wall = 0.0
        self._cpu = 0.0

    def done(self) -> bool:
        if self.rc is None:
            pid, status, ru = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                self.rc = self.proc.returncode = os.waitstatus_to_exitcode(status)
                self.wall, self._cpu = time.perf_counter() - self._t0, ru.ru_utime + ru.ru_stime
                self._fh.close()
        return self.rc is not None

    def cpu(self) -> float:
        return self._cpu if self.rc is not None else tree_cpu_s(self.proc.pid)

    def interrupt(self) -> None:
        """Stop it like Ctrl-C. SIGTERM, not SIGINT: a benchmark started as a background job (``nohup ... &``)
        passes SIGINT on ignored, so a SIGINT would not stop the search (``tinyevo.cli._signals``)."""
        if self.rc is None:
            self.proc.send_signal(signal.SIGTERM)


def add_int8(rec: dict[str, Any], run_dir: Path, skip: bool) -> None:
    """The int8 TFLite-Micro test accuracy of ``run_dir``'s model into ``rec`` (after the timed commands)."""
    if skip or not rec.get("final"):
        return
    try:
        rec["int8"] = int8_accuracy(run_dir, summarise(run_dir))
    except Exception as exc:  # noqa: BLE001 - say why the int8 number is missing
        rec["int8"] = {"int8_test_acc": None, "int8_note": f"not measured: {type(exc).__name__}: {exc}"}


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


def limit_flags(spec: str) -> list[str]:
    """``DEV[:SRAM:FLASH]`` as ``tinyevo search`` flags."""
    dev, *rest = spec.split(":")
    return ["--device", dev, *(["--sram", rest[0], "--flash", rest[1]] if rest else [])]


def feasible_fraction(sn_dir: Path, spec: str, n: int, seed: int) -> dict[str, Any]:
    """Fraction of ``n`` uniformly sampled genomes of the supernet's space that meet ``spec``'s SRAM and flash
    limits under the cost model (the search's default planner and precision); an independent look at whether the
    limits bind, next to the search's own infeasible count (which follows the strategy, not the space)."""
    from tinyevo.cost import estimate_cost
    from tinyevo.devices import get_device, parse_size
    from tinyevo.spaces import create_space

    info = json.loads((sn_dir / "supernet.json").read_text())["space"]
    opts = {k: (tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v)
            for k, v in info.items()}
    space = create_space("blocks", **opts)
    dev, *rest = spec.split(":")
    profile = get_device(dev)
    sram = parse_size(rest[0]) if rest else profile.sram_bytes
    flash = parse_size(rest[1]) if rest else profile.flash_bytes
    rng = np.random.default_rng(seed)
    ok_sram = ok_flash = ok = 0
    for _ in range(n):
        r = estimate_cost(space.decode(space.sample(rng)), device=profile)
        s_ok, f_ok = r.peak_sram_bytes <= sram, r.flash_bytes <= flash
        ok_sram, ok_flash, ok = ok_sram + s_ok, ok_flash + f_ok, ok + (s_ok and f_ok)
    from tinyevo.supernet import load_supernet

    big = load_supernet(sn_dir)[0].largest()
    r = estimate_cost(space.decode(big), device=profile)
    return {"samples": n, "sram_limit": sram, "flash_limit": flash, "feasible": round(ok / n, 4),
            "sram_ok": round(ok_sram / n, 4), "flash_ok": round(ok_flash / n, 4),
            "largest": {"genome": str(big), "peak_sram_bytes": r.peak_sram_bytes, "flash_bytes": r.flash_bytes,
                        "fits": r.peak_sram_bytes <= sram and r.flash_bytes <= flash}}


def thread_config(extra: str = "", *, name: str = "space") -> Path:
    """A run config with one torch thread per evaluation and per final training (and ``extra`` TOML, in a file of
    its own ``name``)."""
    cfg = WORK / f"threads1{'_' + name if extra else ''}.toml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(extra + "[train]\nthreads = 1\n")
    return cfg


def start_b(sn_dir: Path, common: list[str], a: argparse.Namespace, run_b: Path, snap_dir: Path) -> Child:
    """Arm B: a training-based search of the supernet's space (default strategy and estimator, one torch thread per
    evaluation, an unbounded budget: it is stopped at its CPU cap), with its snapshot directory made empty."""
    shutil.rmtree(run_b, ignore_errors=True)
    shutil.rmtree(snap_dir, ignore_errors=True)
    snap_dir.mkdir(parents=True)
    sn_space = json.loads((sn_dir / "supernet.json").read_text())["space"]
    opts = {k: v for k, v in sn_space.items() if k not in ("input_shape", "num_classes")}
    space_cfg = thread_config('space = "blocks"\n[space_options]\n' + "".join(
        f"{k} = {json.dumps(v)}\n" for k, v in opts.items()))
    return Child(["search", "--config", str(space_cfg), *common, *limit_flags(a.device[0]), "--budget", "100000",
                  "--workers", str(a.arm_workers), "--final-epochs", str(a.final_epochs), "--out", str(run_b)],
                 run_b.with_name(run_b.name + ".log"))


def follow_b(child_b: Child, run_b: Path, snap_dir: Path, snaps: list[dict[str, Any]], cap: float | None) -> bool:
    """One look at a running arm B: a snapshot of its database (with its process-tree CPU) when it has committed
    a trial since the last one; stop it (SIGTERM, as Ctrl-C) once its CPU reaches ``cap`` (None: not known yet).
    Returns whether it was stopped."""
    n = count_rows(run_b / DB)
    if n > (snaps[-1]["trials"] if snaps else 0):
        f = snap_dir / f"{n:05d}.db"
        snapshot_db(run_b / DB, f)
        snaps.append({"trials": n, "cpu_s": round(child_b.cpu(), 2),  # sampled after the copy
                      "wall_s": round(time.perf_counter() - child_b.t0, 1), "file": f.name})
    # B's search past the chosen snapshot is not counted, so it only needs to reach the cap
    if cap is not None and child_b.cpu() >= cap:
        child_b.interrupt()
        return True
    return False


def finish_b(whole: dict[str, Any], run_b: Path, snap_dir: Path, snaps: list[dict[str, Any]], a_total: float,
             a_final: float, name: str, known: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Arm B's record at A's total CPU ``a_total``. ``whole``: B's search until it was stopped (``exit_code``,
    ``cpu_s``, ``wall_s``, ``stopped_at_cap``, ``log``).

    B's search counts as stopped at X = ``a_total`` less its final training's CPU, which depends on the winner at
    X: found by fixed point from the first guess ``a_final`` (at most three tries, in ``WORK/NAME_finalK``, each a
    ``resume --time 0.001s`` of the snapshot that a stop at X leaves). Where no stop point is consistent (winners
    whose final trainings differ in cost make X jump between two snapshots), B stops at the last committed trial
    whose search CPU plus its own final training still fits within ``a_total`` (B gets at most A's CPU, less by
    under one trial's evaluation), trying the snapshots from the latest down (at most six final trainings in all).
    ``known``: tries of an earlier call (their directories reused, not retrained)."""
    if whole["exit_code"] not in (0, 143):
        raise RuntimeError(f"arm B's search failed (exit {whole['exit_code']}); see {whole['log']}")
    if not snaps:
        raise RuntimeError(f"arm B stored no trial before its CPU cap; see {whole['log']}")
    tries: list[dict[str, Any]] = []
    done = {t["snapshot"]["file"]: t for t in known or () if (ROOT / t["dir"] / DB).exists()}

    def stop_point(final_cpu: float) -> tuple[float, dict[str, Any]]:
        """B's search CPU if its final training costs ``final_cpu`` (A's total less it), and the snapshot
        that a stop at that CPU leaves (the trials committed by then; evaluations still running are lost)."""
        x = a_total - final_cpu
        return x, ([s for s in snaps if s["cpu_s"] <= x] or snaps[:1])[-1]

    def final_of(snap: dict[str, Any], guess: float) -> dict[str, Any]:
        """The final training of the snapshot ``snap`` (run once; reused from ``known``)."""
        if snap["file"] in done:
            t = dict(done[snap["file"]], expected_final_cpu_s=round(guess, 1), snapshot=snap)
        else:
            d = WORK / f"{name}_final{len(tries) + len(done)}"
            shutil.rmtree(d, ignore_errors=True)
            shutil.copytree(run_b, d, ignore=shutil.ignore_patterns(f"{DB}*"))
            shutil.copy2(snap_dir / snap["file"], d / DB)
            wall2, cpu2 = cli(["resume", str(d), "--time", "0.001s", "--quiet"], d.with_name(d.name + ".log"))
            t = {"snapshot": snap, "dir": str(d.relative_to(ROOT)), "expected_final_cpu_s": round(guess, 1),
                 "final_cpu_s": round(cpu2, 1), "final_wall_s": round(wall2, 1)}
            done[snap["file"]] = t
        x, at_x = stop_point(t["final_cpu_s"])
        t.update(search_cpu_s=round(x, 1), consistent=at_x is snap and x >= snap["cpu_s"])
        tries.append(t)
        return t

    guess = a_final  # B's final training costs about what A's does (first guess)
    for _ in range(3):
        _, snap = stop_point(guess)
        if any(t["snapshot"] is snap for t in tries):
            break  # already tried: the final CPUs measured alternate between two snapshots
        t = final_of(snap, guess)
        if t["consistent"]:  # a stop at A's total less this final training leaves this snapshot
            break
        guess = t["final_cpu_s"]
    best = next((t for t in tries if t["consistent"]), None)
    rule = "consistent stop point"
    if best is None:  # the last commit whose own final training still fits within A's total
        rule = "last commit whose search CPU + own final training fits within A's total"
        cheapest = min(t["final_cpu_s"] for t in tries)
        for snap in reversed(snaps):
            if snap["cpu_s"] + cheapest > a_total:
                continue  # no final training measured is cheap enough to fit after it
            t = next((t for t in tries if t["snapshot"] is snap), None)
            if t is None:
                if len(tries) >= 6:
                    break
                t = final_of(snap, a_total - snap["cpu_s"])
            if snap["cpu_s"] + t["final_cpu_s"] <= a_total:
                best = dict(t, search_cpu_s=snap["cpu_s"])
                break
        if best is None:  # nothing fits (or out of tries): the closest, as the JSON then says
            rule = "closest (nothing fitted within the tries)"
            best = dict(min(tries, key=lambda t: abs(t["snapshot"]["cpu_s"] + t["final_cpu_s"] - a_total)))
            best["search_cpu_s"] = best["snapshot"]["cpu_s"]
    d = ROOT / best["dir"]
    snap = best["snapshot"]
    total = best["search_cpu_s"] + best["final_cpu_s"]
    rec = run_record(d, snap["wall_s"] + best["final_wall_s"], total, int8=False)
    rec["run_dir"] = best["dir"]
    rec["search_cpu_s"] = round(best["search_cpu_s"], 1)  # the CPU at which B's search counts as stopped
    rec["search_cpu_s_at_last_commit"] = snap["cpu_s"]  # ... its last committed trial before that
    rec["search_cpu_s_lost_in_flight"] = round(best["search_cpu_s"] - snap["cpu_s"], 1)
    rec["search_wall_s_at_last_commit"] = snap["wall_s"]
    rec["search_trials_stored"] = snap["trials"]
    rec["resume_and_final_cpu_s"], rec["resume_and_final_wall_s"] = best["final_cpu_s"], best["final_wall_s"]
    rec["cpu_s_total"], rec["wall_s_total"] = rec.pop("cpu_s"), rec.pop("wall_s")
    rec["cpu_ratio_to_A"] = round(total / a_total, 4)
    rec["stop_point_consistent"] = best["consistent"]
    rec["stop_rule"] = rule
    rec["final_tries"] = tries
    rec["snapshots"] = snaps
    rec["whole_search_until_stopped"] = {k: v for k, v in whole.items() if k != "log"} | {
        "snapshots": len(snaps), "trials": snaps[-1]["trials"]}
    return rec


def whole_b(child_b: Child, stopped: bool) -> dict[str, Any]:
    """What :func:`finish_b` needs of B's (ended) search."""
    return {"cpu_s": round(child_b.cpu(), 1), "wall_s": round(child_b.wall, 1), "exit_code": child_b.rc,
            "stopped_at_cap": stopped, "log": str(child_b.log)}


def refinish_b(rec: dict[str, Any], run_b: Path, snap_dir: Path, a_total: float, name: str) -> dict[str, Any]:
    """``rec`` (an arm B record) redone by :func:`finish_b` from its stored snapshots, reusing its final tries."""
    whole = dict(rec["whole_search_until_stopped"], log="(stored record)")
    snaps = rec["snapshots"]
    keep = {k: rec[k] for k in ("concurrent_with_A", "load_average_before", "load_average_after") if k in rec}
    new = finish_b(whole, run_b, snap_dir, snaps, a_total, rec["final_tries"][0]["expected_final_cpu_s"], name,
                   known=rec["final_tries"])
    return new | keep


def rerank_dirs(tag: str, a: argparse.Namespace) -> tuple[Path, Path]:
    """The run directories of arms A' and B' (``--rerank``, ``--rerank-steps``)."""
    suffix = f"{tag}_k{a.rerank}_s{a.rerank_steps}"
    return WORK / f"A2_{suffix}", WORK / f"B2_{suffix}"


def rerank_arms(arms: dict[str, Any], result: dict[str, Any], sn_dir: Path, run_a: Path, common: list[str],
                a: argparse.Namespace, tag: str, save: Any) -> None:
    """A': arm A's search (its trials, its search CPU) with its ``--rerank`` best candidates scored again after
    ``--rerank-steps`` steps of fine-tuning from their inherited weights (``tinyevo search --supernet --init
    run:A:K --budget K`` with ``[supernet_scoring] finetune_steps``), whose best is then retrained as A's was. Its
    total CPU: the supernet's training + A's search + the re-ranking search with its final training. B': arm B
    again, alone, stopped at A''s total (as B at A's)."""
    rec_a = arms["supernet"]
    if rec_a.get("search_cpu_s") is None:
        raise RuntimeError("A' needs arm A's search CPU (measured when its final training started)")
    key = f"supernet_rerank{a.rerank}_steps{a.rerank_steps}"
    run_a2, run_b = rerank_dirs(tag, a)
    if key not in arms:
        shutil.rmtree(run_a2, ignore_errors=True)
        cfg = thread_config(f"[supernet_scoring]\nfinetune_steps = {a.rerank_steps}\n", name="rerank")
        load0 = os.getloadavg()
        wall, cpu = cli(["search", "--supernet", str(sn_dir), *common, "--config", str(cfg),
                         *limit_flags(a.device[0]), "--init", f"run:{run_a}:{a.rerank}", "--budget", str(a.rerank),
                         "--workers", str(a.arm_workers), "--final-epochs", str(a.final_epochs), "--out",
                         str(run_a2)], run_a2.with_name(run_a2.name + ".log"))
        rec = run_record(run_a2, wall, cpu, int8=False)
        rec["rerank_and_final_cpu_s"], rec["rerank_and_final_wall_s"] = rec.pop("cpu_s"), rec.pop("wall_s")
        rec["run_dir"] = str(run_a2.relative_to(ROOT))
        rec["reranked"] = {"candidates": a.rerank, "finetune_steps": a.rerank_steps, "from": "arm A's best"}
        inherited = {t.genome: t.metrics.get("val_acc") for t in open_run(run_a).trials if t.ok}
        rec["rerank_table"] = sorted(  # each re-scored candidate: its score in A, and after the fine-tuning
            ({"genome": t.genome, "inherited_val_acc": inherited.get(t.genome),
              "finetuned_val_acc": t.metrics.get("val_acc")} for t in open_run(run_a2).trials if t.ok),
            key=lambda r: -(r["finetuned_val_acc"] or 0.0))
        rec["a_winner_kept"] = rec["best_genome"] == rec_a["best_genome"]
        rec["cpu_s_total"] = round(result["supernet_train"]["cpu_s"] + rec_a["search_cpu_s"]
                                   + rec["rerank_and_final_cpu_s"], 1)
        rec["cpu_s_parts"] = {"supernet_train": result["supernet_train"]["cpu_s"], "search": rec_a["search_cpu_s"],
                              "rerank_and_final": rec["rerank_and_final_cpu_s"]}
        rec["load_average_before"], rec["load_average_after"] = load0, os.getloadavg()
        add_int8(rec, run_a2, a.no_int8)
        arms[key] = rec
        save()
    rec_a2 = arms[key]
    key_b = f"training_at_{key}"
    if key_b not in arms:
        snap_dir = run_b.with_name(run_b.name + "_snapshots")
        child_b, snaps, stopped = start_b(sn_dir, common, a, run_b, snap_dir), [], False
        load0 = os.getloadavg()
        while not child_b.done():
            if not stopped:
                stopped = follow_b(child_b, run_b, snap_dir, snaps, rec_a2["cpu_s_total"])
            time.sleep(0.5)
        final_guess = arms["training"]["resume_and_final_cpu_s"] if "training" in arms else 0.2 * rec_a2["cpu_s_total"]
        rec = finish_b(whole_b(child_b, stopped), run_b, snap_dir, snaps, rec_a2["cpu_s_total"], final_guess,
                       run_b.name)
        rec["concurrent_with_A"] = False
        rec["load_average_before"], rec["load_average_after"] = load0, os.getloadavg()
        add_int8(rec, ROOT / rec["run_dir"], a.no_int8)
        arms[key_b] = rec
        save()


def search_devices(result: dict[str, Any], specs: list[str], sn_dir: Path, data: Path, a: argparse.Namespace,
                   tag: str, save: Any) -> None:
    """Devices 2 and 3: ``--candidates`` evaluated trials each from the supernet in ``sn_dir``, no final training."""
    devices = result.setdefault("other_devices", {})
    common = ["--data", str(data), "--seed", str(a.seed), "--quiet", "--config", str(thread_config())]
    for spec in specs:
        if spec in devices:
            continue
        name = spec.split(":")[0]
        run = WORK / f"D_{name}_{tag}"
        shutil.rmtree(run, ignore_errors=True)
        load0 = os.getloadavg()
        wall, cpu = cli(["search", "--supernet", str(sn_dir), *common, *limit_flags(spec), "--budget",
                         str(a.candidates), "--workers", str(a.device_workers), "--no-final", "--out", str(run)],
                        WORK / f"D_{name}_{tag}.log")
        rec = run_record(run, wall, cpu, int8=False)
        rec["workers"], rec["torch_threads_per_worker"] = a.device_workers, 1
        rec["load_average_before"], rec["load_average_after"] = load0, os.getloadavg()
        rec["wall_s_per_candidate"] = round(wall / max(rec["scored"], 1), 3)
        rec["cpu_s_per_candidate"] = round(cpu / max(rec["scored"], 1), 3)
        rec["goal_10min_2000"] = rec["wall_s"] <= 600 and rec["scored"] >= 2000
        rec["space_feasible"] = feasible_fraction(sn_dir, spec, a.feasible_samples, a.seed)
        rec["winner_is_largest"] = rec["best_genome"] == rec["space_feasible"]["largest"]["genome"]
        rec["winner_use_of_limits"] = {m: round(rec["cost"][m] / b, 3) for m, b in rec["limits"].items()
                                       if rec["cost"].get(m) is not None}
        devices[spec] = rec
        save()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=shared_dir() / "data" / "fashion_mnist.npz")
    p.add_argument("--fraction", type=float, default=1.0, help="fraction of the 60,000 training images used")
    p.add_argument("--test", type=int, default=10000, help="test images (int8 accuracy on TFLite-Micro)")
    p.add_argument("--supernet-epochs", type=int, default=10)
    p.add_argument("--random-subnets", type=int, default=4)
    p.add_argument("--candidates", type=int, default=2000, help="evaluated trials per supernet search")
    p.add_argument("--arm-candidates", type=int, help="evaluated trials of arm A's search (default --candidates)")
    p.add_argument("--arm-workers", type=int, default=1,
                   help="workers (one torch thread each) of both arms' searches; CPU time is compared, not wall")
    p.add_argument("--final-epochs", type=int, default=10)
    p.add_argument("--device-workers", type=int, default=2, help="workers of the device 2 and 3 searches")
    p.add_argument("--device", nargs=3, default=["nrf52840:20KB:64KB", "stm32f412:16KB:48KB", "stm32f746:24KB:80KB"],
                   metavar="DEV[:SRAM:FLASH]", help="the arms' device, then the two other devices")
    p.add_argument("--feasible-samples", type=int, default=2000,
                   help="random genomes for the feasible fraction of the first device's limits")
    p.add_argument("--devices-from", type=Path, metavar="DIR",
                   help="only search devices 2 and 3, from the trained supernet in DIR (no arms)")
    p.add_argument("--no-devices", action="store_true",
                   help="the arms only (run devices 2 and 3 with --devices-from, e.g. at the same time)")
    p.add_argument("--supernet-only", action="store_true", help="train the supernet (and record it), then stop")
    p.add_argument("--rerank", type=int, default=0, metavar="K",
                   help="also arm A': A's K best candidates scored again after --rerank-steps fine-tuning steps "
                        "from their inherited weights, the best retrained; and arm B again at A''s total CPU")
    p.add_argument("--rerank-steps", type=int, default=100)
    p.add_argument("--refinish-b", action="store_true",
                   help="redo the stop point of B records that had no consistent one, from their stored snapshots "
                        "(the last commit whose own final training fits within A's total)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-int8", action="store_true")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "supernet_search.json")
    a = p.parse_args()

    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()
                if k not in ("out", "supernet_only")}
    settings["data"] = a.data.name
    result: dict[str, Any] = {}
    sn_keys = ("data", "fraction", "test", "supernet_epochs", "random_subnets", "seed", "devices_from")
    if a.out.exists():
        old = json.loads(a.out.read_text())
        same = ("rerank", "rerank_steps", "refinish_b")  # A' and B' are keyed by them: other settings equal, A and B stand
        if {k: v for k, v in old.get("settings", {}).items() if k not in same} == {
                k: v for k, v in settings.items() if k not in same}:
            result = old
        elif all(old.get("settings", {}).get(k) == settings[k] for k in sn_keys) and "supernet_train" in old:
            result = {"supernet_train": old["supernet_train"]}  # the same supernet: only the searches change
            if ("first_device_space_feasible" in old and old["settings"].get("device", [None])[0] == a.device[0]
                    and old["settings"].get("feasible_samples") == a.feasible_samples):
                result["first_device_space_feasible"] = old["first_device_space_feasible"]
    result["settings"] = settings
    result["command"] = " ".join(["python", *sys.argv])
    result["full_command"] = ("nice -n 10 python benchmarks/supernet_search.py --fraction 1.0 --supernet-epochs 10 "
                              "--candidates 2000 --test 10000 --out benchmarks/results/supernet_search_full.json")
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "torch_threads_per_eval": 1,
                         "load_average_at_start": os.getloadavg()}

    def save() -> None:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=2, default=str) + "\n")

    tag = f"f{a.fraction}_e{a.supernet_epochs}_r{a.random_subnets}_s{a.seed}"
    data = make_data(a.data, a.fraction, a.test, a.seed)
    result["data"] = {"file": str(data.relative_to(ROOT)), "train_incl_val": round(a.fraction * 60000) // 10 * 10,
                      "test": min(a.test, 10000)}

    if a.devices_from is not None:  # only devices 2 and 3, from an existing supernet
        sn_dir = a.devices_from.resolve()
        result["supernet"] = {"dir": str(sn_dir.relative_to(ROOT) if sn_dir.is_relative_to(ROOT) else sn_dir),
                              "info": {k: v for k, v in json.loads((sn_dir / "supernet.json").read_text()).items()
                                       if k != "space"}}
        search_devices(result, a.device[1:], sn_dir, data, a, f"from_{sn_dir.name}", save)
        result["load_average_at_end"] = os.getloadavg()
        save()
        print(json.dumps(result["other_devices"], indent=1, default=str)[:4000])
        return

    common = ["--data", str(data), "--seed", str(a.seed), "--quiet"]
    sn_dir = WORK / f"sn_{tag}"

    # --- A.1 the supernet --------------------------------------------------------------------------------
    # its record also lies beside it (sn_TAG.record.json), so a supernet trained once serves every later run
    sn_record = WORK / f"sn_{tag}.record.json"
    if sn_record.is_file() and (sn_dir / "supernet.pt").exists():  # what trained THIS supernet
        result["supernet_train"] = json.loads(sn_record.read_text())
    if "supernet_train" not in result or not (sn_dir / "supernet.pt").exists():
        shutil.rmtree(sn_dir, ignore_errors=True)
        load0 = os.getloadavg()
        wall, cpu = cli(["supernet", "train", "--data", str(data), *SPACE_FLAGS, "--epochs", str(a.supernet_epochs),
                         "--random-subnets", str(a.random_subnets), "--threads", "1", "--seed", str(a.seed),
                         "--quiet", "--out", str(sn_dir)], WORK / f"sn_{tag}.log")
        result["supernet_train"] = {"dir": str(sn_dir.relative_to(ROOT)), "wall_s": round(wall, 1),
                                    "cpu_s": round(cpu, 1), "torch_threads": 1, "load_average_before": load0,
                                    "load_average_after": os.getloadavg()}
        sn_record.write_text(json.dumps(result["supernet_train"], indent=1) + "\n")
        save()
    if a.supernet_only:
        save()
        return
    if "first_device_space_feasible" not in result:
        result["first_device_space_feasible"] = feasible_fraction(sn_dir, a.device[0], a.feasible_samples, a.seed)
        save()

    # --- A.2 and B at the same time -----------------------------------------------------------------------
    # A: search with supernet scoring + final training (inheriting its weights). B: training-based search, run at
    # the same time; its committed trials are snapshotted (the run database, with B's process-tree CPU at that
    # moment), and it is stopped (SIGTERM, as Ctrl-C) once its CPU reaches A's total (while A runs: the supernet's
    # CPU + A's CPU so far). Then B's final training (`resume --time 0.001s`: the stored trials, no new batch) runs
    # from the latest snapshot whose CPU plus the expected final-training CPU is within A's total; if the total
    # misses A's by more than --cpu-tolerance, it is redone from the snapshot that the measured final CPU points to
    # (at most 3 tries, the closest is kept). So B's counted CPU (search up to its snapshot + final training)
    # equals A's within the tolerance by construction; B's search past the snapshot is not counted (it is the
    # benchmark's way to find the stopping point). The comparison is in CPU seconds (each command's own rusage).
    arms = result.setdefault("arms", {})
    if a.refinish_b:  # B records without a consistent stop point, redone from their stored snapshots
        for key, rec in list(arms.items()):
            if rec.get("stop_point_consistent") is not False or "snapshots" not in rec:
                continue
            if key == "training":
                run_b, total = WORK / f"B_{tag}", arms["supernet"]["cpu_s_total"]
            elif key.startswith("training_at_") and key[len("training_at_"):] in arms:
                run_b = rerank_dirs(tag, a)[1]
                total = arms[key[len("training_at_"):]]["cpu_s_total"]
            else:
                continue
            new = refinish_b(rec, run_b, run_b.with_name(run_b.name + "_snapshots"), total, run_b.name)
            if new["run_dir"] != rec["run_dir"] or "int8" not in rec:
                add_int8(new, ROOT / new["run_dir"], a.no_int8)
            else:
                new["int8"] = rec["int8"]
            new["refinished_from"] = {k: rec[k] for k in ("run_dir", "cpu_s_total", "cpu_ratio_to_A")}
            arms[key] = new
            save()
    run_a, run_b = WORK / f"A_{tag}", WORK / f"B_{tag}"
    snap_dir = WORK / f"B_{tag}_snapshots"
    child_a = child_b = None
    load0 = os.getloadavg()
    if "supernet" not in arms:
        shutil.rmtree(run_a, ignore_errors=True)
        child_a = Child(["search", "--supernet", str(sn_dir), *common, "--config", str(thread_config()),
                         *limit_flags(a.device[0]), "--budget", str(a.arm_candidates or a.candidates),
                         "--workers", str(a.arm_workers), "--final-epochs", str(a.final_epochs), "--out",
                         str(run_a)], WORK / f"A_{tag}.log")
    if "training" not in arms:
        child_b = start_b(sn_dir, common, a, run_b, snap_dir)
    sn_cpu = result["supernet_train"]["cpu_s"]
    rec_a = arms.get("supernet")
    if child_a is None and rec_a is None:
        raise RuntimeError("arm B needs arm A's record (its CPU is B's budget)")
    stopped, a_search_cpu = False, None
    snaps: list[dict[str, Any]] = []

    def a_record() -> dict[str, Any]:
        assert child_a is not None
        if child_a.rc != 0:
            raise RuntimeError(f"arm A failed (exit {child_a.rc}); see {child_a.log}")
        rec = run_record(run_a, child_a.wall, child_a.cpu(), int8=False)
        rec["search_and_final_cpu_s"] = rec.pop("cpu_s")
        rec["search_and_final_wall_s"] = rec.pop("wall_s")
        rec["cpu_s_total"] = round(sn_cpu + rec["search_and_final_cpu_s"], 1)
        rec["wall_s_total"] = round(result["supernet_train"]["wall_s"] + rec["search_and_final_wall_s"], 1)
        rec["search_cpu_s"] = None if a_search_cpu is None else round(a_search_cpu, 1)
        return rec

    while (child_a is not None and not child_a.done()) or (child_b is not None and not child_b.done()):
        if child_a is not None and a_search_cpu is None and (run_a / "final").exists() and not child_a.done():
            a_search_cpu = child_a.cpu()  # A's final training has started: its search's CPU
        if child_a is not None and rec_a is None and child_a.done():
            rec_a = a_record()
        if child_b is not None and not stopped and not child_b.done():
            stopped = follow_b(child_b, run_b, snap_dir, snaps, None if rec_a is None else rec_a["cpu_s_total"])
        time.sleep(0.5)
    if child_a is not None and rec_a is None:  # A ended in the loop's last round
        rec_a = a_record()
    if child_a is not None:
        rec_a["concurrent_with_B"] = child_b is not None
        rec_a["load_average_before"], rec_a["load_average_after"] = load0, os.getloadavg()
        add_int8(rec_a, run_a, a.no_int8)
        arms["supernet"] = rec_a
        save()
    if child_b is not None:
        a_total = rec_a["cpu_s_total"]
        a_final = (rec_a["search_and_final_cpu_s"] - rec_a["search_cpu_s"] if rec_a.get("search_cpu_s") is not None
                   else 0.2 * a_total)
        rec = finish_b(whole_b(child_b, stopped), run_b, snap_dir, snaps, a_total, a_final, f"B_{tag}")
        rec["concurrent_with_A"] = child_a is not None
        rec["load_average_before"], rec["load_average_after"] = load0, os.getloadavg()
        add_int8(rec, ROOT / rec["run_dir"], a.no_int8)
        arms["training"] = rec
        save()

    # --- A' and B': A's search re-ranked by fine-tuned scores, and B at A''s total -----------------------------
    if a.rerank:
        rerank_arms(arms, result, sn_dir, run_a, common, a, tag, save)

    # --- devices 2 and 3 from the same supernet ----------------------------------------------------------
    if not a.no_devices:
        search_devices(result, a.device[1:], sn_dir, data, a, tag, save)

    for name, prefix in (("supernet", "A"), ("training", "B")):  # where each final model's weights started
        run = ROOT / arms[name]["run_dir"] if "run_dir" in arms.get(name, {}) else WORK / f"{prefix}_{tag}"
        if name in arms and run.exists():
            arms[name]["final_inherited_from"] = [None if d is None else str(Path(d).relative_to(ROOT))
                                                  for d in inherited_from(run)]
    result["load_average_at_end"] = os.getloadavg()
    save()
    print(json.dumps({k: result.get(k) for k in ("arms", "other_devices")}, indent=1, default=str)[:6000])


if __name__ == "__main__":
    main()
