"""Picklable task functions for executor tests (importable by spawned workers through sys.path)."""

from __future__ import annotations

import os
from pathlib import Path


def square(x: int) -> int:
    if x < 0:
        raise ValueError(f"negative: {x}")
    return x * x


def crash_once(marker: str) -> str:
    """Kills its worker process the first time (no marker file yet), succeeds when retried."""
    path = Path(marker)
    if not path.exists():
        path.write_text("crashed")
        os._exit(17)
    return "second try"


def always_crash(_: object) -> None:
    os._exit(17)


def out_of_memory(n: int) -> bytes:
    raise MemoryError(f"cannot allocate {n} bytes")


def pid(_: object) -> int:
    return os.getpid()


def segfault(_: object) -> None:
    import signal

    os.kill(os.getpid(), signal.SIGSEGV)


def abort(_: object) -> None:
    os.abort()


def sigkill(_: object) -> None:
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


def hang(_: object) -> None:
    import time

    while True:
        time.sleep(1.0)


def hang_with_child(pid_file: str) -> None:
    """Starts a sleeping child process (its pid goes to ``pid_file``), then hangs."""
    import subprocess
    import sys
    import time

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    Path(pid_file).write_text(str(child.pid))
    while True:
        time.sleep(1.0)


def crash_if(x: int) -> int:
    """Segfaults for negative ``x`` (every time), else returns ``x`` after a short pause."""
    import signal
    import time

    if x < 0:
        os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(0.05)
    return x


def torch_threads(_: object) -> str:
    return os.environ.get("OMP_NUM_THREADS", "")


_UNPICKLED = 0


def _restore_counting() -> CountingFn:
    global _UNPICKLED
    _UNPICKLED += 1
    return CountingFn()


class CountingFn:
    """Returns how often a ``CountingFn`` has been unpickled in this process (once per worker if the function is
    sent to each worker once)."""

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return _restore_counting, ()

    def __call__(self, _: object) -> int:
        return _UNPICKLED


def _mapping_stats(file: str) -> dict[str, int]:
    """Rss / Shared_Clean / Private_* kB of this process's mappings of ``file`` (from /proc/self/smaps)."""
    stats: dict[str, int] = {}
    inside = False
    with open("/proc/self/smaps") as fh:
        for line in fh:
            head = line.split()
            if head and "-" in head[0] and len(head) >= 5:  # a mapping's header line
                inside = len(head) >= 6 and head[5] == file
            elif inside and head and head[0].endswith(":") and len(head) >= 2 and head[1].isdigit():
                stats[head[0][:-1]] = stats.get(head[0][:-1], 0) + int(head[1])
    return stats


def shared_data_view(args: tuple[str, int]) -> dict[str, object]:
    """Loads the data set ``args = (spec, seed)`` in the worker, reads every training row, and reports where
    its training inputs live."""
    import numpy as np

    from tinyevo.data import load_dataset, mapped_file

    spec, seed = args
    d = load_dataset(spec, seed=seed)
    file = mapped_file(d.x_train)
    total = float(np.asarray(d.x_train, dtype=np.float64).sum())  # touches every page
    return {"file": str(file) if file else None, "sum": total,
            "inode": os.stat(file).st_ino if file else None, "smaps": _mapping_stats(str(file)) if file else {}}


def has_module(name: str) -> bool:
    """Whether the worker has imported ``name`` (before this task asked)."""
    import sys

    return name in sys.modules
