"""A tiny blocks space (3 stages, 16x16 one-channel inputs, every elastic gene with two choices) and data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tinyevo.data import Dataset, from_arrays
from tinyevo.spaces import create_space
from tinyevo.spaces.blocks import BlocksSpace
from tinyevo.supernet import Supernet

TINY = {
    "input_shape": (1, 16, 16),
    "num_classes": 3,
    "resolutions": (12, 16),
    "width_multipliers": (0.5, 1.0),
    "block_types": ("mb", "res", "conv"),
    "depths": (1, 2),
    "kernels": (3, 5),
    "expands": (1, 3),
    "stage_strides": (1, 2, 2),
    "stage_channels": ((8, 16), (16, 24), (24, 32)),
    "stem_channels": 8,
}


@pytest.fixture(scope="session")
def tiny_options() -> dict[str, object]:
    return dict(TINY)


@pytest.fixture(scope="session")
def space() -> BlocksSpace:
    sp = create_space("blocks", **TINY)
    assert isinstance(sp, BlocksSpace)
    return sp


def _scramble(net: Supernet, seed: int) -> Supernet:
    """Random kernel transforms and BatchNorm statistics/affines, so that a slicing or folding mistake shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "transforms" in name or name.endswith(("bn.weight", "bn.bias")):
                p.add_(0.3 * torch.randn(p.shape, generator=gen))
        for name, b in net.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.2 * torch.randn(b.shape, generator=gen))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=gen))
    return net


@pytest.fixture(scope="session")
def scramble():  # type: ignore[no-untyped-def]
    """``scramble(net, seed)``: random kernel transforms and BatchNorm statistics/affines (in place)."""
    return _scramble


@pytest.fixture(scope="session")
def tiny_data() -> Dataset:
    """120 one-channel 16x16 images of 3 classes (the class sets the brightness of a quadrant)."""
    rng = np.random.default_rng(0)
    y = np.arange(150) % 3
    x = rng.normal(size=(150, 1, 16, 16)).astype(np.float32)
    for c in range(3):
        x[y == c, :, (c // 2) * 8 : (c // 2) * 8 + 8, (c % 2) * 8 : (c % 2) * 8 + 8] += 1.5
    return from_arrays(x, y, name="quadrants", seed=0, val_fraction=0.2, test_fraction=0.2, num_classes=3)
