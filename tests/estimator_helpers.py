from __future__ import annotations

import numpy as np
import pytest

from tinyevo.data import Dataset, from_arrays
from tinyevo.ir import ArchIR, Conv2d, Dense, GlobalPool, GraphBuilder, Zero


def separable(n: int = 240, size: int = 6, seed: int = 0, noise: float = 0.3) -> Dataset:
    """Two classes: bright left half vs bright right half, plus noise (trivially separable)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(0.0, noise, size=(n, 1, size, size)).astype(np.float32)
    half = size // 2
    x[y == 0, :, :, :half] += 1.0
    x[y == 1, :, :, half:] += 1.0
    return from_arrays(x, y, name="separable", seed=seed, val_fraction=0.2)


@pytest.fixture(scope="session")
def data() -> Dataset:
    """The ``separable()`` data set, shared by the estimator and training tests (their conftests import it)."""
    return separable()


def conv_net(width: int = 8, size: int = 6, classes: int = 2, channels: int = 1) -> ArchIR:
    b = GraphBuilder((channels, size, size))
    x = b.add(Conv2d(width, kernel=3, act="relu"), b.input, name="conv1")
    x = b.add(Conv2d(2 * width, kernel=3, stride=2, act="relu"), x, name="conv2")
    x = b.add(GlobalPool(), x, name="gap")
    return b.build(b.add(Dense(classes), x, name="fc"))


def dead_net(size: int = 6, classes: int = 2) -> ArchIR:
    """A network whose input never reaches the classifier (it can only learn the class prior)."""
    b = GraphBuilder((1, size, size))
    x = b.add(Zero(), b.input, name="zero")
    x = b.add(GlobalPool(), x, name="gap")
    return b.build(b.add(Dense(classes), x, name="fc"))
