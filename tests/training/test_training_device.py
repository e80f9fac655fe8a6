"""``TrainConfig.device`` and :func:`resolve_device`: names, GPU availability, where the trained model ends up.

The GPU cases run only where PyTorch sees a CUDA GPU; the CPU-only cases (no GPU -> ConfigError) are skipped
there.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from estimator_helpers import conv_net

from tinyevo.data import Dataset
from tinyevo.errors import ConfigError, EstimationError
from tinyevo.training import TrainConfig, fit, loop, resolve_device, train_model
from tinyevo.nn import build_model
from tinyevo.run.config import build_config

HAS_GPU = torch.cuda.is_available()
no_gpu = pytest.mark.skipif(HAS_GPU, reason="checks the behaviour on a machine without a CUDA GPU")
gpu = pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU")


def _devices(model: torch.nn.Module) -> set[str]:
    return {p.device.type for p in model.parameters()} | {b.device.type for b in model.buffers()}


@pytest.mark.parametrize("name", ["cpu", "cuda", "cuda:0", "cuda:12", "auto"])
def test_device_names_accepted_at_construction(name: str) -> None:
    assert TrainConfig(device=name).device == name  # availability is checked when training, not here


@pytest.mark.parametrize("name", ["gpu", "CUDA", "cuda:", "cuda:x", "cuda:-1", "mps", "", " cpu", "cpu ", "cuda:0\n"])
def test_bad_device_name_is_a_config_error_at_construction(name: str) -> None:
    with pytest.raises(ConfigError, match="unknown training device"):
        TrainConfig(device=name)


@pytest.mark.parametrize("value", [0, None, torch.device("cpu")])
def test_non_string_device_is_a_config_error(value: object) -> None:
    with pytest.raises(ConfigError, match="training device"):
        TrainConfig(device=value)  # type: ignore[arg-type]


def test_bad_device_in_a_config_file_is_caught_when_parsing() -> None:
    with pytest.raises(ConfigError, match="unknown training device"):
        build_config({"train": {"device": "gpu"}})
    with pytest.raises(ConfigError, match="unknown training device"):
        build_config({"final": {"device": "tpu"}})
    assert build_config({"final": {"device": "cuda"}}).final.train["device"] == "cuda"  # checked when training


def test_resolve_device_rejects_bad_names() -> None:
    with pytest.raises(ConfigError, match="unknown training device 'gpu'"):
        resolve_device("gpu")


def test_resolve_device_cpu() -> None:
    assert resolve_device("cpu") == torch.device("cpu")


@no_gpu
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:1"])
def test_cuda_without_a_gpu_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match="sees no CUDA GPU"):
        resolve_device(name)


@no_gpu
def test_auto_is_the_cpu_without_a_gpu() -> None:
    assert resolve_device("auto") == torch.device("cpu")


def test_resolve_device_with_a_pretend_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU branch of resolve_device (only torch.device objects are made, nothing is moved)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ConfigError, match="sees 2 GPU"):
        resolve_device("cuda:2")
    assert resolve_device("cpu") == torch.device("cpu")


@no_gpu
def test_training_on_a_missing_gpu_fails_before_training(data: Dataset) -> None:
    with pytest.raises(ConfigError, match="sees no CUDA GPU"):
        train_model(conv_net(), data, config=TrainConfig(epochs=1, device="cuda"), seed=0)


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_train_model_returns_a_cpu_model(data: Dataset, device: str) -> None:
    r = train_model(conv_net(), data, config=TrainConfig(epochs=1, batch_size=32, device=device), seed=0)
    assert _devices(r.model) == {"cpu"}
    assert math.isfinite(r.metrics["val_acc"]) and math.isfinite(r.metrics["train_loss"])
    assert not r.model.training


def test_auto_trains_like_cpu_without_a_gpu(data: Dataset) -> None:
    if HAS_GPU:
        pytest.skip("auto picks the GPU here")
    a = train_model(conv_net(), data, config=TrainConfig(epochs=1, batch_size=32, device="auto"), seed=4)
    b = train_model(conv_net(), data, config=TrainConfig(epochs=1, batch_size=32, device="cpu"), seed=4)
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_nan_loss_raises(data: Dataset, device: str) -> None:
    cfg = TrainConfig(epochs=1, optimizer="sgd", lr=1e30, grad_clip=None, device=device)
    with pytest.raises(EstimationError, match="diverged"):
        train_model(conv_net(), data, config=cfg, seed=0)


def test_nan_input_raises_at_the_first_step(data: Dataset) -> None:
    bad = dataclasses.replace(data, x_train=data.x_train * math.nan)
    steps: list[object] = []
    with pytest.raises(EstimationError, match="diverged"):
        fit(build_model(conv_net(), seed=0), bad, config=TrainConfig(epochs=2, batch_size=16), seed=0,
            monitor=lambda rec: steps.append(rec) or False)
    assert steps == []  # the divergence is caught at the evaluation point, before the monitor sees a record


def test_fit_moves_the_model_to_the_training_device(data: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[torch.device] = []
    real = loop.resolve_device

    def spy(name: str) -> torch.device:
        seen.append(real(name))
        return seen[-1]

    monkeypatch.setattr(loop, "resolve_device", spy)
    model = build_model(conv_net(), seed=0)
    fit(model, data, config=TrainConfig(epochs=1, batch_size=32, device="auto"), seed=0)
    assert seen and _devices(model) == {seen[0].type}


@gpu
def test_training_on_the_gpu_returns_a_cpu_model(data: Dataset) -> None:
    cfg = TrainConfig(epochs=2, batch_size=32, device="cuda", augment=("shift", "flip"))
    r = train_model(conv_net(), data, config=cfg, seed=0)
    assert _devices(r.model) == {"cpu"}
    assert r.metrics["val_acc"] > 0.8 and len(r.history) == 2


@gpu
def test_fit_leaves_the_model_on_the_gpu(data: Dataset) -> None:
    model = build_model(conv_net(), seed=0)
    fit(model, data, config=TrainConfig(epochs=1, batch_size=32, device="cuda"), seed=0)
    assert _devices(model) == {"cuda"}


@gpu
def test_nan_loss_raises_on_the_gpu(data: Dataset) -> None:
    cfg = TrainConfig(epochs=1, optimizer="sgd", lr=1e30, grad_clip=None, device="cuda")
    with pytest.raises(EstimationError, match="diverged"):
        train_model(conv_net(), data, config=cfg, seed=0)
