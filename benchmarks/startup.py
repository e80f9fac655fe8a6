"""Start-up: the wall time of a 1-trial search against ``import torch`` (issue 19, goal 3), interleaved.

Each repetition runs, in fresh interpreters and in turn (the order rotates from one repetition to the next):

* ``python -c "import torch"`` -- the yardstick;
* ``python -c "import torch, torch._dynamo"`` -- what every process that steps a ``torch.optim`` optimizer pays
  (``Optimizer.step`` imports ``torch._dynamo``);
* ``tinyevo search --budget 1 --no-final`` on digits with the default executor (one isolated worker process);
* the same with ``--executor inprocess``;
* with ``--data PATH``: loading that data set in a fresh interpreter without the cache (read, split, normalise: what
  every worker process did) and from the prepared, memory-mapped files (what it does now);
* ``python -c "import numpy"`` and the two commands that must start fast: ``tinyevo --help`` and ``tinyevo estimate``
  (issue 19 goal 3: under 0.5 s, no torch and no scipy imported -- the modules are checked by
  ``tests/cli/test_startup.py``, the time here).

Every command first runs once untimed, with Python's bytecode cache on (``PYTHONPYCACHEPREFIX`` in the temporary
folder, ``PYTHONDONTWRITEBYTECODE`` cleared): as for an installed package, the timed runs do not compile sources.
The load average is recorded before the first and after every repetition (a shared machine: only the ratios of
interleaved runs compare).

The searches train with ``[train] threads = 1`` (``--threads``): on a busy machine a two-thread pool spins and
the training time, not the start-up, would dominate. Reports the medians and the ratios to ``import torch``.

    python benchmarks/startup.py --reps 5 --data ../shared/data/fashion_mnist.npz
    PYTHONPATH=/tmp/old/src python benchmarks/startup.py --label before   # another checkout's code

Writes ``benchmarks/results/startup.json`` (or ``--out``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load(spec: str, cache: str) -> list[str]:
    return [sys.executable, "-c", f"from tinyevo.data import load_dataset; load_dataset({spec!r}, cache={cache})"]


def _commands(tmp: Path, threads: int, data: str | None) -> dict[str, list[str]]:
    config = tmp / "train.toml"
    config.write_text(f"[train]\nthreads = {threads}\n")
    search = [sys.executable, "-m", "tinyevo.cli.main", "search", "-q", "--budget", "1", "--no-final",
              "--config", str(config), "--out"]
    loads = {}
    if data:  # what a worker pays to get the data set: read + split + normalise, or map the prepared files
        loads = {"load_data_in_memory": _load(data, "False"), "load_data_mapped": _load(data, repr(str(tmp / "c")))}
    return {
        **loads,
        "import_torch": [sys.executable, "-c", "import torch"],
        "import_torch_dynamo": [sys.executable, "-c", "import torch, torch._dynamo"],
        "import_numpy": [sys.executable, "-c", "import numpy"],
        "cli_help": [sys.executable, "-m", "tinyevo.cli.main", "--help"],
        "cli_estimate": [sys.executable, "-m", "tinyevo.cli.main", "estimate", "--space", "chain", "--json",
                         "conv_k3_s2_c16-dsc_k3_s2_c32-gap-dense_c32"],
        "search_isolated": [*search, str(tmp / "run-isolated")],
        "search_inprocess": [*search, str(tmp / "run-inprocess"), "--executor", "inprocess"],
        # the default search with its workers started when the first task is sent, as before they were started
        # ahead (tinyevo.run.engine._start_ahead replaced for this process only): what starting ahead saves
        "search_isolated_not_ahead": [sys.executable, "-c", _NOT_AHEAD.format(argv=[*search[3:], str(tmp / "run-na")])],
    }


_NOT_AHEAD = """
import sys
import tinyevo.run.engine as engine
engine._start_ahead = lambda *args, **kwargs: None
from tinyevo.cli.main import main
sys.exit(main({argv!r}))
"""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--label", default="")
    ap.add_argument("--data", default=None,
                    help="also time loading this data set in a fresh interpreter, in memory and memory-mapped")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "startup.json"))
    ap.add_argument("--only", default="", help="comma-separated names of the commands to time (default: all)")
    args = ap.parse_args(argv)
    times: dict[str, list[float]] = {}
    loads = [list(os.getloadavg())]
    with tempfile.TemporaryDirectory(prefix="tinyevo-startup-") as tmp_name:
        tmp = Path(tmp_name)
        commands = _commands(tmp, args.threads, args.data)
        names = [n for n in commands if not args.only or n in args.only.split(",")]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
        for name in names:  # untimed: bytecode cached, the prepared data files written
            subprocess.run(commands[name], cwd=tmp, capture_output=True, check=False, env=env)
        for rep in range(args.reps):
            order = names[rep % len(names):] + names[: rep % len(names)]
            for name in order:
                for old in tmp.glob("run-*"):
                    subprocess.run(["rm", "-rf", str(old)], check=True)
                start = time.perf_counter()
                done = subprocess.run(commands[name], cwd=tmp, capture_output=True, text=True, check=False, env=env)
                wall = time.perf_counter() - start
                if done.returncode != 0:
                    raise SystemExit(f"{name} failed: {done.stderr[-2000:]}")
                times.setdefault(name, []).append(wall)
                print(f"rep {rep + 1} {name:22s} {wall:7.2f} s", flush=True)
            loads.append(list(os.getloadavg()))
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["import_torch"]
    result = {
        "command": "python benchmarks/startup.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "label": args.label,
        "code": os.environ.get("PYTHONPATH", "") or "this checkout",
        "threads": args.threads,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_end": list(os.getloadavg())},
        "load_average_before_and_after_each_rep": [[round(v, 2) for v in la] for la in loads],
        "median_s": {k: round(v, 3) for k, v in med.items()},
        "ratio_to_import_torch": {k: round(v / base, 2) for k, v in med.items()},
        "runs_s": {k: [round(x, 3) for x in v] for k, v in times.items()},
    }
    for k, v in med.items():
        print(f"{k:22s} median {v:7.2f} s  ({v / base:.2f}x import torch)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
