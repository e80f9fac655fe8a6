"""Run or resume a fake-evaluator search in a subprocess (for kill -9 tests).

usage: python fake_search.py start|resume RUN_DIR BATCH SLEEP_S
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run_fakes import FakeEvaluate, fake_config, fake_parts  # noqa: E402

from tinyevo.run.config import RunConfig  # noqa: E402
from tinyevo.run.engine import RunAssembly, resume_run, start_run  # noqa: E402


def CONFIG(batch: int) -> RunConfig:  # noqa: N802 - shared with the test
    return fake_config(budget=24, batch=batch)


def PARTS(config: RunConfig, sleep_s: float = 0.0) -> RunAssembly:  # noqa: N802
    return fake_parts(config, evaluate=FakeEvaluate(sleep_s=sleep_s, fail_marker="avg_pool_3x3~0|+|avg"))


def main() -> int:
    mode, run_dir, batch, sleep_s = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    config = CONFIG(batch)
    parts = PARTS(config, sleep_s)
    if mode == "start":
        start_run(config, run_dir=run_dir, parts=parts)
    else:
        resume_run(run_dir, parts=parts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
