"""Child process that loads a ``.tflite`` in TFLite-Micro at given arena sizes; started by :mod:`tinyevo.deploy.tflm`.

The ``tflite-micro`` Python interpreter does not always raise when the arena is too small: for some models a few
sizes just below the smallest one that works crash the process (SIGSEGV in TFLM's GreedyMemoryPlanner). Every load
at a size that is not known to work therefore happens in this child, never in the tinyevo process.

``python -m tinyevo.deploy._tflm_probe MODEL --lower LO --upper HI [--upper-fits] [--report]``

* ``--report``: load and run the model with an ``HI``-byte arena and send TFLM's allocation report;
* then bisect the smallest arena size in ``[LO, HI]`` with which the model loads and runs one inference on zeros
  (``HI`` is first checked unless ``--upper-fits`` or ``--report`` says it works).

The child speaks JSON lines on its original stdout, written unbuffered *before* each step, so that when it dies the
parent knows at which size: ``{"try": N}`` (about to load with ``N`` bytes), ``{"size": N, "fits": bool, "detail":
str}``, ``{"report": str}``, ``{"required": N}``. The bisection is deterministic, so a parent that treats a crashing
size as "does not fit" can continue it in a fresh child with the narrowed bounds.

This module imports numpy and ``tflite_micro`` only (no torch), for a short start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

Fits = Callable[[bytes, int], tuple[bool, str]]


class _Channel:
    """The protocol stream: a private copy of fd 1; the process's own fd 1 then points at stderr, so that anything
    a library prints to stdout cannot corrupt the protocol."""

    def __init__(self) -> None:
        sys.stdout.flush()
        self.fd = os.dup(1)
        os.dup2(2, 1)

    def send(self, **event: Any) -> None:
        data = (json.dumps(event) + "\n").encode()
        while data:
            data = data[os.write(self.fd, data):]


def _tflm_fits(model: bytes, size: int) -> tuple[bool, str]:
    """Load ``model`` with a ``size``-byte arena and run one inference on zeros (TFLM's log is captured)."""
    import numpy as np

    from tinyevo.deploy.tflm import _captured_fds, _runtime

    runtime = _runtime()
    with _captured_fds(2) as text:
        try:
            it = runtime.Interpreter.from_bytes(model, arena_size=int(size))
            d = it.get_input_details(0)
            it.set_input(np.zeros(d["shape"], dtype=d["dtype"]), 0)
            it.invoke()
            ok, err = True, ""
        except (RuntimeError, ValueError) as exc:
            ok, err = False, str(exc)
    lines = text[0].strip().splitlines()
    return ok, (lines[-1] if lines and not ok else err)


def _tflm_report(model: bytes, size: int) -> str:
    """TFLM's ``print_allocations()`` text after loading ``model`` with a ``size``-byte arena and one inference."""
    import numpy as np

    from tinyevo.deploy.tflm import _captured_fds, _runtime

    runtime = _runtime()
    with _captured_fds(2):
        it = runtime.Interpreter.from_bytes(model, arena_size=int(size))
    d = it.get_input_details(0)
    it.set_input(np.zeros(d["shape"], dtype=d["dtype"]), 0)
    it.invoke()
    with _captured_fds(1, 2) as text:
        it.print_allocations()
    return text[0]


def bisect(model: bytes, *, lower: int, upper: int, upper_fits: bool, fits: Fits, channel: _Channel) -> None:
    """Send every probe of the bisection of the smallest working size in ``[lower, upper]``, then the result."""
    lo, hi = max(1, min(lower, upper)), upper

    def probe(n: int) -> bool:
        channel.send(**{"try": n})
        ok, detail = fits(model, n)
        channel.send(size=n, fits=ok, detail=detail)
        return ok

    if not upper_fits and not probe(hi):
        return
    while lo < hi:
        mid = (lo + hi) // 2
        if probe(mid):
            hi = mid
        else:
            lo = mid + 1
    channel.send(required=hi)


def main(argv: Sequence[str] | None = None, *, fits: Fits | None = None) -> int:
    """Entry point; ``fits`` replaces the TFLM load (tests run the protocol with a fake that crashes)."""
    p = argparse.ArgumentParser(prog="python -m tinyevo.deploy._tflm_probe")
    p.add_argument("model")
    p.add_argument("--lower", type=int, required=True)
    p.add_argument("--upper", type=int, required=True)
    p.add_argument("--upper-fits", action="store_true")
    p.add_argument("--report", action="store_true")
    args = p.parse_args(argv)
    channel = _Channel()
    with open(args.model, "rb") as f:
        model = f.read()
    check = fits or _tflm_fits
    upper_fits = args.upper_fits
    if args.report:
        channel.send(**{"try": args.upper})
        ok, detail = check(model, args.upper)
        channel.send(size=args.upper, fits=ok, detail=detail)
        if not ok:
            return 0
        channel.send(report=_tflm_report(model, args.upper))
        upper_fits = True
    bisect(model, lower=args.lower, upper=args.upper, upper_fits=upper_fits, fits=check, channel=channel)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
