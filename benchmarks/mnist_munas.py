"""MNIST under the muNAS bounds: peak SRAM <= 2.5 KB, model size <= 4.5 KB (int8), MACs <= 30 M.

Runs tinyevo's default search strategy in the ``chain`` space (``benchmarks/configs/mnist_munas.toml``):
a search with learning-curve stopping (``lc``: up to six epochs per candidate on the full training split, stopped
early when the extrapolated curve cannot reach the top 5; two workers, 36 minutes of search wall time) in a deep,
thin chain space (up to 9 layers of 4-32 channels), then a long final retraining of the best model (40 epochs,
AdamW, a cosine schedule fitted to at most 15 minutes, +-2 px shift augmentation). Goal: >= 99.0 % test accuracy within one hour of wall time, search and final training included.

The script runs the plain ``tinyevo search --config benchmarks/configs/mnist_munas.toml``. Conventions, set in
that config, and how they relate to muNAS:

* **peak SRAM** is tinyevo's exact optimal-order activation peak in the *muNAS convention*
  (``sram_convention = "munas"``: neither the network input nor its output buffer counts, as
  ``tinyevo estimate --convention munas``). tinyevo's default, ``mcunet``, counts both (MCUNet / TFLM arena);
  ``--sram-convention mcunet`` runs the search under it (stricter: the 28x28 int8 input alone is 784 B).
* **model size**: muNAS bounds the int8 parameter bytes. tinyevo's ``flash_bytes`` models a whole ``.tflite``
  flatbuffer (about 1.2 KB fixed plus per-tensor / per-op metadata, ~6 KB for a 700-parameter net), so the
  muNAS 4.5 KB is applied to ``weight_bytes`` (``weights = "4.5KB"``: int8 weights at one byte each plus
  int32 biases, as TFLite Micro stores them) and the .tflite flash estimate is reported next to it.

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
