"""Test-session settings shared by the whole suite."""

from __future__ import annotations

import collections.abc
from pathlib import Path

import numpy as np
import pytest
import torch

# The unit tests run thousands of tiny forward passes; torch's intra-op thread pool only adds contention there
# (measured: a forward pass of a 3x8x8 test network takes ~0.5 s with 2 threads on a busy 2-core machine and
# ~5 ms with 1).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def make_tiny_npz(tmp_path_factory: pytest.TempPathFactory) -> collections.abc.Callable[..., Path]:
    """Writes a tiny Keras-style ``.npz``: ``n`` 6x6 one-channel images of 3 classes, separable by brightness,
    the first ``n_test`` rows doubling as the test split."""

    def make(n: int, *, seed: int, n_test: int = 9) -> Path:
        rng = np.random.default_rng(seed)
        y = np.arange(n) % 3
        x = rng.normal(size=(n, 6, 6)).astype(np.float32) + y[:, None, None]
        path = tmp_path_factory.mktemp("data") / "tiny.npz"
        np.savez(path, x_train=x, y_train=y, x_test=x[:n_test], y_test=y[:n_test])
        return path

    return make
