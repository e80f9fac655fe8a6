"""Spoken-digit keyword spotting (FSDD) on the nRF52840's limits (256 KB SRAM, 1 MB flash).

FSDD (3,000 clips, 10 digits x 6 speakers, 8 kHz) stands in for the MLPerf Tiny KWS task (Speech Commands is
not available here). Official split: recordings ``n`` in 0..4 of each digit and speaker are the 300 test clips.
Features: tinyevo's KWS front end (MFCC 1 x 49 x 10). Search: tinyevo's default strategy in the ``chain``
space, 8 epochs per candidate, 11 minutes; then 80 epochs of final training (``benchmarks/configs/fsdd_kws.toml``).
Peak SRAM counts the input and output buffers (tinyevo's default convention); flash is the estimated int8
``.tflite`` size; latency and energy are cost-model estimates on the nRF52840 (Cortex-M4F, 64 MHz).

Needs ``../shared/data/fsdd-recordings.tar.gz`` (or ``$TINYEVO_SHARED/data/...``)::

    python benchmarks/fsdd_kws.py --wall-limit 1080        # writes benchmarks/out/fsdd_kws.json
"""

from __future__ import annotations

import sys

from _realdata import main, shared_dir

if __name__ == "__main__":
    sys.exit(main("fsdd_kws", __doc__ or "", goal="report accuracy, SRAM, flash, latency on nrf52840",
                  check_data=[shared_dir() / "data" / "fsdd-recordings.tar.gz"]))
