"""Data sets: the built-in ``digits`` set and users' images, audio clips, time series and arrays.

``load_dataset(spec, *, seed=0, val_fraction=0.1)`` returns a frozen :class:`Dataset` with float32 inputs of
shape ``(N, C, H, W)`` and int64 labels; the validation split is carved from training data, the test split is
kept for the final report. A large user data set is memory-mapped from the data cache and shared by every process
that loads it (:mod:`tinyevo.data.shared`).
"""

from __future__ import annotations

from tinyevo.data.audio import AudioFrontEnd
from tinyevo.data.dataset import (
    TEST_SPLIT_SEED,
    ByteInputs,
    Dataset,
    InputTransform,
    from_arrays,
    from_torch,
    stratified_split,
)
from tinyevo.data.loaders import BUILTIN, load_dataset
from tinyevo.data.shared import as_tensor, mapped_file
from tinyevo.data.transforms import resize, subset

__all__ = [
    "BUILTIN", "TEST_SPLIT_SEED", "AudioFrontEnd", "ByteInputs", "Dataset", "InputTransform", "as_tensor",
    "from_arrays", "from_torch",
    "load_dataset", "mapped_file", "resize",
    "stratified_split", "subset",
]
