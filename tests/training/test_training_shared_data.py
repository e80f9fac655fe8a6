"""Training reads a memory-mapped, read-only data set in place: no per-candidate copy, the file never changes, and
the weights are those of training on a private in-memory copy."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tinyevo.data import Dataset, mapped_file
from tinyevo.data.shared import store_prepared
from tinyevo.training import Recipe, accuracy, train
from tinyevo.training.evaluate import to_tensor


def _digests(directory: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(directory.glob("*.npy"))}


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))


def _private_copy(data: Dataset) -> Dataset:
    arrays = {a: np.array(getattr(data, a), copy=True) for a in
              ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")}
    return Dataset(name=data.name, num_classes=data.num_classes, class_names=data.class_names, mean=data.mean,
                   std=data.std, **arrays)


def test_to_tensor_shares_the_mapped_memory(data: Dataset, tmp_path: Path) -> None:
    mapped = store_prepared(data, tmp_path / "prepared")
    assert mapped_file(mapped.x_train) is not None
    assert not mapped.x_train.flags.writeable
    for a in (mapped.x_train, mapped.y_train, mapped.x_val, mapped.y_val):
        t = to_tensor(a)
        assert t.data_ptr() == a.__array_interface__["data"][0]  # the mapping itself, not a copy
        assert np.array_equal(t.numpy(), a)


def test_training_on_a_read_only_mapped_data_set_leaves_the_file_unchanged(data: Dataset, tmp_path: Path) -> None:
    directory = tmp_path / "prepared"
    mapped = store_prepared(data, directory)
    assert mapped_file(mapped.x_train) is not None
    before = _digests(directory)
    x_before = np.array(mapped.x_train, copy=True)
    recipe = Recipe(epochs=2, batch_size=16, augment=("flip", "shift"), shift_pixels=1, lr=0.05)

    model = _net()
    fitted = train(model, mapped, recipe, seed=3, evals_per_epoch=2)
    reference = _net()
    train(reference, _private_copy(data), recipe, seed=3, evals_per_epoch=2)

    assert len(fitted.history) == 4
    assert _digests(directory) == before
    assert np.array_equal(mapped.x_train, x_before)  # nor this process's view of it
    for (name, p), q in zip(model.state_dict().items(), reference.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    assert accuracy(model, mapped.x_val, mapped.y_val) == accuracy(reference, data.x_val, data.y_val)
