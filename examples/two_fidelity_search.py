"""A search in two fidelities, then the final retraining of the 2 best (the workflow of the CIFAR-10 benchmark,
shrunk to the built-in digits so that it runs in about a minute on a laptop).

1. a cheap search (`lowfi`: a subset of the data, half-width networks), no final training;
2. a search at full fidelity seeded with the 4 best genomes of the first (`init = ["run:DIR:4"]`);
3. `tinyevo retrain`'s library call: the 2 best retrained at once, one process each, on a GPU when PyTorch sees
   one (`device = "auto"`); the model with the best final validation accuracy becomes the run's model.

The same from the command line:
    tinyevo search --estimator lowfi --no-final --out runs/cheap
    tinyevo search --init run:runs/cheap:4 --no-final --out runs/full
    tinyevo retrain runs/full --top-k 2 --final-workers 2 --torch-device auto

Run: python examples/two_fidelity_search.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tinyevo.run.config import build_config, with_final_options
from tinyevo.run.engine import retrain_run, start_run
from tinyevo.run.retraining import best_retrained


def main() -> None:
    common = {"budget": 8, "workers": 1, "seed": 0, "train": {"epochs": 3}, "final": {"enabled": False}}
    with tempfile.TemporaryDirectory() as tmp:
        cheap = Path(tmp) / "cheap"
        start_run(build_config({**common, "estimator": "lowfi"}), run_dir=cheap)

        full = Path(tmp) / "full"
        config = build_config({**common, "estimator": "train", "init": [f"run:{cheap}:4"]})
        print("seeded with:", *config.init, sep="\n  ")
        result = start_run(config, run_dir=full)
        print(f"full-fidelity search: {len(result.trials)} trials, best val_acc {result.best.metrics['val_acc']:.3f}")

        final = with_final_options(config, top_k=2, workers=2, train={"epochs": 10, "device": "auto"})
        finals = retrain_run(full, config=final)
        for f in finals:
            print(f"trial {f.trial}: val_acc {f.metrics['val_acc']:.3f} test_acc {f.metrics['test_acc']:.3f}  "
                  f"{f.genome}")
        chosen = best_retrained(finals)
        print(f"the run's model: trial {chosen.trial} (test_acc {chosen.metrics['test_acc']:.3f})")


if __name__ == "__main__":  # needed: the retraining workers are spawned processes that import this file
    main()
