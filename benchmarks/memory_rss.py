"""Peak memory of a search: the whole process tree (driver + worker processes), sampled from ``/proc``.

Runs ``tinyevo search`` on Fashion-MNIST (``../shared/data/fashion_mnist.npz`` by default) in a fresh temporary
directory for each configuration ``WORKERSxTRIALS`` and samples, every ``--interval`` seconds, every process of the
tree:

* ``rss``: resident set size (``VmRSS``); the sum over the tree counts a page shared by several processes (a
  memory-mapped data set, torch's libraries) once per process;
* ``pss``: proportional set size (``smaps_rollup``): a page shared by ``k`` processes counts ``1/k`` in each, so the
  sum over the tree is the memory the search really holds;
* ``hwm``: each process's own peak RSS (``VmHWM``, kept by the kernel: exact, not sampled).

Reported per configuration: the peak of the tree's summed RSS and PSS, the driver's and the largest worker's
``VmHWM`` (and every worker's), and the load average before and after. Linux only.

``--genomes G1,G2,...`` makes the search evaluate these genomes first (``--init``, cycled over the trials): every
worker then trains a network of about the same (small) size, so the rows of 1, 2 and 4 workers differ only in what a
worker costs, not in what the strategy happened to sample. Without it (``--genomes ''``) the strategy samples.

    python benchmarks/memory_rss.py                         # 1x1 (one trial), 1x4, 2x4, 4x4
    python benchmarks/memory_rss.py --configs 1x1 --epochs 1
    python benchmarks/memory_rss.py --data digits --configs 1x1,2x4  # a quick check
    python benchmarks/memory_rss.py --configs 1x1,2x2,4x4 --genomes ''   # the strategy picks the networks
    PYTHONPATH=/tmp/old/src python benchmarks/memory_rss.py --label before  # another checkout's code

The candidates train with ``--batch-size`` 1024 and ``--threads`` 1 by default (fewer steps than the default batch,
the same data in memory; one thread: no spinning thread pools on a busy machine); ``--cache-dir`` sets ``TINYEVO_CACHE_DIR`` for the searches (a fresh one measures a first load).

Writes ``benchmarks/results/memory_rss.json`` (or ``--out``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fashion_mnist.npz"
MIB = 2**20
SMALL_GENOMES = (
    "conv_k3_s2_c16-dsc_k3_s2_c32-gap-dense_c32",
    "conv_k3_s2_c16-dsc_k3_s2_c32-gap-dense_c64",
    "conv_k3_s2_c16-dsc_k3_s2_c32-gap-dense_c16",
    "conv_k3_s2_c8-dsc_k3_s2_c32-gap-dense_c32",
)
"""The default networks (chain space, Fashion-MNIST: 2,250 / 3,626 / 1,562 / 1,834 parameters): small, so a
worker's peak is its fixed cost plus little training memory."""


