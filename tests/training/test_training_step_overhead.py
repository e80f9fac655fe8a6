"""The training step's fixed costs: clipping with foreach kernels over a parameter list made once, divergence
detection without a host sync at every step, a fused Adam(W) update -- each checked against plain PyTorch."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from estimator_helpers import conv_net
from torch import nn

from tinyevo.data import Dataset
from tinyevo.errors import EstimationError
from tinyevo.training import TrainConfig, fit
from tinyevo.training.recipe import clip_grad_norm as _clip_grad_norm
from tinyevo.training.recipe import make_optimizer as _optimizer
from tinyevo.nn import build_model


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_clip_equals_torchs_clip_grad_norm(seed: int, scale: float) -> None:
    gen = torch.Generator().manual_seed(seed)
    shapes = [(8, 3, 3, 3), (8,), (16, 8), (16,), (1,)]
    ours = [nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]
    oracle = [nn.Parameter(p.detach().clone()) for p in ours]
    for p, q in zip(ours, oracle, strict=True):
        p.grad = torch.randn(p.shape, generator=gen) * scale
        q.grad = p.grad.clone()
    ours[-1].grad = None  # a parameter without a gradient is skipped by both
    oracle[-1].grad = None
    _clip_grad_norm(ours, 5.0)
    nn.utils.clip_grad_norm_(oracle, 5.0)
    for p, q in zip(ours[:-1], oracle[:-1], strict=True):
        assert torch.equal(p.grad, q.grad)


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


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_is_fused_on_the_cpu_and_matches_the_per_tensor_update(name: str) -> None:
    cfg = TrainConfig(optimizer=name, lr=1e-2)  # type: ignore[arg-type]
    model = build_model(conv_net(), seed=0)
    twin = build_model(conv_net(), seed=0)
    opt = _optimizer(model, cfg)
    assert opt.defaults["fused"] is True
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    decay = [p for p in twin.parameters() if p.ndim > 1]
    no_decay = [p for p in twin.parameters() if p.ndim <= 1]
    oracle = cls([{"params": decay, "weight_decay": cfg.resolved_weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}], lr=cfg.resolved_lr, foreach=False)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 1, 6, 6, generator=gen)
    y = torch.randint(0, 2, (8,), generator=gen)
    for _ in range(3):
        for m, o in ((model, opt), (twin, oracle)):
            o.zero_grad()
            nn.functional.cross_entropy(m(x), y).backward()
            o.step()
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
