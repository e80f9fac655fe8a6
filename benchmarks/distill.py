"""Knowledge distillation: does a small network trained with a bigger teacher (``[final] teacher``,
``tinyevo retrain --teacher``) beat the same network trained on the labels alone?

The teacher is trained once; then the student is trained with the same seeds (same initial weights, batch order and
augmentation) without a teacher and with it at each ``--alpha``, so the comparison is paired. Prints a table and
writes ``benchmarks/out/distill_<data>.json``::

    python benchmarks/distill.py                                   # digits, seconds
    python benchmarks/distill.py --data ../shared/data/cifar10-jpg.tar.gz --device cuda \\
        --student conv_k5_s2_c64_r-dsc_k3_s1_c48-dsc_k5_s1_c64_r-dsc_k5_s1_c64-dsc_k5_s1_c64-dsc_k3_s1_c24_r-gap \\
        --teacher conv_k3_s1_c64_r-conv_k3_s1_c64_r-conv_k3_s2_c128_r-conv_k3_s1_c128_r-conv_k3_s2_c256_r-gap \\
        --epochs 100 --teacher-epochs 60 --seeds 1 --augment shift,flip --optimizer sgd --lr 0.1   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="digits")
    p.add_argument("--space", default="chain")
    p.add_argument("--student", default="flat-dense_c32-dense_c64", help="student genome (default: the model "
                   "`tinyevo search` finds on digits)")
    p.add_argument("--teacher", default="conv_k3_s1_c32_r-conv_k3_s1_c64_r-conv_k3_s1_c64_r-gap-dense_c128",
                   help="teacher genome")
    p.add_argument("--epochs", type=int, default=30, help="student epochs")
    p.add_argument("--teacher-epochs", type=int, default=30)
    p.add_argument("--seeds", type=int, default=5, help="student trainings per arm (paired by seed)")
    p.add_argument("--alpha", default="0.5,0.9", help="comma-separated distillation weights")
    p.add_argument("--temperature", type=float, default=4.0)
    p.add_argument("--optimizer", default="adamw")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--augment", default="", help="comma-separated: shift, flip")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()

    from tinyevo.estimators import TrainConfig, train_model
    from tinyevo.run.assembly import cached_dataset
    from tinyevo.spaces import create_space

    data = cached_dataset(args.data, 0, args.val_fraction)
    space = create_space(args.space, input_shape=data.input_shape, num_classes=data.num_classes)
    student_ir, teacher_ir = (space.decode(space.parse(g)) for g in (args.student, args.teacher))
    aug = tuple(a for a in args.augment.split(",") if a)
    base = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                       augment=aug, shift_pixels=4 if data.input_shape[-1] >= 32 else 2,
                       label_smoothing=args.label_smoothing, device=args.device, threads=args.threads,
                       distill_temperature=args.temperature)
    t0 = time.perf_counter()
    teacher = train_model(teacher_ir, data, config=replace(base, epochs=args.teacher_epochs), seed=12345)
    teacher_s = time.perf_counter() - t0
    tm = teacher.metrics
    print(f"teacher {args.teacher}: val {100 * tm['val_acc']:.2f}%  test {100 * tm['test_acc']:.2f}%  "
          f"({teacher_s:.0f} s)", flush=True)
    alphas = [float(a) for a in args.alpha.split(",") if a]
    arms: dict[str, list[dict[str, float]]] = {"labels only": []}
    arms.update({f"alpha {a:g}": [] for a in alphas})
    for seed in range(args.seeds):
        for name, rows in arms.items():
            cfg = base if name == "labels only" else replace(base, distill_alpha=float(name.split()[1]))
            t = time.perf_counter()
            res = train_model(student_ir, data, config=cfg, seed=seed,
                              teacher=None if name == "labels only" else teacher.model)
            rows.append({"seed": seed, "val_acc": res.metrics["val_acc"], "test_acc": res.metrics["test_acc"],
                               "train_s": time.perf_counter() - t})
            print(f"seed {seed} {name:>12}: val {100 * res.metrics['val_acc']:.2f}%  "
                  f"test {100 * res.metrics['test_acc']:.2f}%", flush=True)

    def mean(rows: list[dict[str, float]], key: str) -> float:
        return statistics.mean(r[key] for r in rows)

    def sd(rows: list[dict[str, float]], key: str) -> float:
        return statistics.stdev(r[key] for r in rows) if len(rows) > 1 else 0.0

    plain = arms["labels only"]
    summary = []
    print(f"\nstudent {args.student}, {args.seeds} seed(s), {args.epochs} epochs")
    print(f"{'arm':>12} | {'val %':>13} | {'test %':>13} | test gain vs labels only (paired), wins")
    for name, rows in arms.items():
        gains = [r["test_acc"] - q["test_acc"] for r, q in zip(rows, plain, strict=True)]
        wins = sum(g > 0 for g in gains)
        summary.append({"arm": name, "val_acc_mean": mean(rows, "val_acc"), "val_acc_sd": sd(rows, "val_acc"),
                        "test_acc_mean": mean(rows, "test_acc"), "test_acc_sd": sd(rows, "test_acc"),
                        "test_gain_mean": statistics.mean(gains), "test_wins": wins})
        print(f"{name:>12} | {100 * mean(rows, 'val_acc'):6.2f} ± {100 * sd(rows, 'val_acc'):4.2f} | "
              f"{100 * mean(rows, 'test_acc'):6.2f} ± {100 * sd(rows, 'test_acc'):4.2f} | "
              f"{100 * statistics.mean(gains):+.2f} pp, {wins}/{len(gains)}")
    name = "digits" if args.data == "digits" else Path(args.data).name.split(".")[0]
    doc = {"data": args.data, "student": args.student, "teacher": args.teacher,
           "teacher_metrics": {k: tm[k] for k in ("val_acc", "test_acc", "train_time_s")},
           "config": asdict(base), "teacher_epochs": args.teacher_epochs, "seeds": args.seeds,
           "summary": summary, "runs": arms}
    out = args.out or OUT / f"distill_{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
