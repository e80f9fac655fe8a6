from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import replace

import pytest
import torch
from estimator_helpers import conv_net

from tinyevo.data import Dataset, resize
from tinyevo.errors import ConfigError, DataError, EstimationError
from tinyevo import training
from tinyevo.training import EpochRecord, TrainConfig, accuracy, train_model
from tinyevo.training import augment as _augment
from tinyevo.training import lr_at as _lr_at
from tinyevo.nn import build_model

FAST = TrainConfig(epochs=3, batch_size=32)


def test_training_beats_chance_quickly(data: Dataset) -> None:
    result = train_model(conv_net(), data, config=FAST, seed=0)
    assert result.metrics["val_acc"] > 0.9 and result.metrics["test_acc"] > 0.9
    assert len(result.history) == 3 and result.history[-1].epoch == 3.0
    assert result.metrics["train_time_s"] > 0 and not result.model.training
    assert accuracy(result.model, data.x_test, data.y_test) == result.metrics["test_acc"]


def test_training_is_deterministic_and_leaves_global_rng_alone(data: Dataset) -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    cfg = TrainConfig(epochs=1, batch_size=32, augment=("shift", "flip"))
    a = train_model(conv_net(), data, config=cfg, seed=5)
    after = torch.rand(1)
    assert torch.equal(before, after)
    b = train_model(conv_net(), data, config=cfg, seed=5)
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    c = train_model(conv_net(), data, config=TrainConfig(epochs=1, batch_size=32), seed=6)
    key = "layers.fc.linear.weight"
    assert not torch.equal(a.model.state_dict()[key], c.model.state_dict()[key])


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_each_optimizer_trains(data: Dataset, optimizer: str) -> None:
    cfg = TrainConfig(epochs=2, batch_size=32, optimizer=optimizer)  # type: ignore[arg-type]
    assert train_model(conv_net(), data, config=cfg, seed=0).metrics["val_acc"] > 0.8


def test_cosine_schedule_and_warmup() -> None:
    assert _lr_at(0, 100, 10, 1.0, "cosine") == pytest.approx(0.1)
    assert _lr_at(10, 100, 10, 1.0, "cosine") == pytest.approx(1.0)
    assert _lr_at(55, 100, 10, 1.0, "cosine") == pytest.approx(0.5)
    assert _lr_at(99, 100, 0, 1.0, "cosine") < 0.01
    assert _lr_at(99, 100, 0, 1.0, "constant") == 1.0


