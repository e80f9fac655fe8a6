"""The training step's fixed costs: divergence detection without a host sync at every step (clipping and the fused
optimiser steps are checked against torch in test_optim.py)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from estimator_helpers import conv_net

from tinyevo.data import Dataset
from tinyevo.errors import EstimationError
from tinyevo.nn import build_model
from tinyevo.training import TrainConfig, fit


def test_no_host_sync_per_step_and_divergence_still_raises_before_any_record(
        data: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = torch.isfinite
    monkeypatch.setattr(torch, "isfinite", lambda t: calls.append(1) or real(t))
    fit(build_model(conv_net(), seed=0), data, config=TrainConfig(epochs=1, batch_size=16), seed=0)
    assert calls == []
    bad = dataclasses.replace(data, x_train=data.x_train * float("inf"))
    seen: list[object] = []
    with pytest.raises(EstimationError, match="diverged"):  # caught at the first evaluation point, before it
        fit(build_model(conv_net(), seed=0), bad, config=TrainConfig(epochs=2, batch_size=16), seed=0,
            evals_per_epoch=3, monitor=lambda rec: seen.append(rec) or False)
    assert seen == []
