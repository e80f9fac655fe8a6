"""CIFAR-10 under 75 KB peak SRAM / 75 KB flash (int8): the MLPerf Tiny image-classification setting.

Goal: >= 85 % test accuracy (the MLPerf Tiny IC quality target). tinyevo's trainer runs on the CPU; reaching
the goal needs a long search and ~200 epochs of final training (hours of a GPU-class machine), so the script
has a budget profile:

* ``--profile cpu-small`` (default, ``benchmarks/configs/cifar10_mlperf.toml``): 12 minutes of low-fidelity
  search (``lowfi``: a quarter of the training data, half-width networks, one epoch) and 8 epochs of final
  training with shift / flip augmentation. An honest small run, far from the goal.
* ``--profile cpu-45m`` (``benchmarks/configs/cifar10_mlperf_cpu45.toml``): the population seeded with the
  known chain-space architectures (``init = ["zoo"]``), 12 minutes of low-fidelity search on two workers and
  30 minutes of final training on both cores (about 45 minutes in all). Writes ``cifar10_mlperf_cpu-45m.json``.
* ``--profile full``: 10 epochs per candidate at full fidelity, 6 hours of search, 200 final epochs, 4
  threads for the final training.

Peak SRAM counts the input and output buffers (tinyevo's default, the MCUNet / TFLM-arena convention); flash is
the estimated int8 ``.tflite`` size; latency is a cost-model estimate on the STM32F412.

Needs ``../shared/data/cifar10-jpg.tar.gz`` (or ``$TINYEVO_SHARED/data/...``)::

    python benchmarks/cifar10_mlperf.py --wall-limit 1800                 # CPU-small profile
    python benchmarks/cifar10_mlperf.py --profile cpu-45m --wall-limit 3300
    python benchmarks/cifar10_mlperf.py --profile full --wall-limit 36000
"""

from __future__ import annotations

import sys
from pathlib import Path

from _realdata import main, shared_dir

CONFIGS = Path(__file__).resolve().parent / "configs"
OUT = Path(__file__).resolve().parent / "out"
PROFILES = {
    "cpu-small": [],
    "cpu-45m": [],
    "gpu": ["--no-final"],
    "full": ["--estimator", "train", "--epochs", "10", "--time", "6h", "--final-epochs", "200"],
}

if __name__ == "__main__":
    argv = sys.argv[1:]
    profile = "cpu-small"
    if "--profile" in argv:
        i = argv.index("--profile")
        if i + 1 >= len(argv) or argv[i + 1] not in PROFILES:
            sys.exit(f"--profile needs one of {', '.join(PROFILES)}")
        profile = argv[i + 1]
        del argv[i : i + 2]
    name = "cifar10_mlperf"
    if profile in ("cpu-45m", "gpu"):
        name = f"cifar10_mlperf_{profile}"
        config = CONFIGS / ("cifar10_mlperf_cpu45.toml" if profile == "cpu-45m" else "cifar10_mlperf_gpu.toml")
        argv = ["--config", str(config), "--run-dir", str(OUT / f"{name}_run"), *argv]
    extra = PROFILES[profile]
    if extra:
        argv = [*argv, *([] if "--" in argv else ["--"]), *extra]
    sys.exit(main(name, __doc__ or "", goal=f"test_acc >= 0.85 (profile {profile})", argv=argv,
                  check_data=[shared_dir() / "data" / "cifar10-jpg.tar.gz"]))
