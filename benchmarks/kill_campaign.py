"""kill -9 campaign: no run directory may become a dead end (issue 17).

An uninterrupted reference run (``tinyevo search`` on the built-in digits, tiny budget, default isolated workers)
is compared with runs that were killed with SIGKILL at seeded random moments of each phase, then recovered the way
a user would:

* ``search``  -- the driver killed at a random moment after the command started (including while the run directory
  is created); recovery: ``tinyevo resume`` if the directory holds a database, else the same ``search`` again;
* ``worker``  -- one isolated evaluation worker killed mid-trial; no recovery needed (the task is re-run);
* ``final``   -- the driver killed during the final retraining; recovery: ``tinyevo resume``;
* ``retrain`` -- ``tinyevo retrain`` of a copy of the finished reference killed; recovery: the same command again;
* ``export``  -- ``tinyevo export`` killed; recovery: the same command again;
* ``report``  -- ``tinyevo report`` killed; recovery: the same command again.

After recovery each point checks: every recovery command exited 0 (else the directory was a dead end), the stored
trials equal the reference's (number, genome, status, parents, every metric except timings), the final models are
the reference's trials, their files agree with the database (weights fingerprint), and -- reported, not required --
whether the final weights are bit-identical to the reference's. Results go to
``benchmarks/results/kill_campaign.json``.

usage: python benchmarks/kill_campaign.py [--points N] [--seed S] [--budget B] [--out FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TINYEVO = str(Path(sys.executable).with_name("tinyevo"))
PHASES = ("search", "worker", "final", "retrain", "export", "report")


def _search_cmd(out: Path, budget: int, seed: int) -> list[str]:
    return [TINYEVO, "search", "--data", "digits", "--budget", str(budget), "--epochs", "1", "--final-epochs", "1",
            "--seed", str(seed), "-q", "--out", str(out)]


def _start(cmd: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def _finish(p: subprocess.Popen[bytes], limit_s: float = 900) -> tuple[int, str]:
    try:
        _, err = p.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        _kill_group(p)
        _, err = p.communicate()
    _kill_group(p)  # orphaned workers of a killed driver (they also exit on their own)
    lines = [line for line in err.decode(errors="replace").splitlines() if line.strip()]
    return p.returncode, lines[-1][:300] if lines else ""


def _kill_group(p: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _run(cmd: list[str]) -> tuple[int, str]:
    return _finish(_start(cmd))


def _db_state(run: Path, key: str) -> str | None:
    db = run / "trials.db"
    if not db.is_file():
        return None
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)
        try:
            row = con.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
            return None if row is None else str(row[0])
        finally:
            con.close()
    except sqlite3.Error:
        return None


def _children(pid: int) -> list[int]:
    """Process ids of ``pid``'s evaluation workers (spawned multiprocessing children)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid and b"spawn_main" in (d / "cmdline").read_bytes():
                out.append(int(d.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def signature(run: Path) -> dict[str, Any]:
    """What must equal the reference: the trials (timings left out) and the final models' trial numbers."""
    con = sqlite3.connect(f"file:{run / 'trials.db'}?mode=ro", uri=True, timeout=5)
    try:
        trials = []
        for number, genome, status, metrics, parents in con.execute(
                "SELECT number, genome, status, metrics, parents FROM trials ORDER BY number"):
            m = {k: v for k, v in json.loads(metrics).items() if not k.endswith("_s")}
            trials.append([number, genome, status, parents, m])
        finals = [r[0] for r in con.execute("SELECT trial FROM final_models ORDER BY trial")]
        return {"trials": trials, "finals": finals}
    finally:
        con.close()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def finals_agree(run: Path) -> bool:
    """Every final model's weights file is the one the database committed (fingerprint and val_acc)."""
    con = sqlite3.connect(f"file:{run / 'trials.db'}?mode=ro", uri=True, timeout=5)
    try:
        for trial, metrics, weights in con.execute("SELECT trial, metrics, weights FROM final_models"):
            row = con.execute("SELECT value FROM state WHERE key = ?", (f"final_sha256:{trial}",)).fetchone()
            file = run / weights
            if row is None or not file.is_file() or _sha(file) != row[0]:
                return False
            doc = json.loads(file.with_name("metrics.json").read_text())
            if doc["final"].get("val_acc") != json.loads(metrics).get("val_acc"):
                return False
        return True
    finally:
        con.close()


def final_weights(run: Path) -> dict[int, str]:
    con = sqlite3.connect(f"file:{run / 'trials.db'}?mode=ro", uri=True, timeout=5)
    try:
        return {int(t): _sha(run / w) for t, w in con.execute("SELECT trial, weights FROM final_models")}
    finally:
        con.close()


def _kill_at(p: subprocess.Popen[bytes], delay_s: float) -> bool:
    """SIGKILL the driver ``delay_s`` from now; False if it had already finished."""
    end = time.monotonic() + delay_s
    while time.monotonic() < end and p.poll() is None:
        time.sleep(0.02)
    alive = p.poll() is None
    if alive:
        os.kill(p.pid, signal.SIGKILL)
    return alive


def point(phase: str, rng: random.Random, work: Path, ref: Path, timings: dict[str, float],
          args: Any) -> dict[str, Any]:
    run = work / "run"
    rec: dict[str, Any] = {"phase": phase}
    recovery: list[tuple[str, int, str]] = []
    t0 = time.monotonic()
    if phase in ("search", "final", "worker"):
        p = _start(_search_cmd(run, args.budget, args.seed))
        if phase == "search":
            delay = rng.uniform(0.0, 0.8 * timings["search"])  # (from the start of the command: imports too)
            rec["delay_s"] = round(delay, 2)
            rec["killed"] = _kill_at(p, delay)
        elif phase == "final":
            deadline = time.monotonic() + 900
            while p.poll() is None and _db_state(run, "phase") != "final" and time.monotonic() < deadline:
                time.sleep(0.05)
            delay = rng.uniform(0.0, timings["final"])
            rec["delay_s"] = round(delay, 2)
            rec["killed"] = _kill_at(p, delay)
        else:  # kill one evaluation worker once, mid-run
            delay = rng.uniform(0.1, 0.5) * timings["search"]
            end = time.monotonic() + delay
            victim = None
            while p.poll() is None and (time.monotonic() < end or victim is None) and time.monotonic() < end + 120:
                kids = _children(p.pid)
                if kids and time.monotonic() >= end:
                    victim = kids[0]
                    break
                time.sleep(0.05)
            rec["delay_s"] = round(delay, 2)
            rec["killed"] = False
            if victim is not None:
                try:
                    os.kill(victim, signal.SIGKILL)
                    rec["killed"] = True
                except ProcessLookupError:
                    pass
        rc, err = _finish(p)
        rec["killed_rc"] = rc
        if phase != "worker" and rec["killed"]:
            if (run / "trials.db").exists():
                cmd = [TINYEVO, "resume", str(run), "-q"]
            else:
                cmd = _search_cmd(run, args.budget, args.seed)
            rc, err = _run(cmd)
            recovery.append((cmd[1], rc, err))
        elif phase == "worker":
            recovery.append(("search (worker killed)", rc, err))
    else:
        shutil.copytree(ref, run)
        if phase == "retrain":
            cmd = [TINYEVO, "retrain", str(run), "--epochs", "1", "-q"]
        elif phase == "export":
            cmd = [TINYEVO, "export", str(run), "--format", "tflite", "--out", str(run / "exported")]
        else:
            cmd = [TINYEVO, "report", str(run), "--out", str(run / "report")]
        delay = rng.uniform(0.0, timings[phase])
        rec["delay_s"] = round(delay, 2)
        p = _start(cmd)
        rec["killed"] = _kill_at(p, delay)
        rec["killed_rc"], _ = _finish(p)
        rc, err = _run(cmd)
        recovery.append((cmd[1], rc, err))
        out = run / ("exported" if phase == "export" else "report")
        if phase in ("export", "report"):
            rec["output_present"] = out.is_dir() and any(out.iterdir())
    rec["recovery"] = [{"command": c, "rc": rc, "stderr_tail": e if rc else ""} for c, rc, e in recovery]
    rec["dead_end"] = any(rc != 0 for _, rc, _ in recovery)
    if (run / "trials.db").is_file():
        sig, want = signature(run), signature(ref)
        rec["trials_equal"] = sig["trials"] == want["trials"]
        rec["finals_equal"] = sig["finals"] == want["finals"]
        rec["finals_agree_with_db"] = finals_agree(run)
        rec["final_weights_identical"] = final_weights(run) == final_weights(ref)
        rec["n_trials"] = len(sig["trials"])
    else:
        rec["trials_equal"] = False
    rec["ok"] = (not rec["dead_end"] and rec["trials_equal"] and rec.get("finals_equal", False)
                 and rec.get("finals_agree_with_db", False) and rec.get("output_present", True))
    rec["seconds"] = round(time.monotonic() - t0, 1)
    return rec


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=8, help="kill points (phases cycled, times seeded)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill times (and of the runs)")
    ap.add_argument("--budget", type=int, default=4, help="search budget of each run")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "kill_campaign.json")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="kill-campaign-"))
    started = time.time()
    try:
        ref = root / "reference"
        t = time.monotonic()
        p = _start(_search_cmd(ref, args.budget, args.seed))
        final_at = None
        while p.poll() is None:
            if final_at is None and _db_state(ref, "phase") == "final":
                final_at = time.monotonic()
            time.sleep(0.05)
        rc, err = _finish(p)
        if rc != 0:
            raise SystemExit(f"reference run failed: {err}")
        end = time.monotonic()
        timings = {"search": (final_at or end) - t, "final": end - (final_at or end) + 0.5}
        for phase, cmd in (("export", [TINYEVO, "export", str(ref), "--format", "tflite", "--out",
                                       str(root / "ref-export")]),
                           ("report", [TINYEVO, "report", str(ref), "--out", str(root / "ref-report")])):
            t = time.monotonic()
            rc, err = _run(cmd)
            if rc != 0:
                raise SystemExit(f"reference {phase} failed: {err}")
            timings[phase] = time.monotonic() - t
        t = time.monotonic()
        tmp_ref = root / "ref-retrain"
        shutil.copytree(ref, tmp_ref)
        rc, err = _run([TINYEVO, "retrain", str(tmp_ref), "--epochs", "1", "-q"])
        if rc != 0:
            raise SystemExit(f"reference retrain failed: {err}")
        timings["retrain"] = time.monotonic() - t
        retrain_identical = final_weights(tmp_ref) == final_weights(ref)
        points = []
        for i in range(args.points):
            phase = PHASES[i % len(PHASES)]
            work = root / f"point-{i:02d}"
            work.mkdir()
            rec = point(phase, rng, work, ref, timings, args)
            rec["index"] = i
            points.append(rec)
            print(json.dumps(rec), file=sys.stderr, flush=True)
            shutil.rmtree(work, ignore_errors=True)
        by_phase: dict[str, dict[str, int]] = {}
        for r in points:
            d = by_phase.setdefault(r["phase"], {"points": 0, "killed": 0, "ok": 0, "dead_ends": 0})
            d["points"] += 1
            d["killed"] += bool(r.get("killed"))
            d["ok"] += bool(r["ok"])
            d["dead_ends"] += bool(r["dead_end"])
        result = {
            "benchmark": "kill_campaign",
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "run_command": " ".join(_search_cmd(Path("RUN"), args.budget, args.seed)[1:]),
            "seed": args.seed,
            "points": len(points),
            "killed": sum(bool(r.get("killed")) for r in points),
            "ok": sum(bool(r["ok"]) for r in points),
            "dead_ends": sum(bool(r["dead_end"]) for r in points),
            "trial_mismatches": sum(not r["trials_equal"] for r in points),
            "final_weights_identical": sum(bool(r.get("final_weights_identical")) for r in points),
            "reference_retrain_weights_identical": retrain_identical,
            "reference_timings_s": {k: round(v, 1) for k, v in timings.items()},
            "by_phase": by_phase,
            "details": points,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "load_avg_1m_at_end": round(os.getloadavg()[0], 2)},
            "wall_s": round(time.time() - started, 1),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps({k: v for k, v in result.items() if k != "details"}, indent=1))
        return 0 if result["ok"] == result["points"] else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
