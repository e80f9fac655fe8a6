"""Which 1x1 convolutions crash PyTorch's oneDNN backward pass with channels-last tensors (issue 16).

Every case trains one ``nn.Conv2d`` (forward, ``square().sum().backward()``, three times) in a forked child
process, so a segfault or a glibc heap-corruption abort kills only that child. The child also computes the
same gradients with both tensors in the usual (contiguous) order and compares them, so silently wrong
gradients show up as ``wrong``.
Outcomes: ``ok``, ``wrong`` (max abs difference > 1e-3 relative), ``crash:SIGSEGV`` / ``crash:SIGABRT`` / ...,
``timeout``.

    python benchmarks/onednn_cl_crash.py                 # the default grids, ~1-2 min on 2 cores
    python benchmarks/onednn_cl_crash.py --case 8,4,1,2,64,96,0,1,1,0   # one case (fields as in Case)

Writes ``benchmarks/results/onednn_cl_crash.json`` (``--out``): the torch / oneDNN versions, the CPU's AVX-512
flags and one row per case. Findings: ``docs/notes/onednn-channels-last.md``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing as mp
import os
import platform
import signal
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch


@dataclass(frozen=True)
class Case:
    cin: int
    cout: int
    groups: int
    stride: int
    batch: int
    hw: int
    x_cl: bool  # input in channels-last order
    w_cl: bool  # weight in channels-last order
    x_grad: bool  # the input requires a gradient (backward-data runs too)
    bias: bool
    kernel: int = 1


BASE = Case(cin=8, cout=4, groups=1, stride=2, batch=64, hw=96, x_cl=True, w_cl=True, x_grad=True, bias=False)


def _grads(case: Case, channels_last: tuple[bool, bool]) -> list[torch.Tensor]:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(case.cin, case.cout, case.kernel, case.stride, groups=case.groups, bias=case.bias)
    x = torch.randn(case.batch, case.cin, case.hw, case.hw)
    if channels_last[0]:
        x = x.to(memory_format=torch.channels_last)
    if channels_last[1]:
        conv.to(memory_format=torch.channels_last)
    x.requires_grad_(case.x_grad)
    for _ in range(3):
        conv.zero_grad()
        if x.grad is not None:
            x.grad = None
        conv(x).square().sum().backward()
    out = [p.grad.detach().clone() for p in conv.parameters()]
    return out + ([x.grad.detach().clone()] if case.x_grad else [])


def _child(case: Case) -> None:
    torch.set_num_threads(1)
    got = _grads(case, (case.x_cl, case.w_cl))
    _ = [torch.empty(1 << 16).normal_() for _ in range(64)]  # allocations that trip over a corrupted heap
    want = _grads(case, (False, False))
    for g, w in zip(got, want):
        if not torch.allclose(g, w, rtol=1e-3, atol=1e-3 * float(w.abs().max()) + 1e-6):
            os._exit(3)
    os._exit(0)


def run_case(case: Case, timeout_s: float = 120.0) -> str:
    """The outcome of one case, run in a forked child process."""
    p = mp.get_context("fork").Process(target=_child, args=(case,))
    p.start()
    p.join(timeout_s)
    if p.is_alive():
        p.kill()
        p.join()
        return "timeout"
    code = p.exitcode
    if code == 0:
        return "ok"
    if code == 3:
        return "wrong"
    if code is not None and code < 0:
        return f"crash:{signal.Signals(-code).name}"
    return f"exit:{code}"


def grids() -> dict[str, list[Case]]:
    """One factor at a time around the crashing base case, then the products that pin the trigger down."""
    one = [BASE]
    one += [replace(BASE, cin=c) for c in (1, 2, 3, 4, 12, 15, 16, 17, 24, 32, 40, 48, 64)]
    one += [replace(BASE, cout=c) for c in (1, 2, 8, 16, 17, 32, 64)]
    one += [replace(BASE, stride=s) for s in (1, 3, 4)]
    one += [replace(BASE, batch=b) for b in (1, 2, 8, 16)]
    one += [replace(BASE, hw=h) for h in (4, 7, 8, 16, 32, 33, 48)]
    one += [replace(BASE, x_cl=a, w_cl=b) for a, b in ((True, False), (False, True), (False, False))]
    one += [replace(BASE, x_grad=False), replace(BASE, bias=True)]
    one += [replace(BASE, groups=g, cout=8) for g in (2, 4, 8)]
    one += [replace(BASE, kernel=3)]
    cin_stride = [replace(BASE, cin=c, cout=o, stride=s)
                  for c, o, s in itertools.product((4, 8, 12, 16, 24, 32, 48), (4, 16, 64), (1, 2))]
    small = [replace(BASE, cin=c, stride=2, batch=b, hw=h)
             for c, b, h in itertools.product((8, 16, 24), (8, 64), (8, 16, 48))]
    return {"one_factor": one, "cin_cout_stride": cin_stride, "cin_batch_hw": small}


def _flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return sorted(w for w in line.split() if w.startswith("avx512"))
    except OSError:
        pass
    return []


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", help="one case: cin,cout,groups,stride,batch,hw,x_cl,w_cl,x_grad,bias[,kernel]")
    ap.add_argument("--grid", default="all", help="comma-separated grid names (default all)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "onednn_cl_crash.json"))
    args = ap.parse_args()
    if args.case:
        v = [int(t) for t in args.case.split(",")]
        case = Case(*v[:6], *(bool(t) for t in v[6:10]), *v[10:])  # type: ignore[arg-type]
        print(asdict(case), run_case(case))
        return 0
    all_grids = grids()
    names = list(all_grids) if args.grid == "all" else args.grid.split(",")
    rows = []
    t0 = time.perf_counter()
    for name in names:
        for case in all_grids[name]:
            outcome = run_case(case)
            rows.append({"grid": name, **asdict(case), "outcome": outcome})
            print(f"{name:16s} {asdict(case)} -> {outcome}", flush=True)
    result = {
        "torch": torch.__version__,
        "onednn": next((w for w in torch.__config__.show().split() if w.startswith(("v2", "v3"))), None),
        "cpu_avx512": _flags(),
        "machine": platform.machine(),
        "seconds": round(time.perf_counter() - t0, 1),
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    bad = [r for r in rows if r["outcome"] != "ok"]
    print(f"{len(bad)} of {len(rows)} cases not ok; written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
