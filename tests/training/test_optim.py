"""The loop's own optimisers (tinyevo.training.optim) against torch.optim, the oracle: the same weights over many
steps with two weight-decay groups, a changing learning rate and parameters that miss a gradient now and then;
gradient clipping as a grad_scale against nn.utils.clip_grad_norm_; state_dict interchangeable with torch.optim's;
a checkpoint written by the torch.optim-based loop resumes; and a training imports no torch._dynamo."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from estimator_helpers import conv_net
from torch import nn

from tinyevo.data import Dataset
from tinyevo.errors import ConfigError
from tinyevo.training import Recipe, TrainConfig, make_optimizer, train_model
from tinyevo.training.optim import FusedAdam, FusedSGD, GradClip, ParamGroup

FIXTURES = Path(__file__).parent / "data"
SHAPES = [(6, 3, 3, 3), (16, 6), (6,), (16,), (1,)]  # two with weight decay, three without


def _params(seed: int) -> list[nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return [nn.Parameter(torch.randn(s, generator=gen)) for s in SHAPES]


def _groups(params: list[nn.Parameter], wd: float) -> tuple[ParamGroup, ParamGroup]:
    return ParamGroup(tuple(params[:2]), wd), ParamGroup(tuple(params[2:]), 0.0)


def _torch_groups(params: list[nn.Parameter], wd: float) -> list[dict[str, object]]:
    return [{"params": params[:2], "weight_decay": wd}, {"params": params[2:], "weight_decay": 0.0}]


def _lr(t: int) -> float:
    return 0.05 * (1 + (t * 7) % 11) / 11  # changes at every step


def _run_both(ours: object, oracle: object, p: list[nn.Parameter], q: list[nn.Parameter], *,
              steps: int, seed: int, skip: Callable[[int, int], bool] = lambda t, i: False,
              start: int = 0) -> None:
    """``steps`` steps of both optimisers on the same random gradients (``skip(t, i)``: parameter ``i`` has
    no gradient at step ``t``)."""
    _drive([(ours, p), (oracle, q)], steps=steps, seed=seed, skip=skip, start=start)


def _drive(pairs: list[tuple[object, list[nn.Parameter]]], *, steps: int, seed: int,
           skip: Callable[[int, int], bool] = lambda t, i: False, start: int = 0) -> None:
    """Each (optimiser, its parameters) of ``pairs`` takes ``steps`` steps (``step(lr)``; a torch.optim one is
    wrapped) on the same random gradients (cast to the parameters' dtype)."""
    runs = [(o if not isinstance(o, torch.optim.Optimizer) else _Adapter(o), ps) for o, ps in pairs]
    gen = torch.Generator().manual_seed(seed + 1000 * start)
    for t in range(start, start + steps):
        for i, shape in enumerate(SHAPES):
            g = torch.randn(shape, generator=gen)
            for _, params in runs:
                params[i].grad = None if skip(t, i) else g.to(params[i].dtype, copy=True)
        for opt, _ in runs:
            opt.step(_lr(t))


def _assert_same(p: list[nn.Parameter], q: list[nn.Parameter], *, exact: bool = True) -> None:
    """Bitwise equal (Adam(W): the same fused kernel), or within float rounding (SGD: the fused kernel and
    torch.optim.SGD's per-tensor ops round the last bit of some elements differently)."""
    for a, b in zip(p, q, strict=True):
        if exact:
            assert torch.equal(a, b), (a - b).abs().max()
        else:
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("decoupled", [True, False])
@pytest.mark.parametrize("seed", range(3))
def test_adam_and_adamw_give_the_weights_of_fused_torch_optim(decoupled: bool, seed: int) -> None:
    p, q = _params(seed), _params(seed)
    ours = FusedAdam(_groups(p, 0.05), decoupled_weight_decay=decoupled)
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    oracle = cls(_torch_groups(q, 0.05), lr=0.01, fused=True)
    _run_both(ours, oracle, p, q, steps=300, seed=seed)
    _assert_same(p, q)


@pytest.mark.parametrize("momentum,nesterov", [(0.9, True), (0.9, False), (0.0, False)])
def test_sgd_gives_the_weights_of_torch_optim_sgd(momentum: float, nesterov: bool) -> None:
    """torch.optim.SGD on the CPU updates tensor by tensor; the fused kernel rounds the momentum terms' last bit
    differently in some elements, so the weights agree to float rounding (exactly without momentum), and are as
    close to a float64 run of torch.optim.SGD as torch.optim's own float32 weights are."""
    p, q = _params(0), _params(0)
    exact = [nn.Parameter(x.detach().double()) for x in _params(0)]
    ours = FusedSGD(_groups(p, 5e-4), momentum=momentum, nesterov=nesterov)
    oracle = torch.optim.SGD(_torch_groups(q, 5e-4), lr=0.05, momentum=momentum, nesterov=nesterov)  # per tensor
    reference = torch.optim.SGD(_torch_groups(exact, 5e-4), lr=0.05, momentum=momentum, nesterov=nesterov)
    _run_both(ours, oracle, p, q, steps=300, seed=0)
    _drive([(reference, exact)], steps=300, seed=0)
    if momentum == 0:
        _assert_same(p, q)
        return
    for a, b, ref in zip(p, q, exact, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        ours_err = float((a.detach().double() - ref.detach()).abs().max())
        torch_err = float((b.detach().double() - ref.detach()).abs().max())
        assert ours_err <= 2 * torch_err + 1e-7, (ours_err, torch_err)


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd"])
def test_a_parameter_without_a_gradient_is_skipped_as_torch_optim_skips_it(name: str) -> None:
    p, q = _params(1), _params(1)
    if name == "sgd":
        ours: object = FusedSGD(_groups(p, 5e-4), momentum=0.9, nesterov=True)
        oracle: torch.optim.Optimizer = torch.optim.SGD(_torch_groups(q, 5e-4), lr=0.05, momentum=0.9,
                                                        nesterov=True)
    else:
        ours = FusedAdam(_groups(p, 0.05), decoupled_weight_decay=name == "adamw")
        oracle = (torch.optim.AdamW if name == "adamw" else torch.optim.Adam)(_torch_groups(q, 0.05), lr=0.01,
                                                                                fused=True)
    # parameter 1 starts late (its first step at t=5), parameter 3 misses every third step, parameter 4 never has one
    _run_both(ours, oracle, p, q, steps=60, seed=1,
              skip=lambda t, i: (i == 1 and t < 5) or (i == 3 and t % 3 == 0) or i == 4)
    _assert_same(p, q, exact=name != "sgd")
    assert torch.equal(p[4], _params(1)[4])  # never stepped: not even decayed


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_grad_clip_is_torchs_clip_grad_norm_as_a_divisor(scale: float) -> None:
    gen = torch.Generator().manual_seed(0)
    params = [nn.Parameter(torch.randn(s, generator=gen)) for s in SHAPES]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * scale
    oracle = [p.grad.clone() for p in params]
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.double()) for g in oracle]))
    coef = min(1.0, 5.0 / (float(total) + 1e-6))  # torch's clipping coefficient, in float64
    divisor = GradClip(params, 5.0)()
    assert divisor is not None and divisor.shape == () and float(divisor) >= 1.0
    for p, g in zip(params, oracle, strict=True):
        clipped = p.grad / divisor
        if coef == 1.0:
            assert torch.equal(clipped, g)  # not clipped: the gradients exactly
        else:
            torch.testing.assert_close(clipped.double(), g.double() * coef, rtol=1e-6, atol=0)
    params[2].grad = None  # a parameter without a gradient is left out of the norm
    again = GradClip(params, 5.0)()
    rest = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad.double()) for p in params
                                                 if p.grad is not None]))
    assert again is not None
    assert float(again) == pytest.approx(max(1.0, (float(rest) + 1e-6) / 5.0), rel=1e-6)
    for p in params:
        p.grad = None
    assert GradClip(params, 5.0)() is None


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_clipped_steps_stay_within_float_rounding_of_clip_grad_norm_then_torch_optim(name: str) -> None:
    p, q = _params(2), _params(2)
    if name == "sgd":
        ours: object = FusedSGD(_groups(p, 5e-4), momentum=0.9, nesterov=True)
        oracle: torch.optim.Optimizer = torch.optim.SGD(_torch_groups(q, 5e-4), lr=0.05, momentum=0.9,
                                                        nesterov=True)
    else:
        ours = FusedAdam(_groups(p, 0.05), decoupled_weight_decay=True)
        oracle = torch.optim.AdamW(_torch_groups(q, 0.05), lr=0.01, fused=True)
    clip = GradClip(p, 1.0)  # random gradients of norm ~10: clipped at every step
    gen = torch.Generator().manual_seed(2)
    for t in range(200):
        for a, b in zip(p, q, strict=True):
            g = torch.randn(a.shape, generator=gen)
            a.grad, b.grad = g.clone(), g.clone()
        ours.step(_lr(t), grad_scale=clip())  # type: ignore[attr-defined]
        nn.utils.clip_grad_norm_(q, 1.0)
        for group in oracle.param_groups:
            group["lr"] = _lr(t)
        oracle.step()
    for a, b in zip(p, q, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd"])
def test_state_dict_round_trips_and_is_interchangeable_with_torch_optim(name: str) -> None:
    def ours_of(params: list[nn.Parameter]) -> FusedAdam | FusedSGD:
        if name == "sgd":
            return FusedSGD(_groups(params, 5e-4), momentum=0.9, nesterov=True)
        return FusedAdam(_groups(params, 0.05), decoupled_weight_decay=name == "adamw")

    def torch_of(params: list[nn.Parameter]) -> torch.optim.Optimizer:
        if name == "sgd":
            return torch.optim.SGD(_torch_groups(params, 5e-4), lr=0.05, momentum=0.9, nesterov=True)
        cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
        return cls(_torch_groups(params, 0.05), lr=0.01, fused=True)

    def saved(opt: object) -> dict:  # through a file, as a checkpoint stores it
        buf = io.BytesIO()
        torch.save(opt.state_dict(), buf)  # type: ignore[attr-defined]
        buf.seek(0)
        return torch.load(buf, weights_only=True)

    p, q = _params(3), _params(3)
    a, oracle = ours_of(p), torch_of(q)
    _run_both(a, oracle, p, q, steps=40, seed=3)
    # ours -> ours, torch.optim -> ours, ours -> torch.optim: each goes on as the uninterrupted torch.optim does
    p2, p3, q2 = ([nn.Parameter(x.detach().clone()) for x in p] for _ in range(3))
    b, c, d = ours_of(p2), ours_of(p3), torch_of(q2)
    b.load_state_dict(saved(a))
    c.load_state_dict(saved(oracle))
    d.load_state_dict(saved(a))
    twins = [[nn.Parameter(x.detach().clone()) for x in q] for _ in range(3)]
    for opt, mine, twin in zip((b, c, d), (p2, p3, q2), twins, strict=True):
        ref = torch_of(twin)
        ref.load_state_dict(saved(oracle))
        _run_both(opt, ref, mine, twin, steps=40, seed=3, start=40)
        _assert_same(mine, twin, exact=name != "sgd")


class _Adapter:
    """A torch.optim optimiser with the loop's ``step(lr)``."""

    def __init__(self, opt: torch.optim.Optimizer) -> None:
        self.opt = opt

    def step(self, lr: float) -> None:
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.step()


def test_a_saved_state_of_other_groups_is_refused() -> None:
    p = _params(0)
    a = FusedAdam(_groups(p, 0.1), decoupled_weight_decay=True)
    b = FusedAdam((ParamGroup(tuple(p), 0.1),), decoupled_weight_decay=True)
    with pytest.raises(ValueError, match="groups"):
        b.load_state_dict(a.state_dict())


def test_make_optimizer_follows_the_recipe() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 2))
    adamw = make_optimizer(model, Recipe(optimizer="adamw", weight_decay=0.3))
    assert isinstance(adamw, FusedAdam) and adamw.decoupled
    assert [g.weight_decay for g in adamw.groups] == [0.3, 0.0]
    assert [len(g.params) for g in adamw.groups] == [2, 4]  # conv and linear weights; biases and BN
    adam = make_optimizer(model, Recipe(optimizer="adam"))
    assert isinstance(adam, FusedAdam) and not adam.decoupled
    sgd = make_optimizer(model, Recipe(optimizer="sgd", momentum=0.8))
    assert isinstance(sgd, FusedSGD) and sgd.nesterov and sgd.momentum == 0.8
    plain = make_optimizer(model, Recipe(optimizer="sgd", momentum=0.0))
    assert isinstance(plain, FusedSGD) and not plain.nesterov
    with pytest.raises(ConfigError, match="momentum"):
        make_optimizer(model, Recipe(optimizer="sgd", momentum=-0.5))
    with pytest.raises(ConfigError, match="floating-point"):
        FusedAdam((ParamGroup((torch.zeros(2, dtype=torch.int64),)),), decoupled_weight_decay=True)


