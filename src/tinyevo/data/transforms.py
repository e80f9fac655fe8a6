"""Scalable properties of a data set: input resolution and training-set size (low-fidelity options)."""

from __future__ import annotations

import numpy as np

from tinyevo.data.dataset import Dataset, stratified_split
from tinyevo.errors import DataError


def _resize_array(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if len(x) == 0:
        return np.zeros((0, x.shape[1], *size), dtype=np.float32)
    import torch  # here, not at import: loading a data set needs no torch
    from torch.nn import functional as F

    t = torch.from_numpy(np.array(x, dtype=np.float32, copy=True))
    h, w = x.shape[2:]
    down = size[0] <= h and size[1] <= w
    # antialiased bilinear for downscaling (no aliasing), plain bilinear for upscaling
    out = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=down)
    return np.ascontiguousarray(out.numpy(), dtype=np.float32)


def resize(data: Dataset, size: tuple[int, int]) -> Dataset:
    """``data`` with every split resampled to ``size = (H, W)`` (antialiased when downscaling)."""
    h, w = (int(v) for v in size)
    if h < 1 or w < 1:
        raise DataError(f"cannot resize to {size}")
    if (h, w) == data.input_shape[1:]:
        return data
    new = {f"x_{s}": _resize_array(getattr(data, f"x_{s}"), (h, w)) for s in ("train", "val", "test")}
    return data.with_splits(name=f"{data.name}@{h}x{w}", **new)


def subset(data: Dataset, fraction: float, *, seed: int = 0, val: bool = False) -> Dataset:
    """``data`` with a stratified, seeded ``fraction`` of the training split (and of the validation split when
    ``val``); the test split is unchanged."""
    if not 0.0 < fraction <= 1.0:
        raise DataError(f"subset fraction must be in (0, 1], got {fraction}")
    if fraction == 1.0:
        return data
    rng = np.random.default_rng(seed)
    new: dict[str, np.ndarray] = {}
    for split in ("train", "val") if val else ("train",):
        y = getattr(data, f"y_{split}")
        if len(y) == 0:
            continue
        # stratified_split holds out about (1 - fraction) of each class (every class keeps a sample)
        kept, _held = stratified_split(y, 1.0 - fraction, rng)
        new[f"x_{split}"] = getattr(data, f"x_{split}")[kept]
        new[f"y_{split}"] = y[kept]
    return data.with_splits(name=f"{data.name}[{fraction:g}]", **new)
