"""Per-step overhead of tinyevo's candidate training against a minimal PyTorch loop on the same module.

For each network (an MLP on digits, a chain conv net and a ``blocks`` net on seeded random images), both sides
train the same module (tinyevo's builder, same seed, same memory layout) for one epoch at batch 64 and then
measure the validation accuracy once:

* ``tinyevo``: :func:`tinyevo.training.fit` with the candidate-training defaults (AdamW, cosine
  schedule, gradient clipping, divergence detection, one evaluation per epoch);
* ``minimal``: shuffle, forward, cross entropy, ``zero_grad``, backward, fused AdamW step (where the CPU build
  has it, else the default AdamW) -- no clipping, schedule or checks.

Repetitions are interleaved (tinyevo, minimal, tinyevo, ...) and the medians compared, of the wall-clock time
and of the process CPU time (steadier on a shared machine). Also reported: FLOPs per
training step (forward + backward, counted by ``torch.utils.flop_counter``), the dispatched ATen ops per step of
each loop, and the achieved FLOP/s as a fraction of this machine's float32 matmul peak at the same thread count.
Writes ``benchmarks/results/train_overhead.json`` (``--out``: elsewhere)::

    python benchmarks/train_overhead.py --threads 1 --reps 7
    python benchmarks/train_overhead.py --threads 2 --reps 7 --out benchmarks/results/train_overhead_threads2.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tinyevo.data import Dataset, as_tensor, from_arrays, load_dataset
from tinyevo.nn import build_model
from tinyevo.spaces import create_space
from tinyevo.training import TrainConfig, fit
from tinyevo.training.memory_format import ChannelsLast

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "train_overhead.json"
BATCH = 64

NETS = (  # name, space, genome, data
    ("mlp", "chain", "flat-dense_c32-dense_c64", "digits"),
    ("chain_conv", "chain", "conv_k3_s2_c16-dsc_k3_s2_c32-gap-dense_c32", "random:1x28x28:2048"),
    ("blocks", "blocks", "r48_w0.3-mb_d1_k3_e1_c8-mb_d1_k3_e1_c16-mb_d1_k3_e1_c24-mb_d1_k3_e1_c48-mb_d1_k3_e1_c80"
     "-mb_d1_k3_e1_c128", "random:3x48x48:512"),
)


def _data(spec: str) -> Dataset:
    if spec == "digits":
        return load_dataset("digits", seed=0)
    _, shape, n = spec.split(":")
    c, h, w = (int(v) for v in shape.split("x"))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((int(n), c, h, w)).astype(np.float32)
    y = rng.integers(0, 10, int(n))
    return from_arrays(x, y, name="random", channels_last=False, num_classes=10, seed=0)


def _model(space_name: str, genome: str, data: Dataset) -> nn.Module:
    space = create_space(space_name, input_shape=data.input_shape, num_classes=data.num_classes)
    return build_model(space.decode(space.parse(genome)), seed=0)


def _channels_last(model: nn.Module) -> ChannelsLast:
    """The layout ``fit`` uses on the CPU, so both sides run the same kernels."""
    return ChannelsLast([model] if any(p.ndim == 4 for p in model.parameters()) else [])


def _tinyevo_epoch(model: nn.Module, data: Dataset) -> tuple[float, float]:
    t, c = time.perf_counter(), time.process_time()
    fit(model, data, config=TrainConfig(epochs=1, batch_size=BATCH), seed=0)
    return time.perf_counter() - t, time.process_time() - c


def _adamw(model: nn.Module) -> tuple[torch.optim.Optimizer, bool]:
    try:
        return torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True), True
    except (RuntimeError, ValueError):  # a build without the fused CPU kernel
        return torch.optim.AdamW(model.parameters(), lr=1e-3), False


def _minimal_step(model: nn.Module, opt: torch.optim.Optimizer, xb: torch.Tensor, yb: torch.Tensor) -> None:
    loss = F.cross_entropy(model(xb), yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _minimal_epoch(model: nn.Module, data: Dataset) -> tuple[float, float]:
    t, c = time.perf_counter(), time.process_time()
    layout = _channels_last(model)
    x, y = as_tensor(data.x_train), as_tensor(data.y_train)  # no copies, as fit makes none
    xv, yv = as_tensor(data.x_val), as_tensor(data.y_val)
    opt, _ = _adamw(model)
    model.train()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    for i in range(0, len(x) - 1, BATCH):
        idx = perm[i:i + BATCH]
        _minimal_step(model, opt, x[idx], y[idx])
    model.eval()
    with torch.no_grad():
        float((model(xv).argmax(1) == yv).float().mean())
    layout.undo()
    return time.perf_counter() - t, time.process_time() - c


def _flops_per_step(model: nn.Module, data: Dataset) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    xb = torch.tensor(data.x_train[:BATCH])
    yb = torch.tensor(data.y_train[:BATCH])
    counter = FlopCounterMode(display=False)
    with counter:
        F.cross_entropy(model(xb), yb).backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def _ops_per_step(run_steps: Callable[[], None], steps: int) -> float:
    """ATen ops dispatched per training step: the CPU profiler's ATen events of one epoch (including its set-up
    and validation pass) that no other ATen op called (an op inside a Python-level range such as
    ``torch.optim``'s ``Optimizer.step`` counts too), divided by the steps."""
    from torch.profiler import ProfilerActivity, profile

    def outermost(e: object) -> bool:
        parent = e.cpu_parent  # type: ignore[attr-defined]
        while parent is not None:
            if parent.name.startswith("aten::"):
                return False
            parent = parent.cpu_parent
        return True

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run_steps()
    events = [e for e in prof.events() if e.name.startswith("aten::") and outermost(e)]
    return len(events) / steps


def _peak_flops() -> float:
    a = torch.randn(1024, 1024)
    b = torch.randn(1024, 1024)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(10):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * 1024**3 / best


def _measure(name: str, space: str, genome: str, spec: str, reps: int) -> dict[str, object]:
    data = _data(spec)
    n = len(data.x_train)
    steps = n // BATCH + (1 if n % BATCH >= 2 else 0)
    _tinyevo_epoch(_model(space, genome, data), data)  # warm-up of both paths (kernels, allocator, the
    _minimal_epoch(_model(space, genome, data), data)  # optimiser's first-call imports)
    tiny_both: list[tuple[float, float]] = []  # (wall-clock, process CPU) seconds
    mini_both: list[tuple[float, float]] = []
    for rep in range(reps):
        order = ((tiny_both, _tinyevo_epoch), (mini_both, _minimal_epoch))
        for times, run in (order if rep % 2 == 0 else order[::-1]):
            times.append(run(_model(space, genome, data), data))
    tiny, tiny_cpu = [w for w, _ in tiny_both], [c for _, c in tiny_both]
    mini, mini_cpu = [w for w, _ in mini_both], [c for _, c in mini_both]
    model = _model(space, genome, data)
    flops = _flops_per_step(model, data)

    # ops per step: the tinyevo loop's step vs the minimal one (both profiled over one epoch)
    def tiny_run() -> None:
        fit(_model(space, genome, data), data, config=TrainConfig(epochs=1, batch_size=BATCH), seed=0)

    def mini_run() -> None:
        _minimal_epoch(_model(space, genome, data), data)

    t_med, m_med = statistics.median(tiny), statistics.median(mini)
    return {
        "net": name, "space": space, "genome": genome, "data": spec, "train_samples": n, "steps_per_epoch": steps,
        "tinyevo_epoch_s": t_med, "minimal_epoch_s": m_med, "ratio": t_med / m_med,
        "ratio_of_minima": min(tiny) / min(mini),
        "tinyevo_epoch_cpu_s": statistics.median(tiny_cpu), "minimal_epoch_cpu_s": statistics.median(mini_cpu),
        "ratio_cpu": statistics.median(tiny_cpu) / statistics.median(mini_cpu),
        "tinyevo_runs_s": tiny, "minimal_runs_s": mini, "tinyevo_runs_cpu_s": tiny_cpu, "minimal_runs_cpu_s": mini_cpu,
        "flops_per_step": flops,
        "aten_ops_per_step_tinyevo": _ops_per_step(tiny_run, steps),
        "aten_ops_per_step_minimal": _ops_per_step(mini_run, steps),
        "tinyevo_flops_per_s": flops * steps / t_med, "minimal_flops_per_s": flops * steps / m_med,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--nets", default=",".join(n[0] for n in NETS))
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    peak = _peak_flops()
    _, fused = _adamw(nn.Linear(2, 2))
    rows = [_measure(*net, args.reps) for net in NETS if net[0] in args.nets.split(",")]
    for r in rows:
        r["tinyevo_pct_of_peak"] = 100 * float(r["tinyevo_flops_per_s"]) / peak  # type: ignore[arg-type]
        r["minimal_pct_of_peak"] = 100 * float(r["minimal_flops_per_s"]) / peak  # type: ignore[arg-type]
        print(f"{r['net']:>10}: tinyevo {r['tinyevo_epoch_s'] * 1e3:8.1f} ms  minimal "
              f"{r['minimal_epoch_s'] * 1e3:8.1f} ms  ratio {r['ratio']:.2f}x (CPU time {r['ratio_cpu']:.2f}x, "
              f"of minima {r['ratio_of_minima']:.2f}x)  "
              f"{r['flops_per_step'] / 1e6:.1f} MFLOP/step  aten ops/step {r['aten_ops_per_step_tinyevo']:.0f} vs "
              f"{r['aten_ops_per_step_minimal']:.0f}  {r['tinyevo_pct_of_peak']:.1f}% vs "
              f"{r['minimal_pct_of_peak']:.1f}% of peak")
    result = {
        "command": f"python benchmarks/train_overhead.py --threads {args.threads} --reps {args.reps}"
        + (f" --out {args.out}" if args.out.resolve() != OUT else ""),
        "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
        "threads": args.threads, "batch_size": BATCH, "reps": args.reps, "fused_adamw_on_cpu": fused,
        "peak_matmul_flops_per_s": peak,
        "note": "epoch = one training epoch plus one validation pass; both sides build the module with the same "
                "seed and layout; interleaved repetitions, medians; the machine may be shared (2 cores); ATen ops "
                "per step count every op not called by another ATen op (backward and optimiser ops included)",
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "nets": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
