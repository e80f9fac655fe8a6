"""How good is a teacher? The validation and test accuracy of each retrained model given with ``--teacher`` and of
their ensemble (the mean of their logits, what ``tinyevo retrain --teacher A --teacher B`` distils from), on the
data of the first one's run. Prints a table and writes ``benchmarks/out/teacher_accuracy.json`` (or ``--out``)::

    R=benchmarks/out/cifar10_mlperf_gpu-stage2_run
    python benchmarks/teacher_accuracy.py --teacher ${R}_stage6:104 --teacher $R:106 --teacher $R:103
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", action="append", required=True, metavar="RUN[:N]",
                   help="a retrained model (its run's model, or trial N); repeat for an ensemble")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=OUT / "teacher_accuracy.json")
    args = p.parse_args()

    import torch

    from tinyevo.run.export import load_trial
    from tinyevo.estimators import accuracy
    from tinyevo.nn import Ensemble
    from tinyevo.run.retraining import load_teacher, parse_teacher

    torch.set_num_threads(args.threads)
    run_dir, number = parse_teacher(args.teacher[0])
    data = load_trial(run_dir, trial=number)[4]
    rows = []
    models = [(spec, load_teacher(spec)) for spec in args.teacher]
    if len(models) > 1:
        models.append(("ensemble", Ensemble([m for _, m in models]).eval()))
    for spec, model in models:
        start = time.perf_counter()
        val, test = accuracy(model, data.x_val, data.y_val), accuracy(model, data.x_test, data.y_test)
        rows.append({"teacher": spec, "val_acc": val, "test_acc": test, "eval_s": time.perf_counter() - start})
        print(f"{spec:>60}  val {100 * val:6.2f} %  test {100 * test:6.2f} %", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"data": data.summary(), "teachers": args.teacher, "rows": rows}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
