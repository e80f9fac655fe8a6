"""The loop's seams: any module, a step with several backward passes, callbacks with state that a checkpoint
carries over a kill."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from tinyevo.data import Dataset
from tinyevo.training import (
    BaseCallback,
    Checkpoint,
    CrossEntropy,
    CurveMonitor,
    EpochRecord,
    Recipe,
    StandardStep,
    TrainState,
    train,
)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))


class _Twice:
    """Two forwards and backwards per batch (the batch and its mirror image), each at half weight."""

    def __init__(self) -> None:
        self.loss = CrossEntropy()
        self.calls = 0

    def __call__(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        total = torch.zeros(())
        for view in (inputs, inputs.flip(3)):
            loss = self.loss(model(view), targets, view) / 2
            loss.backward()
            total = total + loss.detach()
        return total

    def prepare(self, model: nn.Module, device: torch.device, input_shape: Any) -> None:
        return None

    def modules(self) -> tuple[nn.Module, ...]:
        return ()

    def signature(self) -> dict[str, object]:
        return {"step": "twice"}


def test_a_step_may_accumulate_several_backward_passes(data: Dataset) -> None:
    step = _Twice()
    recipe = Recipe(epochs=1, batch_size=32, grad_clip=None, optimizer="sgd", momentum=0.0, lr=0.1,
                    weight_decay=0.0, schedule="constant")
    model = _net()
    xb = torch.from_numpy(data.x_train[:32].copy())
    yb = torch.from_numpy(data.y_train[:32].copy())
    # the oracle: one SGD step on the mean of the two views' losses, computed by hand
    ref = _net()
    loss = (nn.functional.cross_entropy(ref(xb), yb) + nn.functional.cross_entropy(ref(xb.flip(3)), yb)) / 2
    grads = torch.autograd.grad(loss, list(ref.parameters()))
    expected = [p.detach() - 0.1 * g for p, g in zip(ref.parameters(), grads, strict=True)]

    class OneBatch(BaseCallback):
        def on_evaluate(self, state: TrainState, record: EpochRecord) -> None:
            state.request_stop("early")

    first = data.with_splits(x_train=data.x_train[:32], y_train=data.y_train[:32])
    done = train(model, first, recipe, seed=0, step=step, callbacks=[OneBatch()])
    assert step.calls == 1 and done.stopped_early
    # (the batch order is a permutation of the 32 rows: the mean loss does not depend on it)
    for p, want in zip(model.parameters(), expected, strict=True):
        assert torch.allclose(p.detach(), want, atol=1e-5)


class _Counter(BaseCallback):
    """Counts evaluations; its count is part of what a checkpoint must carry."""

    key = "counter"

    def __init__(self) -> None:
        self.seen = 0

    def on_evaluate(self, state: TrainState, record: EpochRecord) -> None:
        self.seen += 1

    def state_dict(self) -> dict[str, Any] | None:
        return {"seen": self.seen}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.seen = int(saved["seen"])


class _Killed(Exception):
    pass


def test_checkpoint_resumes_weights_and_callback_state_after_a_kill(data: Dataset, tmp_path) -> None:
    recipe = Recipe(epochs=4, batch_size=32, augment=("shift", "flip"))
    whole_counter = _Counter()
    whole = _net()
    train(whole, data, recipe, seed=1, callbacks=[whole_counter])

    def kill_in_epoch_3(rec: EpochRecord) -> bool:
        if rec.epoch > 2:
            raise _Killed
        return False

    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(_Killed):
        train(_net(), data, recipe, seed=1,
              callbacks=[_Counter(), CurveMonitor(kill_in_epoch_3), Checkpoint(ckpt, every_s=0.0)])
    saved = torch.load(ckpt, weights_only=True)  # plain tensors and numbers
    assert saved["loop"]["epoch"] == 2 and saved["callbacks"]["counter"] == {"seen": 2}
    counter = _Counter()
    resumed = _net()
    done = train(resumed, data, recipe, seed=1, callbacks=[counter, Checkpoint(ckpt, every_s=0.0)])
    assert counter.seen == whole_counter.seen == 4 and len(done.history) == 4
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_checkpoint_of_another_training_is_ignored(data: Dataset, tmp_path) -> None:
    ckpt = tmp_path / "ckpt.pt"
    recipe = Recipe(epochs=2, batch_size=32)
    train(_net(), data, recipe, seed=1, callbacks=[Checkpoint(ckpt, every_s=0.0)])
    assert ckpt.is_file()  # saved after epoch 1 of 2
    other = Checkpoint(ckpt, every_s=0.0)
    train(_net(), data, recipe, seed=1, step=StandardStep(CrossEntropy(0.2)), callbacks=[other])
    assert not other.resumed  # another loss: trained from the start
    same = Checkpoint(ckpt, every_s=0.0)
    train(_net(), data, recipe, seed=1, step=StandardStep(CrossEntropy(0.2)), callbacks=[same])
    assert same.resumed


class _Recording:
    """The standard step, recording each batch's size and mean loss on the host (the oracle of the curve)."""

    def __init__(self) -> None:
        self.inner = StandardStep()
        self.seen: list[tuple[int, float]] = []

    def __call__(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        loss = self.inner(model, inputs, targets)
        self.seen.append((len(inputs), float(loss.detach())))
        return loss

    def prepare(self, model: nn.Module, device: torch.device, input_shape: Any) -> None:
        return None

    def modules(self) -> tuple[nn.Module, ...]:
        return ()

    def signature(self) -> dict[str, object]:
        return {"step": "recording"}


def test_the_curve_reports_the_mean_loss_per_sample_since_the_start_of_the_epoch(data: Dataset) -> None:
    n = len(data.x_train)
    assert n % 40 >= 2  # a last, smaller batch in each epoch
    step = _Recording()
    done = train(_net(), data, Recipe(epochs=2, batch_size=40), seed=0, step=step, evals_per_epoch=3)
    per_epoch = n // 40 + 1
    assert [n for n, _ in step.seen] == ([40] * (per_epoch - 1) + [n % 40]) * 2
    assert len(done.history) == 6
    for h in done.history:
        epoch, k = int(h.epoch - 1e-9), round((h.epoch - int(h.epoch - 1e-9)) * per_epoch)  # k steps into it
        batches = step.seen[per_epoch * epoch: per_epoch * epoch + k]
        expected = sum(b * v for b, v in batches) / sum(b for b, _ in batches)
        assert h.train_loss == pytest.approx(expected, rel=1e-6)
