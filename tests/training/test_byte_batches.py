"""Training gathers its batches from a data set's bytes (tinyevo.training.evaluate.ByteBatches) and converts them
to exactly the float32 values of the prepared arrays: the same batches, the same weights, a quarter of the memory
read."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tinyevo.data import ByteInputs, Dataset, shared
from tinyevo.data.dataset import plan_arrays, with_byte_inputs
from tinyevo.training import Recipe, accuracy, train
from tinyevo.training.evaluate import ByteBatches, input_batches


def _prepared(tmp_path: Path, *, shape: tuple[int, ...], scale: float, normalize: bool, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=shape, dtype=np.uint8)
    x[0], x[1] = 0, 255
    y = (x.reshape(len(x), -1).mean(axis=1) > 127.5).astype(np.int64)  # learnable labels
    y[:4] = [0, 1, 0, 1]
    d = shared.write_prepared(plan_arrays(x, y, seed=seed, scale=scale, normalize=normalize), tmp_path / "entry")
    assert d.byte_inputs is not None
    return d


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.int32)


TRANSFORMS = {
    "normalised": {"shape": (200, 2, 6, 6), "scale": 1.0, "normalize": True},
    "scaled_normalised": {"shape": (200, 3, 5, 5), "scale": 1 / 255, "normalize": True},
    "scaled": {"shape": (200, 6, 6), "scale": 1 / 255, "normalize": False},
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
@pytest.mark.parametrize("arithmetic", [True, False])
def test_a_batch_equals_the_prepared_float32_rows_bit_for_bit(tmp_path: Path, name: str, arithmetic: bool) -> None:
    d = _prepared(tmp_path, **TRANSFORMS[name])
    b = ByteBatches(d.byte_inputs[0], torch.device("cpu"))
    assert b.exact_arithmetic  # the CPU's float32 ops are those of numpy
    b.exact_arithmetic = arithmetic  # both ways of converting
    x = torch.from_numpy(np.array(d.x_train))  # the oracle: the float32 file (the path training read before)
    idx = torch.from_numpy(np.random.default_rng(1).permutation(len(x))[:37])
    assert b[idx].dtype == torch.float32 and b[idx].shape == x[idx].shape
    assert torch.equal(_bits(b[idx]), _bits(x[idx]))
    assert torch.equal(_bits(b[5:17]), _bits(x[5:17]))
    assert torch.equal(_bits(b[0 : len(x)]), _bits(x))
    assert len(b) == len(x) and tuple(b.shape) == tuple(x.shape)


def test_input_batches_keeps_float32_data_and_wraps_bytes(tmp_path: Path) -> None:
    d = _prepared(tmp_path, **TRANSFORMS["normalised"])
    cpu = torch.device("cpu")
    assert isinstance(input_batches(d.inputs("val"), cpu), ByteBatches)
    t = input_batches(d.x_val, cpu)
    assert isinstance(t, torch.Tensor) and t.data_ptr() == d.x_val.__array_interface__["data"][0]  # no copy
    made = input_batches(d.inputs("val"), cpu)
    assert input_batches(made, cpu) is made


def _net(channels: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(channels, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 2))


@pytest.mark.parametrize("recipe", [
    Recipe(epochs=2, batch_size=16, lr=0.05),
    Recipe(epochs=2, batch_size=32, augment=("flip", "shift"), shift_pixels=1, optimizer="sgd", lr=0.05),
], ids=["adamw", "sgd_augmented"])
def test_training_on_the_bytes_gives_the_weights_of_training_on_the_float32_arrays(
    tmp_path: Path, recipe: Recipe
) -> None:
    d = _prepared(tmp_path, **TRANSFORMS["normalised"])
    floats = replace(d)  # the same arrays without the bytes: the float32 path, as before
    assert floats.byte_inputs is None and floats.x_train is d.x_train

    model = _net(2)
    fitted = train(model, d, recipe, seed=3, evals_per_epoch=2)
    reference = _net(2)
    expected = train(reference, floats, recipe, seed=3, evals_per_epoch=2)

    for (name, p), q in zip(model.state_dict().items(), reference.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    assert [(r.train_loss, r.val_acc) for r in fitted.history] == [(r.train_loss, r.val_acc)
                                                                    for r in expected.history]
    assert accuracy(model, d.inputs("test"), d.y_test) == accuracy(reference, d.x_test, d.y_test)


def test_training_reads_the_bytes_not_the_float32_arrays(tmp_path: Path) -> None:
    """A data set whose float32 arrays are zeros but whose bytes are the real ones trains like the real data: the
    loop's batches (and its validation) come from the bytes."""
    d = _prepared(tmp_path, **TRANSFORMS["normalised"])
    zeros = {f"x_{s}": np.zeros_like(getattr(d, f"x_{s}")) for s in ("train", "val", "test")}
    blank = with_byte_inputs(replace(d, **zeros), d.byte_inputs)
    recipe = Recipe(epochs=1, batch_size=16, lr=0.05)
    model, reference, on_zeros = _net(2), _net(2), _net(2)
    fitted = train(model, blank, recipe, seed=1)
    expected = train(reference, replace(d), recipe, seed=1)
    train(on_zeros, replace(blank), recipe, seed=1)  # the zeros themselves: other weights (the check can fail)
    assert [(r.train_loss, r.val_acc) for r in fitted.history] == [(r.train_loss, r.val_acc)
                                                                    for r in expected.history]
    for p, q, z in zip(model.parameters(), reference.parameters(), on_zeros.parameters(), strict=True):
        assert torch.equal(p, q)
    assert any(not torch.equal(p, z) for p, z in zip(model.parameters(), on_zeros.parameters(), strict=True))


def test_accuracy_of_bytes_equals_accuracy_of_the_float32_array(tmp_path: Path) -> None:
    d = _prepared(tmp_path, **TRANSFORMS["scaled_normalised"])
    torch.manual_seed(2)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 5 * 5, 2))
    for s in ("train", "val", "test"):
        b = d.inputs(s)
        assert isinstance(b, ByteInputs)
        y = getattr(d, f"y_{s}")
        assert accuracy(net, b, y, batch_size=7) == accuracy(net, getattr(d, f"x_{s}"), y, batch_size=7)