def _children(pid: int) -> list[int]:
    """``pid`` and all its descendants (from ``/proc/*/stat``)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()  # after the command name, which may hold spaces
        parent[int(entry)] = int(fields[1])
    tree, frontier = [pid], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        tree += kids
        frontier += kids
    return tree


def _status_kib(pid: int, keys: tuple[str, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                k, _, v = line.partition(":")
                if k in keys:
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Sampler(threading.Thread):
    """Samples the process tree of ``pid`` until :meth:`stop`."""

    def __init__(self, pid: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_rss_kib = self.peak_pss_kib = 0
        self.hwm_kib: dict[int, int] = {}  # per process: its own peak RSS
        self.max_procs = 0
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            rss = pss = 0
            tree = _children(self.pid)
            for p in tree:
                st = _status_kib(p, ("VmRSS", "VmHWM"))
                rss += st.get("VmRSS", 0)
                pss += _pss_kib(p)
                if "VmHWM" in st:
                    self.hwm_kib[p] = max(self.hwm_kib.get(p, 0), st["VmHWM"])
            self.peak_rss_kib = max(self.peak_rss_kib, rss)
            self.peak_pss_kib = max(self.peak_pss_kib, pss)
            self.max_procs = max(self.max_procs, len(tree))
            self.samples += 1
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def _statuses(db: Path) -> dict[str, int]:
    import sqlite3

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return dict(con.execute("SELECT status, COUNT(*) FROM trials GROUP BY status").fetchall())
    finally:
        con.close()


def _genomes(db: Path) -> list[str]:
    import sqlite3

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        cols = {r[1] for r in con.execute("PRAGMA table_info(trials)")}
        if "genome" not in cols:
            return []
        return [r[0] for r in con.execute("SELECT genome FROM trials ORDER BY number")]
    finally:
        con.close()


def _prepared_files(cache_dir: str | None) -> dict[str, float]:
    """MiB of each file of the most recently used prepared data set in ``cache_dir`` (``{}`` without one): what
    the processes map (``x_*``: float32 inputs; ``bytes_*``: the uint8 inputs training reads, where kept)."""
    if not cache_dir:
        return {}
    entries = [m.parent for m in (Path(cache_dir) / "prepared").glob("*/meta.json")]
    if not entries:
        return {}
    entry = max(entries, key=lambda d: (d / "meta.json").stat().st_mtime)
    return {f.name: round(f.stat().st_size / MIB, 1) for f in sorted(entry.glob("*.npy"))}


def run_config(workers: int, trials: int, args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="tinyevo-rss-") as tmp:
        cmd = [
            sys.executable, "-m", "tinyevo.cli.main", "search", "-q", "--out", str(Path(tmp) / "run"),
            "--data", str(args.data), "--budget", str(trials), "--workers", str(workers), "--epochs",
            str(args.epochs), "--no-final", "--seed", str(args.seed), *args.search_args,
        ]
        genomes = [g for g in args.genomes.split(",") if g]
        for i in range(trials if genomes else 0):
            cmd += ["--init", genomes[i % len(genomes)]]
        if args.batch_size or args.threads:
            config = Path(tmp) / "train.toml"
            lines = ["[train]"] + [f"{k} = {v}" for k, v in (("batch_size", args.batch_size), ("threads", args.threads))
                                   if v]
            config.write_text("\n".join(lines) + "\n")
            cmd += ["--config", str(config)]
        env = dict(os.environ, TINYEVO_CACHE_DIR=str(args.cache_dir)) if args.cache_dir else None
        load_before = list(os.getloadavg())
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        sampler = Sampler(proc.pid, args.interval)
        sampler.start()
        out, err = proc.communicate()
        sampler.stop()
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"search failed ({proc.returncode}): {' '.join(cmd)}\n{out}\n{err}")
        statuses = _statuses(Path(tmp) / "run" / "trials.db")
        hwm = dict(sampler.hwm_kib)
        driver = hwm.pop(proc.pid, 0)
        return {
            "workers": workers,
            "trials": trials,
            "wall_s": round(wall, 2),
            "peak_tree_rss_mib": round(sampler.peak_rss_kib / 1024, 1),
            "peak_tree_pss_mib": round(sampler.peak_pss_kib / 1024, 1),
            "driver_peak_rss_mib": round(driver / 1024, 1),
            "max_worker_peak_rss_mib": round(max(hwm.values(), default=0) / 1024, 1),
            "process_peak_rss_mib": sorted((round(v / 1024, 1) for v in hwm.values()), reverse=True),
            "genomes": _genomes(Path(tmp) / "run" / "trials.db"),
            "prepared_files_mib": _prepared_files(args.cache_dir),
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
            "processes_seen": len(hwm) + 1,
            "trial_statuses": statuses,
            "samples": sampler.samples,
        }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="data set for --data (default Fashion-MNIST)")
    ap.add_argument("--configs", default="1x1,1x4,2x4,4x4", help="WORKERSxTRIALS, comma-separated")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=1024,
                    help="[train] batch_size of the candidates (0: the default; larger: fewer steps, same data)")
    ap.add_argument("--threads", type=int, default=1, help="[train] threads per evaluation")
    ap.add_argument("--label", default="", help="a name for this measurement, stored in the JSON")
    ap.add_argument("--interval", type=float, default=0.05, help="sampling interval in seconds")
    ap.add_argument("--genomes", default=",".join(SMALL_GENOMES),
                    help="genomes evaluated first (--init, cycled over the trials; '' lets the strategy sample); "
                         "default: four small chain networks of 1.6-3.6 k parameters")
    ap.add_argument("--cache-dir", default=None, help="TINYEVO_CACHE_DIR for the searches (default: as set)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "memory_rss.json"))
    ap.add_argument("search_args", nargs="*", help="more tinyevo search arguments (after --)")
    args = ap.parse_args(argv)
    rows: list[dict[str, object]] = []
    for spec in args.configs.split(","):
        w, t = (int(v) for v in spec.lower().split("x"))
        row = run_config(w, t, args)
        rows.append(row)
        print(f"{w} worker(s) x {t} trial(s): tree RSS {row['peak_tree_rss_mib']:7.1f} MiB, "
              f"tree PSS {row['peak_tree_pss_mib']:7.1f} MiB, driver {row['driver_peak_rss_mib']:6.1f} MiB, "
              f"worker {row['max_worker_peak_rss_mib']:6.1f} MiB, {row['wall_s']:.1f} s, "
              f"trials {row['trial_statuses']}", flush=True)
        _write(args, argv, rows)  # after every configuration: a long run that is stopped keeps what it measured


def _commit() -> str:
    """This checkout's commit (``+dirty`` with uncommitted changes; empty outside git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""
    return head + ("+dirty" if dirty else "")


def _write(args: argparse.Namespace, argv: list[str] | None, rows: list[dict[str, object]]) -> None:
    result = {
        "command": "python benchmarks/memory_rss.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "data": Path(args.data).name if args.data != "digits" else "digits",
        "label": args.label,
        "code": os.environ.get("PYTHONPATH", "") or "this checkout",
        "commit": _commit(),
        "epochs": args.epochs,
        "batch_size": args.batch_size or "default",
        "threads": args.threads,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "search_args": args.search_args,
        "notes": "tree RSS counts shared pages once per process; tree PSS splits them between the processes "
                 "sharing them; driver / worker peak RSS are the kernel's VmHWM of each process",
        "configs": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
