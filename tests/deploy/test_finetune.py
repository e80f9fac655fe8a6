"""Deployment's fine-tuning runs on the one training loop (tinyevo.training.train)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tinyevo.deploy.model import FinetuneConfig, finetune
from tinyevo.training import fraction_correct


class _Recorder(nn.Module):
    """A linear classifier over flattened inputs that records its batch sizes and refuses mode switches (as an
    exported program does)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(12, 3)
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(len(x))
        return self.linear(x.flatten(1))

    def train(self, mode: bool = True) -> _Recorder:
        raise AssertionError("the caller switches the mode of an exported program")


def test_finetune_uses_full_batches_only_and_leaves_the_mode_to_the_caller() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3, 2, 2)).astype(np.float32)
    y = (np.arange(50) % 3).astype(np.int64)
    model = _Recorder()
    before = model.linear.weight.detach().clone()
    finetune(model, x, y, config=FinetuneConfig(epochs=2, lr=1e-2, batch_size=8, max_samples=45), rng=rng,
             train_mode=False)
    assert model.batches and set(model.batches) == {8}  # 45 rows capped -> 40 = 5 full batches per epoch
    assert len(model.batches) == 2 * 5
    assert not torch.equal(model.linear.weight, before)


def test_finetune_is_reproducible_from_the_generator() -> None:
    x = np.random.default_rng(1).normal(size=(40, 1, 2, 2)).astype(np.float32)
    y = (np.arange(40) % 2).astype(np.int64)
    weights = []
    for _ in range(2):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        finetune(model, x, y, config=FinetuneConfig(epochs=1, batch_size=16), rng=np.random.default_rng(5))
        weights.append(model[1].weight.detach().clone())
        assert not model.training  # train_mode=True: back in eval mode
    assert torch.equal(weights[0], weights[1])


@pytest.mark.parametrize("seed", range(3))
def test_fraction_correct_is_the_mean_of_matches(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pred, y = rng.integers(0, 3, size=37), rng.integers(0, 3, size=37)
    expected = sum(int(p == t) for p, t in zip(pred, y)) / 37
    assert fraction_correct(pred, y) == expected
    assert fraction_correct(torch.from_numpy(pred), torch.from_numpy(y)) == expected
    assert np.isnan(fraction_correct(pred[:0], y[:0]))
