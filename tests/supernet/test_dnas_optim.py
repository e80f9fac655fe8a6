"""The architecture's optimiser of DNAS: the project's FusedAdam, not ``torch.optim.Adam``.

Its updates are those of ``torch.optim.Adam(fused=True, betas=(0.5, 0.999), weight_decay=...)`` (L2 decay added to
the gradient, not AdamW's decoupled decay): ``torch.optim`` is the oracle here. A state written by
``torch.optim.Adam`` over the logits loads and continues; and a DNAS search imports no ``torch._dynamo``
(``torch.optim``'s first step imports it)."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from typing import Any

import pytest
import torch

from tinyevo.data import Dataset
from tinyevo.spaces.nb201 import NB201Space
from tinyevo.supernet.dnas import ArchParams, DartsStep, DnasConfig, decisions, dnas_search
from tinyevo.training import FusedAdam, Recipe

BETAS = (0.5, 0.999)


class _TorchAdam:
    """torch.optim.Adam / AdamW (fused) behind the interface DartsStep uses (``zero_grad``, ``step(lr)``)."""

    def __init__(self, params: list[torch.Tensor], cfg: DnasConfig, *, decoupled: bool) -> None:
        kind = torch.optim.AdamW if decoupled else torch.optim.Adam
        self.opt = kind(params, lr=cfg.arch_lr, betas=BETAS, weight_decay=cfg.arch_weight_decay, fused=True)
        self.steps: list[torch.Tensor] = []

    def zero_grad(self) -> None:
        self.opt.zero_grad(set_to_none=True)

    def step(self, lr: float) -> None:
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.step()


def _search(space: NB201Space, data: Dataset, cfg: DnasConfig) -> tuple[tuple[float, ...], ...]:
    recipe = Recipe(epochs=2, batch_size=16, optimizer="sgd", lr=0.05)
    return dnas_search(space, data, recipe, seed=3, cfg=cfg).probabilities


@pytest.fixture(scope="module")
def small_nb201() -> NB201Space:
    return NB201Space(channels=2, cells_per_stage=1, input_shape=(1, 16, 16), num_classes=3)


def test_the_search_ends_on_the_logits_of_torch_optim_adam(small_nb201, tiny_data, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The whole search, once with the project's optimiser and once with torch.optim's Adam (the oracle) in its
    place: the same final architecture probabilities, bitwise. A large weight decay and excluded choices (their
    logits are reset to -1e4 at every step, where L2 and decoupled decay differ most) make the decay mode show:
    with torch.optim.AdamW in place the probabilities differ."""
    cfg = DnasConfig(warmup_epochs=0, arch_lr=0.05, arch_weight_decay=0.1, exclude=("none",))
    ours = _search(small_nb201, tiny_data, cfg)

    def torch_adam(self: DartsStep) -> _TorchAdam:
        return _TorchAdam(list(self.arch.parameters()), self.cfg, decoupled=False)

    monkeypatch.setattr(DartsStep, "_optimizer", torch_adam)
    oracle = _search(small_nb201, tiny_data, cfg)

    def torch_adamw(self: DartsStep) -> _TorchAdam:
        return _TorchAdam(list(self.arch.parameters()), self.cfg, decoupled=True)

    monkeypatch.setattr(DartsStep, "_optimizer", torch_adamw)
    decoupled = _search(small_nb201, tiny_data, cfg)
    assert ours == oracle
    assert ours != decoupled  # the comparison can tell the two decay modes apart
    assert any(abs(p - 0.25) > 1e-3 for row in ours for p in row[1:])  # the architecture moved


def _fake_grads(arch: ArchParams, gen: torch.Generator) -> None:
    for i, p in enumerate(arch.parameters()):
        p.grad = None if i == 2 else torch.randn(p.shape, generator=gen)  # one decision unused at this step


def _darts_step(arch: ArchParams, cfg: DnasConfig) -> DartsStep:
    return DartsStep(arch, torch.zeros(4, 1, 16, 16), torch.zeros(4, dtype=torch.long), cfg, penalty=None, seed=0)


