"""Does ``torch.compile`` pay for final training? Compile time against the per-epoch saving, on the CPU.

For each network (tinyevo's builder, straight-line modules), a plain training step (gather a shuffled batch,
forward, cross entropy, backward, fused AdamW step) runs eagerly and with ``torch.compile(model)`` (inductor, the
default mode) on seeded random data of the network's input shape:

* compile cost: the wall time of the compiled model's first training step at the full batch, its first step at the
  last (smaller) batch of an epoch (a recompile for the new shape) and its first evaluation batch (another graph:
  BatchNorm in eval mode), minus the eager times of the same three calls;
* steady state: the median time per training step, eager and compiled, over interleaved rounds of ``--steps``;
* break-even: ``compile cost / (eager - compiled) per epoch`` epochs of ``--train-size`` samples (Fashion-MNIST's
  54,000 training rows by default); none when compiled steps are not faster.

    python benchmarks/compile_breakeven.py --threads 1 --steps 30 --rounds 5
    python benchmarks/compile_breakeven.py --warm-cache   # inductor's cache from an earlier run of the same nets

By default inductor compiles into a fresh cache directory (a cold compile, as for a new architecture).

Writes ``benchmarks/results/compile_breakeven.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

if "--warm-cache" not in sys.argv:  # a cold compile, as for an architecture never compiled before: a fresh cache
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="tinyevo-inductor-")

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tinyevo.nn import build_model
from tinyevo.spaces import create_space

ROOT = Path(__file__).resolve().parents[1]
NETS = (  # name, space, genome, input shape
    ("chain_conv", "chain", "conv_k3_s2_c16-dsc_k3_s2_c32-gap-dense_c32", (1, 28, 28)),
    ("blocks", "blocks", ("r48_w0.3-mb_d1_k3_e1_c8-mb_d1_k3_e1_c16-mb_d1_k3_e1_c24-mb_d1_k3_e1_c48-mb_d1_k3_e1_c80"
                          "-mb_d1_k3_e1_c128"), (3, 48, 48)),
)


def _model(space: str, genome: str, shape: tuple[int, int, int]) -> nn.Module:
    s = create_space(space, input_shape=shape, num_classes=10)
    return build_model(s.decode(s.parse(genome)), seed=0)


class Trainer:
    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, seed: int) -> None:
        self.model, self.x, self.y, self.batch = model, x, y, batch
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
        self.gen = torch.Generator().manual_seed(seed)

    def step(self, n: int | None = None) -> None:
        idx = torch.randint(0, len(self.x), (n or self.batch,), generator=self.gen)
        loss = F.cross_entropy(self.model(self.x[idx]), self.y[idx])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    @torch.no_grad()
    def evaluate(self, n: int) -> None:
        self.model.eval()
        self.model(self.x[:n])
        self.model.train()


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def measure(name: str, space: str, genome: str, shape: tuple[int, int, int], args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((2048, *shape)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 10, 2048))
    last = args.train_size % args.batch or args.batch
    eager = Trainer(_model(space, genome, shape), x, y, args.batch, 0)
    compiled = Trainer(torch.compile(_model(space, genome, shape)), x, y, args.batch, 0)
    first = {}
    for label, tr in (("eager", eager), ("compiled", compiled)):
        first[label] = {
            "first_step_s": _timed(tr.step),
            "first_last_batch_step_s": _timed(lambda tr=tr: tr.step(last)),
            "first_eval_s": _timed(lambda tr=tr: tr.evaluate(args.eval_batch)),
        }
    compile_cost = sum(first["compiled"].values()) - sum(first["eager"].values())
    per_step: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(args.rounds):
        for label, tr in (("eager", eager), ("compiled", compiled)):
            tr.step()  # (not timed: a warm step after switching)
            per_step[label].append(_timed(lambda tr=tr: [tr.step() for _ in range(args.steps)]) / args.steps)
    med = {k: statistics.median(v) for k, v in per_step.items()}
    steps_per_epoch = -(-args.train_size // args.batch)
    saving = (med["eager"] - med["compiled"]) * steps_per_epoch
    return {
        "net": name, "genome": genome, "input_shape": list(shape),
        "first_calls_s": {k: {kk: round(vv, 3) for kk, vv in v.items()} for k, v in first.items()},
        "compile_cost_s": round(compile_cost, 2),
        "median_step_s": {k: round(v, 5) for k, v in med.items()},
        "compiled_speedup": round(med["eager"] / med["compiled"], 3),
        "epoch_s": {k: round(v * steps_per_epoch, 2) for k, v in med.items()},
        "saving_per_epoch_s": round(saving, 2),
        "break_even_epochs": round(compile_cost / saving, 1) if saving > 0 else None,
        "rounds_s": {k: [round(x, 5) for x in v] for k, v in per_step.items()},
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--eval-batch", type=int, default=1024)
    ap.add_argument("--train-size", type=int, default=54000)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--nets", default=",".join(n[0] for n in NETS))
    ap.add_argument("--warm-cache", action="store_true",
                    help="use inductor's usual cache (compiled before: the compile cost drops)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "compile_breakeven.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for name, space, genome, shape in NETS:
        if name not in args.nets.split(","):
            continue
        row = measure(name, space, genome, shape, args)
        rows.append(row)
        print(f"{name}: compile {row['compile_cost_s']} s, step eager {row['median_step_s']['eager'] * 1e3:.2f} ms "
              f"compiled {row['median_step_s']['compiled'] * 1e3:.2f} ms ({row['compiled_speedup']}x), "
              f"break-even {row['break_even_epochs']} epochs", flush=True)
    result = {
        "command": "python benchmarks/compile_breakeven.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "torch": torch.__version__, "threads": args.threads, "inductor_cache": "warm" if args.warm_cache else "cold",
        "batch": args.batch, "train_size": args.train_size,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average_at_end": list(os.getloadavg())},
        "nets": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    if not args.warm_cache:
        shutil.rmtree(os.environ["TORCHINDUCTOR_CACHE_DIR"], ignore_errors=True)


if __name__ == "__main__":
    main()