FIXTURE_CONFIGS = {  # as in the script that wrote tests/training/data/torch_optim_*.ckpt (see the test below)
    "adamw": TrainConfig(epochs=4, batch_size=32),
    "sgd": TrainConfig(epochs=4, batch_size=32, optimizer="sgd", augment=("shift", "flip")),
}


@pytest.mark.parametrize("name", sorted(FIXTURE_CONFIGS))
def test_a_checkpoint_written_with_torch_optim_resumes_to_its_uninterrupted_weights(
        name: str, data: Dataset, tmp_path: Path) -> None:
    """The fixtures were written with the code of commit 1e1d4bf (the loop on torch.optim.AdamW(fused=True) /
    SGD(nesterov=True)), one torch thread: ``torch_optim_<name>_epoch2.ckpt`` is the Checkpoint of
    ``fit(build_model(conv_net(), seed=3), data, config=FIXTURE_CONFIGS[name], seed=3, checkpoint=...,
    checkpoint_every_s=0)`` killed in its third epoch, and ``torch_optim_<name>_final.ckpt`` the state dict of
    ``train_model(conv_net(), data, config=..., seed=3)`` uninterrupted."""
    torch.set_num_threads(1)
    ckpt = tmp_path / "ckpt.pt"
    shutil.copy(FIXTURES / f"torch_optim_{name}_epoch2.ckpt", ckpt)
    saved = torch.load(ckpt, weights_only=True)
    assert "fused" in saved["loop"]["optimizer"]["param_groups"][0]  # torch.optim's format
    resumed = train_model(conv_net(), data, config=FIXTURE_CONFIGS[name], seed=3, checkpoint=ckpt)
    # resumed, not retrained: the first two records are the killed run's (their times come from the file)
    assert [h["seconds"] for h in saved["loop"]["history"]] == [h.seconds for h in resumed.history[:2]]
    assert len(resumed.history) == 4
    want = torch.load(FIXTURES / f"torch_optim_{name}_final.ckpt", weights_only=True)
    got = resumed.model.state_dict()
    assert got.keys() == want.keys()
    for key, value in want.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=1e-6, msg=key)


def test_a_training_imports_no_dynamo() -> None:
    """torch.optim's first step imports torch._dynamo (about as long as ``import torch``); the loop's optimisers
    do not. (``torch.optim`` itself is imported by ``import torch``.)"""
    code = textwrap.dedent("""
        import sys
        import numpy as np
        import torch
        from tinyevo.data import from_arrays
        from tinyevo.nn import build_model
        from tinyevo.spaces import create_space
        from tinyevo.training import TrainConfig, fit
        rng = np.random.default_rng(0)
        x = rng.normal(size=(64, 1, 8, 8)).astype(np.float32)
        data = from_arrays(x, (x.mean((1, 2, 3)) > 0).astype(np.int64), name="t", seed=0, val_fraction=0.25)
        space = create_space("chain", input_shape=(1, 8, 8), num_classes=2)
        for genome in ("conv_k3_s2_c4-gap-dense_c8", "flat-dense_c8"):
            for optimizer in ("adamw", "adam", "sgd"):
                model = build_model(space.decode(space.parse(genome)), seed=0)
                fit(model, data, config=TrainConfig(epochs=1, batch_size=16, optimizer=optimizer), seed=0)
        print(sorted(m for m in sys.modules if m.startswith("torch._dynamo")))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
