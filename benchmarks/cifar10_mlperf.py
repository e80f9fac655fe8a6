"""CIFAR-10 under 75 KB peak SRAM / 75 KB flash (int8): the MLPerf Tiny image-classification setting.

Goal: >= 85 % test accuracy (the MLPerf Tiny IC quality target). Reaching it needs a long search and ~200 epochs
of final training, so the script has budget profiles:

* ``--profile cpu-small`` (default, ``benchmarks/configs/cifar10_mlperf.toml``): 12 minutes of low-fidelity
  search (``lowfi``: a quarter of the training data, half-width networks, one epoch) and 8 epochs of final
  training with shift / flip augmentation. An honest small run, far from the goal.
* ``--profile cpu-45m`` (``benchmarks/configs/cifar10_mlperf_cpu45.toml``): the population seeded with the
  known chain-space architectures (``init = ["zoo"]``), 12 minutes of low-fidelity search on two workers and
  30 minutes of final training on both cores (about 45 minutes in all). Writes ``cifar10_mlperf_cpu-45m.json``.
* ``--profile gpu`` then ``--profile gpu-stage2`` then ``tinyevo retrain`` (search on the CPU, finish on a GPU):
  stage 1 (``cifar10_mlperf_gpu.toml``, CPU): 30 minutes of low-fidelity search with the SRAM limit priced as
  TFLite-Micro's real arena (``planner = "tflm"``), no final training. Stage 2 (``cifar10_mlperf_gpu_stage2.toml``,
  GPU): the search goes on for 7 minutes at full fidelity (8 epochs, all the data, full width, 8 candidates at
  once on one GPU), seeded with stage 1's 12 best genomes (``init = ["run:...:12", "zoo"]``). Stage 3 (GPU):
  ``tinyevo retrain benchmarks/out/cifar10_mlperf_gpu-stage2_run`` retrains stage 2's 6 best, 6 at once, each
  fitted to 8 minutes, and keeps the best by final validation accuracy. Stage 4 (GPU): the chosen trial alone,
  fitted to 7 minutes (``tinyevo retrain RUN --trial N --workers 1 --time-limit 420s``). ``--profile gpu-stage2
  --parse-only`` (with the deploy extra) then measures the int8 model on TFLite-Micro on the CPU. Each GPU stage
  fits in one 10-minute job; a longer final training can span jobs (checkpoints: the same ``tinyevo retrain`` command
  resumes it) or add cycles (``--continue``). Stages 5-9 (README) went on on the CPU: more cycles, distillation from
  an ensemble of the run's models (``--teacher RUN:N``, repeated), ``restore_best``, and ``tinyevo deepen`` (one
  more residual layer that starts as the identity) before the last cycle; ``--parse-only --run-dir DIR`` measures a
  copy of the run that holds a later stage.
* ``--profile full``: 10 epochs per candidate at full fidelity, 6 hours of search, 200 final epochs, 4
  threads for the final training.

Peak SRAM counts the input and output buffers (tinyevo's default, the MCUNet / TFLM-arena convention); flash is
the estimated int8 ``.tflite`` size; latency is a cost-model estimate on the STM32F412.

Needs ``../shared/data/cifar10-jpg.tar.gz`` (or ``$TINYEVO_SHARED/data/...``)::

    python benchmarks/cifar10_mlperf.py --wall-limit 1800                 # CPU-small profile
    python benchmarks/cifar10_mlperf.py --profile cpu-45m --wall-limit 3300
    python benchmarks/cifar10_mlperf.py --profile gpu --wall-limit 2400                 # stage 1, CPU
    python benchmarks/cifar10_mlperf.py --profile gpu-stage2 --wall-limit 570          # stage 2, GPU
    tinyevo retrain benchmarks/out/cifar10_mlperf_gpu-stage2_run                         # stage 3, GPU
    tinyevo retrain benchmarks/out/cifar10_mlperf_gpu-stage2_run --trial 104 --workers 1 --time-limit 420s  # 4
    python benchmarks/cifar10_mlperf.py --profile gpu-stage2 --parse-only              # int8 on TFLM, CPU
    python benchmarks/cifar10_mlperf.py --profile full --wall-limit 36000
"""

from __future__ import annotations

import sys
from pathlib import Path

from _realdata import main, shared_dir

CONFIGS = Path(__file__).resolve().parent / "configs"
OUT = Path(__file__).resolve().parent / "out"
# profile -> (config file or None for the default cifar10_mlperf.toml, extra `tinyevo search` flags)
PROFILES = {
    "cpu-small": (None, []),
    "cpu-45m": ("cifar10_mlperf_cpu45.toml", []),
    "gpu": ("cifar10_mlperf_gpu.toml", ["--no-final"]),
    "gpu-stage2": ("cifar10_mlperf_gpu_stage2.toml", ["--no-final"]),
    "full": (None, ["--estimator", "train", "--epochs", "10", "--time", "6h", "--final-epochs", "200"]),
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
    config, extra = PROFILES[profile]
    if config is not None:
        name = f"cifar10_mlperf_{profile}"
        argv = ["--config", str(CONFIGS / config), "--run-dir", str(OUT / f"{name}_run"), *argv]
    if extra:
        argv = [*argv, *([] if "--" in argv else ["--"]), *extra]
    sys.exit(main(name, __doc__ or "", goal=f"test_acc >= 0.85 (profile {profile})", argv=argv,
                  check_data=[shared_dir() / "data" / "cifar10-jpg.tar.gz"]))