def test_shift_augmentation_moves_pixels() -> None:
    x = torch.zeros(64, 1, 5, 5)
    x[:, :, 2, 2] = 1.0
    out = _augment(x, TrainConfig(augment=("shift",), shift_pixels=1), torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.all(out.sum((1, 2, 3)) == 1.0)
    positions = {tuple(torch.nonzero(o[0])[0].tolist()) for o in out}
    assert len(positions) > 3 and all(1 <= r <= 3 and 1 <= c <= 3 for r, c in positions)


def test_divergence_raises(data: Dataset) -> None:
    with pytest.raises(EstimationError, match="diverged"):
        train_model(conv_net(), data, config=TrainConfig(epochs=1, optimizer="sgd", lr=1e30, grad_clip=None),
                    seed=0)


def test_resizes_data_to_the_ir_and_checks_channels(data: Dataset) -> None:
    r = train_model(conv_net(size=4), data, config=TrainConfig(epochs=1, batch_size=32), seed=0)
    assert math.isfinite(r.metrics["val_acc"])
    with pytest.raises(DataError, match="channel"):
        train_model(conv_net(channels=3), data, config=FAST, seed=0)


def test_time_limit_stops(data: Dataset) -> None:
    r = train_model(conv_net(), data, config=TrainConfig(epochs=50, batch_size=32, time_limit_s=0.0), seed=0)
    assert len(r.history) == 1


class _FakeClock:
    """A ``time`` stand-in whose clock only moves when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def _use_clock(monkeypatch: pytest.MonkeyPatch, clock: _FakeClock) -> None:
    """Every module of the training package that reads the time reads ``clock``."""
    from tinyevo.training import callbacks, loop, state, train_ir

    for module in (callbacks, loop, state, train_ir):
        monkeypatch.setattr(module, "time", clock)


def _epochs_taking(monkeypatch: pytest.MonkeyPatch, seconds: list[float]) -> Callable[[object], bool]:
    """A monitor (called once per epoch, at its end) that makes epoch k take ``seconds[k]`` on a fake clock."""
    clock = _FakeClock()
    _use_clock(monkeypatch, clock)
    times = iter(seconds)

    def timed(rec: object) -> bool:
        clock.now += next(times)
        return False

    return timed


def test_time_limit_fits_the_schedule_to_the_epochs_that_fit(
    data: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = _FakeClock()
    _use_clock(monkeypatch, clock)

    def ten_seconds_per_epoch(rec: object) -> bool:  # evaluated once per epoch, at its end
        clock.now += 10.0
        return False

    cfg = TrainConfig(epochs=10, batch_size=32, time_limit_s=35.0)
    r = train_model(conv_net(), data, config=cfg, seed=0, monitor=ten_seconds_per_epoch)
    # the first epoch took 10 s of the 35: three epochs fit, and the cosine ends with the third
    assert [h.epoch for h in r.history] == [1.0, 2.0, 3.0]
    assert [h.planned_epochs for h in r.history] == [10, 3, 3]
    assert r.metrics["epochs"] == 3.0 and r.metrics["epochs_planned"] == 3.0
    assert r.metrics["epochs_configured"] == 10.0
    assert r.history[-1].lr < 0.05 * cfg.resolved_lr  # the schedule completed (it used to end near 0.8 x lr)
    assert not r.stopped_early


def test_time_limit_keeps_the_epochs_that_fit(data: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _FakeClock()
    _use_clock(monkeypatch, clock)

    def one_second_per_epoch(rec: object) -> bool:
        clock.now += 1.0
        return False

    cfg = TrainConfig(epochs=3, batch_size=32, time_limit_s=100.0)
    r = train_model(conv_net(), data, config=cfg, seed=0, monitor=one_second_per_epoch)
    assert [h.planned_epochs for h in r.history] == [3, 3, 3]
    assert r.metrics["epochs"] == 3.0 and r.metrics["epochs_planned"] == 3.0


@pytest.mark.parametrize(
    ("epochs", "first", "limit", "expected"),
    [(10, 10.0, 35.0, 3), (10, 1.0, 100.0, 10), (10, 50.0, 35.0, 1), (10, 0.0, 35.0, 10), (4, 5.0, 20.0, 4)],
)
def test_epochs_within(epochs: int, first: float, limit: float, expected: int) -> None:
    assert training.epochs_within(epochs, first, limit) == expected


@pytest.mark.parametrize(
    "kwargs",
    [dict(epochs=0), dict(optimizer="rmsprop"), dict(schedule="step"), dict(augment=("mixup",)), dict(lr=0.0),
     dict(threads=0), dict(label_smoothing=1.0), dict(distill_alpha=1.5), dict(distill_temperature=0.0)],
)
def test_bad_config(kwargs: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError):
        TrainConfig(**kwargs)


def test_threads_are_restored(data: Dataset) -> None:
    before = torch.get_num_threads()
    train_model(conv_net(), data, config=TrainConfig(epochs=1, threads=1), seed=0)
    assert torch.get_num_threads() == before


@pytest.mark.parametrize(
    ("epochs", "epoch_s", "left", "done", "expected"),
    [
        (10, 2.0, 18.0, 2, 10),  # 2 done + 9 that fit, capped at the 10 configured
        (10, 2.0, 10.0, 2, 7),  # 2 done + 5 that fit
        (10, 30.0, 10.0, 2, 2),  # none fit: keep the ones done
        (10, 5.0, -3.0, 1, 1),  # over time already
        (3, 1.0, 100.0, 2, 3),
        (10, 0.0, 5.0, 2, 10),  # an epoch that took no measurable time: all of them
    ],
)
def test_epochs_within_counts_the_epochs_done(epochs: int, epoch_s: float, left: float, done: int,
                                              expected: int) -> None:
    assert training.epochs_within(epochs, epoch_s, left, done=done) == expected


def test_slow_first_epoch_then_fast_second_plans_more_epochs(
    data: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GPU's first epoch pays for warm-up: the plan made after the second epoch, from that epoch's time,
    allows more epochs than the first epoch alone suggests."""
    timed = _epochs_taking(monkeypatch, [20.0, 2.0] + [2.0] * 20)

    cfg = TrainConfig(epochs=10, batch_size=32, time_limit_s=40.0)
    # the first epoch alone: 20 s of 40 -> 2 epochs
    assert training.epochs_within(10, 20.0, 20.0, done=1) == 2
    r = train_model(conv_net(), data, config=cfg, seed=0, monitor=timed)
    # after epoch 2 (2 s, 18 s left): 2 + 9 -> all 10 configured epochs fit (20 + 9 x 2 = 38 s)
    assert [h.planned_epochs for h in r.history] == [10, 2] + [10] * 8
    assert [h.epoch for h in r.history] == [float(e) for e in range(1, 11)]
    assert r.metrics["epochs_planned"] == 10.0 == r.metrics["epochs"]
    assert r.history[-1].seconds <= cfg.time_limit_s and not r.stopped_early


def test_the_second_plan_can_shorten_the_first(data: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    timed = _epochs_taking(monkeypatch, [2.0, 8.0] + [8.0] * 20)

    cfg = TrainConfig(epochs=10, batch_size=32, time_limit_s=30.0)
    r = train_model(conv_net(), data, config=cfg, seed=0, monitor=timed)
    # after epoch 1: 2 s of 30 -> 10 epochs; after epoch 2 (8 s, 20 s left): 2 + 2 = 4
    assert [h.planned_epochs for h in r.history] == [10, 10, 4, 4]
    assert r.metrics["epochs"] == 4.0 == r.metrics["epochs_planned"]
    assert r.history[-1].lr < 0.05 * cfg.resolved_lr  # the refitted cosine ends with the 4th epoch


def test_time_limit_history_is_consistent_with_the_metrics(data: Dataset) -> None:
    """Real clock, a limit far away: the plan never changes and every epoch is trained."""
    r = train_model(conv_net(), data, config=TrainConfig(epochs=3, batch_size=32, time_limit_s=600.0), seed=0)
    assert [h.planned_epochs for h in r.history] == [3, 3, 3]
    assert r.metrics["epochs_planned"] == float(r.history[-1].planned_epochs) == r.metrics["epochs"] == 3.0


def test_epochs_that_slow_down_shrink_the_plan(data: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    """A shared GPU or CPU can slow later epochs: the plan shrinks, so the cosine still ends inside the time limit
    instead of being cut off before it anneals."""
    timed = _epochs_taking(monkeypatch, [2.0, 2.0, 2.0, 10.0, 10.0] + [10.0] * 20)

    cfg = TrainConfig(epochs=10, batch_size=32, time_limit_s=30.0)
    r = train_model(conv_net(), data, config=cfg, seed=0, monitor=timed)
    # after epoch 4 (16 s, mean of the last three epochs after the first 4.67 s, 14 s left): 4 + 3 = 7; after
    # epoch 5 (26 s, mean 7.33 s, 4 s left): 5 -> training ends with the 5th epoch, inside the 30 s (the last
    # record carries the final plan)
    assert [h.planned_epochs for h in r.history] == [10, 10, 10, 10, 5]
    assert r.metrics["epochs"] == 5.0 == r.metrics["epochs_planned"]
    assert r.history[-1].seconds <= cfg.time_limit_s and not r.stopped_early


class _Killed(Exception):
    pass


def test_a_killed_training_resumes_from_its_checkpoint_with_the_same_result(data: Dataset, tmp_path) -> None:
    import torch

    cfg = TrainConfig(epochs=5, batch_size=32, augment=("shift", "flip"), optimizer="sgd")
    whole = train_model(conv_net(), data, config=cfg, seed=3)
    ckpt = tmp_path / "ckpt.pt"

    def kill_in_epoch_4(rec: EpochRecord) -> bool:
        if rec.epoch >= 4:
            raise _Killed
        return False

    model = build_model(conv_net(), seed=3)
    with pytest.raises(_Killed):
        training.fit(model, data, config=cfg, seed=3, monitor=kill_in_epoch_4, checkpoint=ckpt, checkpoint_every_s=0)
    assert ckpt.is_file()
    resumed = train_model(conv_net(), data, config=cfg, seed=3, checkpoint=ckpt)
    assert [h.epoch for h in resumed.history] == [h.epoch for h in whole.history]
    assert [h.val_acc for h in resumed.history] == [h.val_acc for h in whole.history]
    for (k, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_a_checkpoint_of_another_training_is_ignored(data: Dataset, tmp_path) -> None:
    cfg = TrainConfig(epochs=3, batch_size=32)
    ckpt = tmp_path / "ckpt.pt"

    def kill(rec: EpochRecord) -> bool:
        if rec.epoch >= 2:
            raise _Killed
        return False

    with pytest.raises(_Killed):
        training.fit(build_model(conv_net(), seed=0), data, config=cfg, seed=0, monitor=kill, checkpoint=ckpt,
                     checkpoint_every_s=0)
    other_seed = train_model(conv_net(), data, config=cfg, seed=1, checkpoint=ckpt)
    fresh = train_model(conv_net(), data, config=cfg, seed=1)
    assert [h.val_acc for h in other_seed.history] == [h.val_acc for h in fresh.history]
    assert len(other_seed.history) == 3  # trained from the first epoch, not from the saved one
    ckpt.write_bytes(b"not a checkpoint")
    assert len(train_model(conv_net(), data, config=cfg, seed=1, checkpoint=ckpt).history) == 3


def test_recalibrate_batchnorm_reestimates_the_statistics_only(data: Dataset) -> None:
    model = build_model(conv_net(), seed=0)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    momenta = [m.momentum for m in bns]
    model.eval()
    used = training.recalibrate_batchnorm(model, data.x_train, batches=2, batch_size=8, seed=0)
    assert used == min(16, len(data.x_train))
    assert not model.training and [m.momentum for m in bns] == momenta
    for k, v in model.state_dict().items():
        if k in weights:
            assert torch.equal(v, weights[k]), k  # weights untouched
    # the running mean of the first BN is now the batch mean of its input over the rows used (cumulative average)
    first = bns[0]
    assert not torch.allclose(first.running_mean, torch.zeros_like(first.running_mean))
    assert training.recalibrate_batchnorm(torch.nn.Linear(2, 2), data.x_train) == 0  # no BatchNorm


def test_the_plan_grows_back_early_when_epochs_speed_up(data: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine busy at the start (here epoch 2 takes 5 s, the rest 1 s): until a quarter of the plan is done
    the plan follows the epoch times both ways, so the slow epoch does not cut the training for good."""
    timed = _epochs_taking(monkeypatch, [1.0, 5.0] + [1.0] * 200)

    cfg = TrainConfig(epochs=100, batch_size=64, time_limit_s=200.0)
    r = train_model(conv_net(), data, config=cfg, seed=0, monitor=timed)
    # after epoch 2: 2 + 194 // 5 = 40; epoch 3: mean(5, 1) = 3 -> 3 + 64 = 67; epoch 4: 2.33 -> 86; epoch 5: 1 -> 100
    assert [h.planned_epochs for h in r.history][:6] == [100, 100, 40, 67, 86, 100]
    assert r.metrics["epochs"] == 100.0 == r.metrics["epochs_planned"]


@pytest.mark.parametrize("channels_last", [None, True, False])
def test_channels_last_trains_alike_and_gives_the_model_back_in_the_usual_order(
    data: Dataset, channels_last: bool | None
) -> None:
    cfg = TrainConfig(epochs=1, batch_size=32, augment=("shift",), channels_last=channels_last)
    result = train_model(conv_net(), data, config=cfg, seed=3)
    for name, p in result.model.state_dict().items():
        assert p.is_contiguous(), name  # exported, pruned and saved models see the usual layout
    plain = train_model(conv_net(), data, config=TrainConfig(epochs=1, batch_size=32, augment=("shift",),
                                                             channels_last=False), seed=3)
    # the same math in another memory order: equal up to float rounding, not bit for bit
    for (k, a), b in zip(result.model.state_dict().items(), plain.model.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-4, rtol=1e-3), k


def test_channels_last_is_used_while_training_on_the_cpu_by_default(data: Dataset) -> None:
    seen: list[bool] = []

    def monitor(rec: EpochRecord) -> bool:
        seen.append(any(p.ndim == 4 and p.is_contiguous(memory_format=torch.channels_last)
                        and not p.is_contiguous() for p in model.parameters()))
        return False

    model = build_model(conv_net(), seed=0)
    training.fit(model, data, config=TrainConfig(epochs=1, batch_size=32), seed=0, monitor=monitor)
    assert seen == [True]
    model = build_model(conv_net(), seed=0)
    seen.clear()
    training.fit(model, data, config=TrainConfig(epochs=1, batch_size=32, channels_last=False), seed=0,
                 monitor=monitor)
    assert seen == [False]


def _flipped(data: Dataset) -> Dataset:
    """The same images with the two labels swapped."""
    return replace(data, y_train=1 - data.y_train, y_val=1 - data.y_val, y_test=1 - data.y_test)


def test_a_student_learns_its_teachers_answers(data: Dataset) -> None:
    # the teacher learned swapped labels; a student that listens only to it (alpha = 1) learns them too, and one
    # that listens only to the labels (alpha = 0) ignores it
    teacher = train_model(conv_net(), _flipped(data), config=FAST, seed=0).model
    assert accuracy(teacher, data.x_val, data.y_val) < 0.1
    only_teacher = train_model(conv_net(), data, config=replace(FAST, distill_alpha=1.0), seed=1, teacher=teacher)
    assert only_teacher.metrics["val_acc"] < 0.1
    mixed = train_model(conv_net(), data, config=replace(FAST, distill_alpha=0.5), seed=1, teacher=teacher)
    assert mixed.metrics["val_acc"] > only_teacher.metrics["val_acc"]
    assert all(p.device.type == "cpu" and p.is_contiguous() for p in teacher.parameters())
    assert not teacher.training


def test_a_teacher_with_weight_zero_changes_nothing(data: Dataset) -> None:
    teacher = train_model(conv_net(), _flipped(data), config=FAST, seed=0).model
    cfg = replace(FAST, augment=("shift", "flip"), distill_alpha=0.0)
    a = train_model(conv_net(), data, config=cfg, seed=2, teacher=teacher)
    b = train_model(conv_net(), data, config=cfg, seed=2)
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k


def test_a_teacher_of_another_resolution_sees_resized_batches(data: Dataset) -> None:
    big = resize(data, (12, 12))
    teacher = train_model(conv_net(size=12), _flipped(big), config=FAST, seed=0).model
    student = train_model(conv_net(), data, config=replace(FAST, distill_alpha=1.0), seed=1, teacher=teacher)
    assert student.metrics["val_acc"] < 0.2  # it learned the teacher's swapped labels through the resized input


def test_a_teacher_must_predict_the_same_classes(data: Dataset) -> None:
    teacher = build_model(conv_net(classes=3), seed=0)
    with pytest.raises(ConfigError, match="3 classes"):
        train_model(conv_net(), data, config=FAST, seed=0, teacher=teacher)
    with pytest.raises(ConfigError, match="input channel"):
        train_model(conv_net(), data, config=FAST, seed=0, teacher=build_model(conv_net(channels=3), seed=0))


def test_a_checkpoint_is_resumed_only_with_the_same_teacher(data: Dataset, tmp_path) -> None:
    cfg = replace(FAST, epochs=3)
    ckpt = tmp_path / "ckpt.pt"

    def first_record_of_a_killed_run_then_resume(saved_with: torch.nn.Module | None,
                                                 resumed_with: torch.nn.Module | None) -> bool:
        ckpt.unlink(missing_ok=True)
        seen: list[EpochRecord] = []

        def kill(rec: EpochRecord) -> bool:
            seen.append(rec)
            if rec.epoch >= 2:
                raise _Killed
            return False

        with pytest.raises(_Killed):
            training.fit(build_model(conv_net(), seed=0), data, config=cfg, seed=0, monitor=kill, checkpoint=ckpt,
                         checkpoint_every_s=0, teacher=saved_with)
        history, _ = training.fit(build_model(conv_net(), seed=0), data, config=cfg, seed=0, checkpoint=ckpt,
                                  teacher=resumed_with)
        assert [h.epoch for h in history] == [1.0, 2.0, 3.0]
        return history[0] == seen[0]  # the saved record came back: it resumed

    teacher, other = build_model(conv_net(), seed=5), build_model(conv_net(), seed=6)
    assert first_record_of_a_killed_run_then_resume(teacher, teacher)
    assert first_record_of_a_killed_run_then_resume(None, None)
    assert not first_record_of_a_killed_run_then_resume(None, teacher)
    assert not first_record_of_a_killed_run_then_resume(teacher, other)
    assert not first_record_of_a_killed_run_then_resume(teacher, None)


def test_a_late_plan_grows_back_without_raising_the_learning_rate(
    data: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Epochs 11-13 (after a quarter of the plan) are slow, then fast again: the plan shrinks, then grows back, and
    the cosine goes on from the current rate (it never jumps up) and still ends inside the limit."""
    timed = _epochs_taking(monkeypatch, [1.0] * 10 + [5.0] * 3 + [1.0] * 100)
    cfg = TrainConfig(epochs=40, batch_size=64, time_limit_s=60.0)
    r = train_model(conv_net(), data, config=cfg, seed=0, monitor=timed)
    plans = [h.planned_epochs for h in r.history]
    low = min(plans[10:])
    assert plans[:10] == [40] * 10 and low < 40
    assert plans[-1] > low + 2  # grew back after shrinking
    lrs = [h.lr for h in r.history]
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(lrs)), lrs
    assert lrs[-1] < 0.05 * cfg.resolved_lr  # it still anneals
    assert r.metrics["epochs"] == float(plans[-1]) == r.metrics["epochs_planned"]
    assert r.history[-1].seconds <= cfg.time_limit_s
    assert plans[10:17] == [40, 30, 22, 20, 23, 29, 40]  # the mean of the last three epoch times, as planned


def test_lr_anchor_continues_the_cosine_from_the_given_rate() -> None:
    base, total, warmup = 0.1, 100, 0
    at_50 = _lr_at(50, total, warmup, base, "cosine")
    assert at_50 == pytest.approx(0.05)
    # the plan grows to 150 steps at step 50: the cosine restarts from 0.05 and reaches 0 at step 150
    anchor = (50, at_50)
    assert _lr_at(50, 150, warmup, base, "cosine", anchor) == pytest.approx(at_50)
    assert _lr_at(100, 150, warmup, base, "cosine", anchor) == pytest.approx(0.025)
    assert _lr_at(150, 150, warmup, base, "cosine", anchor) == pytest.approx(0.0, abs=1e-12)
    assert _lr_at(10, 150, warmup, base, "cosine", anchor) == _lr_at(10, 150, warmup, base, "cosine")  # before it


def test_a_late_grown_plan_resumes_from_its_checkpoint_with_the_same_schedule(
    data: Dataset, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    times = [1.0] * 10 + [5.0] * 3 + [1.0] * 100
    cfg = TrainConfig(epochs=40, batch_size=64, time_limit_s=60.0)
    whole = train_model(conv_net(), data, config=cfg, seed=0, monitor=_epochs_taking(monkeypatch, times))
    ckpt = tmp_path / "ckpt.pt"
    timed = _epochs_taking(monkeypatch, times)

    def killed_in_epoch_20(rec: EpochRecord) -> bool:
        if rec.epoch >= 20:
            raise _Killed
        return timed(rec)

    model = build_model(conv_net(), seed=0)
    with pytest.raises(_Killed):
        training.fit(model, data, config=cfg, seed=0, monitor=killed_in_epoch_20, checkpoint=ckpt,
                     checkpoint_every_s=0)
    saved = torch.load(ckpt, weights_only=True)
    assert saved["loop"]["epoch"] == 19 and saved["loop"]["anchor"] is not None  # saved after the plan grew back (epoch 16)
    resumed = train_model(conv_net(), data, config=cfg, seed=0, checkpoint=ckpt,
                          monitor=_epochs_taking(monkeypatch, times[19:]))
    assert [h.planned_epochs for h in resumed.history] == [h.planned_epochs for h in whole.history]
    assert [h.lr for h in resumed.history] == [h.lr for h in whole.history]
    for (k, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


# a constant, large learning rate: a noisy validation curve on this data, best (1.0) first at epoch 1, last 0.974
NOISY = TrainConfig(epochs=6, batch_size=32, optimizer="sgd", lr=2.0, schedule="constant")


def test_restore_best_gives_back_the_weights_of_the_best_evaluation(data: Dataset) -> None:
    last = train_model(conv_net(), data, config=NOISY, seed=0)
    best = train_model(conv_net(), data, config=replace(NOISY, restore_best=True), seed=0)
    curve = [h.val_acc for h in last.history]
    assert [h.val_acc for h in best.history] == curve  # the option changes what is given back, not the training
    assert max(curve) > curve[-1] and curve.index(max(curve)) == 0  # (the case this test needs)
    assert last.metrics["val_acc"] == curve[-1] == accuracy(last.model, data.x_val, data.y_val)
    assert "epoch_restored" not in last.metrics
    assert best.metrics["val_acc"] == max(curve) == accuracy(best.model, data.x_val, data.y_val)
    assert best.metrics["epoch_restored"] == 1.0  # the first of the equally good evaluations
    assert best.metrics["train_loss"] == best.history[0].train_loss
    assert best.metrics["epochs"] == 6.0


def test_restore_best_survives_a_killed_training(data: Dataset, tmp_path) -> None:
    cfg = replace(NOISY, restore_best=True)
    whole = train_model(conv_net(), data, config=cfg, seed=0)
    ckpt = tmp_path / "ckpt.pt"

    def kill_in_epoch_3(rec: EpochRecord) -> bool:  # the checkpoint of epoch 2 holds epoch 1's best weights
        if rec.epoch >= 3:
            raise _Killed
        return False

    for saved_cfg in (NOISY, cfg):  # a checkpoint without the best weights is not resumed with restore_best
        with pytest.raises(_Killed):
            training.fit(build_model(conv_net(), seed=0), data, config=saved_cfg, seed=0, monitor=kill_in_epoch_3,
                         checkpoint=ckpt, checkpoint_every_s=0)
        resumed = train_model(conv_net(), data, config=cfg, seed=0, checkpoint=ckpt)
        assert resumed.metrics["epoch_restored"] == 1.0 and resumed.metrics["val_acc"] == whole.metrics["val_acc"]
        assert resumed.metrics["train_time_s"] >= resumed.history[-1].seconds  # the killed part counts too
        for (k, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
            assert torch.equal(a, b), k


def test_restore_best_must_be_a_bool() -> None:
    with pytest.raises(ConfigError, match="restore_best"):
        TrainConfig(restore_best="yes")  # type: ignore[arg-type]


def test_train_on_val_trains_on_the_validation_rows_too(data: Dataset) -> None:
    cfg = TrainConfig(epochs=1, batch_size=32)
    plain = train_model(conv_net(), data, config=cfg, seed=0)
    both = train_model(conv_net(), data, config=replace(cfg, train_on_val=True), seed=0)
    merged = training.with_val_in_train(data)
    assert len(merged.x_train) == len(data.x_train) + len(data.x_val) and len(merged.x_val) == len(data.x_val)
    assert (merged.x_train[len(data.x_train):] == data.x_val).all()
    assert (merged.y_train[len(data.y_train):] == data.y_val).all()
    # trained on more rows: other weights; the same as training plainly on the merged data
    same = train_model(conv_net(), merged, config=cfg, seed=0)
    for (k, a), b, c in zip(both.model.state_dict().items(), same.model.state_dict().values(),
                            plain.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert any(not torch.equal(a, c) for a, c in zip(both.model.state_dict().values(),
                                                      plain.model.state_dict().values(), strict=True))
    assert math.isnan(both.metrics["val_acc"])  # seen data: no held-out estimate
    assert both.metrics["val_acc_seen"] == accuracy(both.model, data.x_val, data.y_val)
    assert "val_acc_seen" not in plain.metrics


def test_train_on_val_is_a_bool_and_excludes_restore_best() -> None:
    with pytest.raises(ConfigError, match="train_on_val"):
        TrainConfig(train_on_val=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="restore_best"):
        TrainConfig(train_on_val=True, restore_best=True)
