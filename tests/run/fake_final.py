"""Run, resume or retrain a fake run whose final retraining is slow (for kill -9 tests of the final phase).

usage: python fake_final.py start|resume|retrain RUN_DIR SLEEP_S
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run_fakes import fake_config, fake_parts  # noqa: E402

from tinyevo.run.config import RunConfig  # noqa: E402
from tinyevo.run.engine import RunAssembly, resume_run, retrain_run, start_run  # noqa: E402


def CONFIG() -> RunConfig:  # noqa: N802 - shared with the test
    return fake_config(executor="inprocess", budget=8, final=True, pareto=True)


def slow_trainer(sleep_s: float, offset: int) -> Any:
    def trainer(ir: Any, data: Any, *, config: Any, seed: int, **_: Any) -> Any:
        import torch

        time.sleep(sleep_s)
        torch.manual_seed(seed + offset)
        return SimpleNamespace(model=torch.nn.Linear(3, 2), history=(),
                               metrics={"val_acc": round(0.5 + offset / 1000, 3), "test_acc": 0.75})
    return trainer


def PARTS(config: RunConfig, sleep_s: float = 0.0, offset: int = 0) -> RunAssembly:  # noqa: N802
    parts = fake_parts(config)
    parts.trainer = slow_trainer(sleep_s, offset)
    return parts


def main() -> int:
    mode, run_dir, sleep_s = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
    config = CONFIG()
    if mode == "start":
        start_run(config, run_dir=run_dir, parts=PARTS(config, sleep_s))
    elif mode == "resume":
        resume_run(run_dir, parts=PARTS(config, sleep_s))
    else:  # a retraining that gives other weights and metrics than the run's own
        retrain_run(run_dir, parts=PARTS(config, sleep_s, offset=7))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
