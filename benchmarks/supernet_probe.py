"""Where a trained supernet's sub-networks lose accuracy: the largest sub-network with one gene changed at a time.

Loads a supernet saved by ``benchmarks/supernet_rank.py`` (default: its 12-epoch one) and scores, with
:class:`~tinyevo.supernet.score.SupernetScorer` on the same Fashion-MNIST split, the largest sub-network and
variants that change one dimension (resolution, width, expansion, kernel, depth, base widths) to a smaller
choice. Writes JSON::

    nice -n 10 python benchmarks/supernet_probe.py --supernet benchmarks/out/supernet_rank/sn_e12_b128_r2/supernet \
        --out benchmarks/results/supernet_probe.json
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

from tinyevo.supernet import ScoreConfig, SupernetScorer, load_supernet

sys.path.insert(0, str(Path(__file__).resolve().parent))
from supernet_rank import load_split  # (the rank benchmark's data split)

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--supernet", type=Path, default=ROOT / "benchmarks/out/supernet_rank/sn_e12_b128_r2/supernet")
    p.add_argument("--data", type=Path, default=(ROOT / ".." / "shared" / "data" / "fashion_mnist.npz").resolve())
    p.add_argument("--fraction", type=float, default=0.1)
    p.add_argument("--val-rows", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/out/supernet_probe.json")
    args = p.parse_args()
    torch.set_num_threads(1)
    data = load_split(args.data, args.fraction, args.val_rows, args.seed)
    net, info = load_supernet(args.supernet)
    space = net.space
    scorer = SupernetScorer(net, data, config=ScoreConfig(seed=args.seed))
    big = net.largest()

    def stages(f):  # type: ignore[no-untyped-def]
        return replace(big, stages=tuple(f(i, s) for i, s in enumerate(big.stages)))

    variants = {"largest": big, "smallest": net.smallest(),
                f"resolution {min(space.resolutions)}": replace(big, resolution=min(space.resolutions)),
                f"width {min(space.width_multipliers)}": replace(big, width=min(space.width_multipliers))}
    for e in space.expands[:-1]:
        variants[f"expand {e}"] = stages(lambda i, s, e=e: replace(s, expand=e))
    for k in space.kernels[:-1]:
        variants[f"kernel {k}"] = stages(lambda i, s, k=k: replace(s, kernel=k))
    for d in space.depths[:-1]:
        variants[f"depth {d}"] = stages(lambda i, s, d=d: replace(s, depth=d))
    variants["smallest base widths"] = stages(lambda i, s: replace(s, channels=space.stage_channels[i][0]))
    result = {"command": " ".join(["python", *sys.argv]), "supernet": str(args.supernet),
              "training": dict(info.training), "val_rows": len(data.x_val),
              "scores": {name: {"genome": str(g), "val_acc": scorer.score(g)} for name, g in variants.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name, rec in result["scores"].items():
        print(f"{name:24s} {rec['val_acc']:.4f}  {rec['genome']}")


if __name__ == "__main__":
    main()
