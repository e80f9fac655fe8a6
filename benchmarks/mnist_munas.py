"""MNIST under the muNAS bounds: peak SRAM <= 2.5 KB, model size <= 4.5 KB (int8), MACs <= 30 M.

Runs tinyevo's default search strategy in the ``chain`` space (``benchmarks/configs/mnist_munas.toml``):
a low-fidelity search (one epoch per candidate on the full training split, 20 minutes of search wall time),
then a long final retraining of the best model (35 epochs, AdamW, cosine schedule, +-2 px shift
augmentation). Goal: >= 99.0 % test accuracy within one hour of wall time, search and final training included.

Conventions, and how they differ from muNAS:

* **peak SRAM** is tinyevo's exact optimal-order activation peak and *counts the input and output buffers*
  (the MCUNet / TFLM-arena convention used by ``tinyevo search``; the search CLI does not expose the muNAS
  convention, ``tinyevo estimate --convention munas`` does). muNAS counts neither, so the 2.5 KB bound here is
  stricter than muNAS's (the 28x28 int8 input alone is 784 B).
* **model size**: muNAS bounds the int8 parameter bytes. tinyevo's ``flash_bytes`` models a whole ``.tflite``
  flatbuffer (about 1.2 KB fixed plus per-tensor / per-op metadata, ~6 KB for a 700-parameter net), so the
  muNAS 4.5 KB is applied as ``params <= 4608`` and the .tflite flash estimate is reported next to it.

Needs ``../shared/data/mnist.npz`` (or ``$TINYEVO_SHARED/data/mnist.npz``)::

    python benchmarks/mnist_munas.py --wall-limit 3600          # writes benchmarks/out/mnist_munas.json
    python benchmarks/mnist_munas.py --parse-only               # summarise an existing run
"""

from __future__ import annotations

import sys

from _realdata import main, shared_dir

if __name__ == "__main__":
    sys.exit(main("mnist_munas", __doc__ or "", goal="test_acc >= 0.99 within 1 h wall time",
                  check_data=[shared_dir() / "data" / "mnist.npz"]))
