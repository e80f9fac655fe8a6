"""Start-up and memory of a 1-trial ``tinyevo search --strategy dnas``: this checkout against another one (the
code before the architecture's Adam left ``torch.optim``, whose first step imports ``torch._dynamo``), interleaved.

Each repetition runs, in fresh interpreters and in turn (the order rotates from one repetition to the next):

* ``python -c "import torch"`` -- the yardstick; ``python -c "import torch, torch._dynamo"`` -- what the first
  step of a ``torch.optim`` optimiser adds;
* for each code version (``after``: this checkout's src or ``--after SRC``; ``before``: ``--before SRC``; first on
  ``PYTHONPATH``): the 1-trial DNAS search on a tiny data set (``--n`` digits images, 8x8; NB201 with 2 stem
  channels, one cell per stage, 1 epoch, one torch thread, ``--no-final``), with the default executor and with
  ``--executor inprocess``.

Every child's wall time and peak resident memory (``ru_maxrss`` from ``os.wait4``) is recorded; each command first
runs once untimed (bytecode cached). The search is small on purpose: what is left is mostly start-up (imports, data,
the cost tables, one short training). A shared machine: the load average is recorded, only interleaved runs compare.

    git archive <commit> src | tar -x -C /tmp/old
    nice -n 10 python benchmarks/dnas_startup.py --before /tmp/old/src --reps 3
    # JSON: benchmarks/results/dnas_startup.json (or --out)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """\
strategy = "dnas"
space = "nb201"
data = "{data}"
sram = "64KB"
budget = 1

[space_options]
channels = 2
cells_per_stage = 1

[train]
epochs = 1
threads = 1
"""

PROBE = ("import runpy, sys\n"
         "sys.argv = ['tinyevo'] + sys.argv[1:]\n"
         "try:\n"
         "    runpy.run_module('tinyevo.cli.main', run_name='__main__')\n"
         "finally:\n"
         "    print('DYNAMO', any(m.startswith('torch._dynamo') for m in sys.modules), file=sys.stderr)\n")


def tiny_digits(path: Path, n: int) -> Path:
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(len(d.target), n, replace=False))
    x = (d.images[pick] / 16.0).astype(np.float32)[:, None]
    np.savez(path, x=x, y=d.target[pick].astype(np.int64))
    return path


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MiB, stderr) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed: {err[-2000:]}")
    return wall, usage.ru_maxrss / 1024, err


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", type=Path, required=True, help="the src folder of the code to compare with")
    p.add_argument("--after", type=Path, default=ROOT / "src", help="the src folder of the new code (this checkout's)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--n", type=int, default=200, help="images of the tiny data set")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "dnas_startup.json")
    args = p.parse_args()
    versions = {"after": str(args.after.resolve()), "before": str(args.before.resolve())}
    runs: dict[str, dict[str, list[float]]] = {}
    dynamo: dict[str, bool] = {}
    loads = [list(os.getloadavg())]
    with tempfile.TemporaryDirectory(prefix="tinyevo-dnas-startup-") as tmp_name:
        tmp = Path(tmp_name)
        data = tiny_digits(tmp / "digits.npz", args.n)
        config = tmp / "dnas.toml"
        config.write_text(CONFIG.format(data=data))
        base_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
        base_env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
        commands: dict[str, tuple[list[str], dict[str, str]]] = {
            "import_torch": ([sys.executable, "-c", "import torch"], base_env),
            "import_torch_dynamo": ([sys.executable, "-c", "import torch, torch._dynamo"], base_env),
        }
        for version, src in versions.items():
            env = {**base_env, "PYTHONPATH": src}
            search = [sys.executable, "-c", PROBE, "search", "-q", "--no-final", "--config", str(config), "--out"]
            commands[f"dnas_search_{version}"] = ([*search, str(tmp / "run")], env)
            commands[f"dnas_search_inprocess_{version}"] = ([*search, str(tmp / "run"), "--executor", "inprocess"],
                                                            env)
        names = list(commands)
        for rep in range(-1, args.reps):  # rep -1: untimed (bytecode cache)
            order = names[rep % len(names):] + names[: rep % len(names)] if rep >= 0 else names
            for name in order:
                shutil.rmtree(tmp / "run", ignore_errors=True)
                cmd, env = commands[name]
                wall, rss, err = run(cmd, env, tmp)
                if "DYNAMO" in err:
                    dynamo[name] = "DYNAMO True" in err
                if rep >= 0:
                    runs.setdefault(name, {"wall_s": [], "max_rss_mib": []})
                    runs[name]["wall_s"].append(round(wall, 3))
                    runs[name]["max_rss_mib"].append(round(rss, 1))
                    print(f"rep {rep + 1} {name:30s} {wall:7.2f} s {rss:7.1f} MiB", flush=True)
            if rep >= 0:
                loads.append(list(os.getloadavg()))
    med = {k: {m: statistics.median(v) for m, v in r.items()} for k, r in runs.items()}
    base = med["import_torch"]["wall_s"]
    result = {
        "command": "python benchmarks/dnas_startup.py " + " ".join(sys.argv[1:]),
        "versions": versions,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "load_average_before_and_after_each_rep": [[round(v, 2) for v in la] for la in loads],
        "imports_torch_dynamo": dynamo,
        "median": {k: {m: round(v, 3) for m, v in r.items()} for k, r in med.items()},
        "wall_ratio_to_import_torch": {k: round(r["wall_s"] / base, 2) for k, r in med.items()},
        "runs": runs,
    }
    for k, r in med.items():
        print(f"{k:30s} median {r['wall_s']:7.2f} s ({r['wall_s'] / base:.2f}x import torch) "
              f"{r['max_rss_mib']:7.1f} MiB  dynamo: {dynamo.get(k, '-')}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
