"""Wall-time overhead of isolated evaluation (the default executor) over in-process evaluation.

Runs ``tinyevo search`` (the default search: digits, the default budget, final retraining included) in a fresh
temporary directory, alternately with ``--executor inprocess`` (the old in-process mode) and with the default
executor (persistent isolated worker processes), ``--runs`` times each, interleaved (A B, then B A, ...), and
compares the median wall times. Both modes must store the same trials (same seed, same torch threads).

    python benchmarks/isolation_overhead.py                      # the default search, 3 runs each
    python benchmarks/isolation_overhead.py --budget 8 --no-final  # a short search: a stricter test of the
                                                                   # fixed cost (worker start-up)

Writes ``benchmarks/results/isolation_overhead.json`` (or ``--out``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = {"inprocess": ["--executor", "inprocess"], "isolated": []}  # isolated = the default (--executor local)


def _trials(run_dir: Path) -> list[tuple[object, ...]]:
    con = sqlite3.connect(f"file:{run_dir / 'trials.db'}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT * FROM trials ORDER BY number").fetchall()
        cols = [d[0] for d in con.execute("SELECT * FROM trials LIMIT 0").description]
    finally:
        con.close()
    keep = [i for i, c in enumerate(cols) if c in ("number", "genome", "status", "metrics", "error")]
    out = []
    for r in rows:
        row = [r[i] for i in keep]
        for j, i in enumerate(keep):  # training times differ from run to run; everything else must not
            if cols[i] == "metrics" and row[j]:
                row[j] = {k: v for k, v in json.loads(row[j]).items() if not k.endswith("time_s")}
        out.append(tuple(row))
    return out


def run_once(mode: str, extra: list[str]) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="tinyevo-iso-") as tmp:
        cmd = [sys.executable, "-m", "tinyevo.cli.main", "search", "-q", "--out", "run", *MODES[mode], *extra]
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        wall = time.perf_counter() - start
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # the search and its worker processes
        cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        trials = _trials(Path(tmp) / "run")
    statuses = [t[2] for t in trials]
    return {"mode": mode, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "trials": len(trials),
            "ok": statuses.count("ok"), "failed": statuses.count("failed"), "signature": trials}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3, help="runs per mode (default 3)")
    p.add_argument("--budget", type=int, help="evaluations per search (default: tinyevo's default)")
    p.add_argument("--no-final", action="store_true", help="skip the final retraining")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "isolation_overhead.json")
    args = p.parse_args(argv)
    extra = (["--budget", str(args.budget)] if args.budget else []) + (["--no-final"] if args.no_final else [])
    runs: list[dict[str, object]] = []
    load0 = os.getloadavg()
    for r in range(args.runs):
        order = list(MODES) if r % 2 == 0 else list(MODES)[::-1]  # interleaved: A B, B A, A B, ...
        for mode in order:
            res = run_once(mode, extra)
            print(f"run {r + 1}/{args.runs} {mode:10s} {res['wall_s']:8.1f} s wall {res['cpu_s']:8.1f} s CPU  "
                  f"{res['trials']} trials "
                  f"({res['ok']} ok, {res['failed']} failed)", flush=True)
            runs.append(res)
    sigs = {json.dumps(r["signature"]) for r in runs}
    medians = {m: statistics.median(float(r["wall_s"]) for r in runs if r["mode"] == m) for m in MODES}
    overhead = medians["isolated"] / medians["inprocess"] - 1.0
    cpu_medians = {m: statistics.median(float(r["cpu_s"]) for r in runs if r["mode"] == m) for m in MODES}
    cpu_overhead = cpu_medians["isolated"] / cpu_medians["inprocess"] - 1.0
    print(f"\n{'mode':10s} {'median wall s':>14s} {'median CPU s':>13s}  wall s of each run")
    for m in MODES:
        print(f"{m:10s} {medians[m]:14.1f} {cpu_medians[m]:13.1f}  "
              + ", ".join(f"{r['wall_s']:.1f}" for r in runs if r["mode"] == m))
    print(f"overhead of isolation: {100 * overhead:+.1f} % wall (goal <= 10 %), {100 * cpu_overhead:+.1f} % CPU; "
          f"same trials in every run: {len(sigs) == 1}")
    try:
        cpus = len(os.sched_getaffinity(0))
        load = os.getloadavg()
    except (AttributeError, OSError):  # pragma: no cover
        cpus, load = os.cpu_count() or 0, (0.0, 0.0, 0.0)
    out = {
        "command": "python benchmarks/isolation_overhead.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "search_args": extra,
        "runs_per_mode": args.runs,
        "median_wall_s": {m: round(v, 3) for m, v in medians.items()},
        "overhead_fraction": round(overhead, 4),
        "median_cpu_s": {m: round(v, 3) for m, v in cpu_medians.items()},
        "cpu_overhead_fraction": round(cpu_overhead, 4),
        "same_trials_in_every_run": len(sigs) == 1,
        "runs": [{k: v for k, v in r.items() if k != "signature"} for r in runs],
        "machine": {"python": platform.python_version(), "cpus": cpus, "loadavg_at_start": [round(x, 2) for x in load0],
                    "loadavg_at_end": [round(x, 2) for x in load]},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