@pytest.mark.parametrize("foreach", [False, True])
def test_a_state_written_by_torch_optim_adam_continues(small_nb201: NB201Space, foreach: bool) -> None:
    """A state dict of ``torch.optim.Adam`` over the architecture logits (the optimiser DartsStep had before,
    not fused: CPU's default), saved and loaded as a checkpoint would be, loads into DartsStep's optimiser; the
    next steps give the logits of torch.optim.Adam going on from the same state, fused (the same kernel; the
    unfused update rounds some last bits differently)."""
    cfg = DnasConfig(arch_lr=0.01, arch_weight_decay=0.05)
    gen = torch.Generator().manual_seed(0)
    old = ArchParams(decisions(small_nb201))
    opt = torch.optim.Adam(old.parameters(), lr=cfg.arch_lr, betas=BETAS, weight_decay=cfg.arch_weight_decay,
                           foreach=foreach)
    for _ in range(5):
        _fake_grads(old, gen)
        opt.step()
    buf = io.BytesIO()
    torch.save({"arch": old.state_dict(), "opt": opt.state_dict()}, buf)
    buf.seek(0)
    saved: dict[str, Any] = torch.load(buf, weights_only=True)

    arch = ArchParams(decisions(small_nb201))
    arch.load_state_dict(saved["arch"])
    step = _darts_step(arch, cfg)
    assert isinstance(step.opt, FusedAdam)
    step.opt.load_state_dict(saved["opt"])

    oracle = ArchParams(decisions(small_nb201))
    oracle.load_state_dict(saved["arch"])
    ref = torch.optim.Adam(oracle.parameters(), lr=cfg.arch_lr, betas=BETAS, weight_decay=cfg.arch_weight_decay,
                           fused=True)
    ref.load_state_dict(saved["opt"])
    ref.param_groups[0].update(fused=True, foreach=None)  # (loading took the saved group's settings: unfused)
    for _ in range(7):
        state = gen.get_state()
        _fake_grads(arch, gen)
        gen.set_state(state)
        _fake_grads(oracle, gen)
        step.opt.step(cfg.arch_lr)
        ref.step()
    for mine, theirs in zip(arch.parameters(), oracle.parameters(), strict=True):
        assert torch.equal(mine, theirs)
    assert [int(s) for s in step.opt.steps] == [12, 12, 0, 12, 12, 12]  # decision 2 never had a gradient
    written = step.opt.state_dict()  # and the state goes back into torch.optim.Adam
    again = torch.optim.Adam(ArchParams(decisions(small_nb201)).parameters(), lr=cfg.arch_lr, betas=BETAS)
    again.load_state_dict(written)
    assert torch.equal(again.state_dict()["state"][0]["exp_avg"], ref.state_dict()["state"][0]["exp_avg"])


def test_the_optimiser_follows_the_logits_to_the_training_device(small_nb201: NB201Space,
                                                                   monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """``prepare`` moves the logits to the loop's device and rebuilds the optimiser there (its moments are
    allocated up front); on the logits' own device it keeps the optimiser."""
    step = _darts_step(ArchParams(decisions(small_nb201)), DnasConfig())
    first = step.opt
    step.prepare(torch.nn.Identity(), torch.device("cpu"), (1, 16, 16))
    assert step.opt is first
    moved: list[torch.device] = []

    def to(self: ArchParams, device: torch.device) -> ArchParams:  # a device without one: record the move
        moved.append(device)
        return self

    monkeypatch.setattr(ArchParams, "to", to)
    step.prepare(torch.nn.Identity(), torch.device("meta"), (1, 16, 16))
    assert moved == [torch.device("meta")] and step.opt is not first


def test_dnas_imports_no_dynamo() -> None:
    """torch.optim's first step imports torch._dynamo (about as long as ``import torch``): a DNAS search, the
    evaluation of its trial and the run around it (in this process) must not."""
    code = textwrap.dedent("""
        import sys, tempfile
        from pathlib import Path
        from tinyevo.run.config import build_config
        from tinyevo.run.dnas import dnas_run
        from tinyevo.supernet.dnas import DnasConfig
        config = build_config({"space": "nb201", "space_options": {"channels": 2, "cells_per_stage": 1}},
                              train={"epochs": 1}, flash="12KB", final={"enabled": False}, executor="inprocess")
        out = dnas_run(config, cfg=DnasConfig(warmup_epochs=0), run_dir=Path(tempfile.mkdtemp()) / "run")
        assert len(out.run.trials) == 1
        print(sorted(m for m in sys.modules if m.startswith("torch._dynamo")))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr

