"""Supernet training: the sandwich step, resumption after an interruption, weights_only files, fine-tuning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tinyevo.data import Dataset
from tinyevo.errors import ConfigError
from tinyevo.spaces.blocks import BlocksSpace
from tinyevo.supernet import Supernet
from tinyevo.supernet.store import load_supernet, read_info, save_supernet
from tinyevo.supernet.train import SandwichStep, finetune, train_supernet
from tinyevo.training import BaseCallback, Recipe, TrainState, train

RECIPE = Recipe(epochs=3, batch_size=24)


def fresh(space: BlocksSpace) -> Supernet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return Supernet(space)


class Kill(BaseCallback):
    """Raises after epoch ``at`` ended (after the checkpoint of that epoch was written: order > Checkpoint's)."""

    order = 1000

    def __init__(self, at: int) -> None:
        self.at = at

    def on_epoch_end(self, state: TrainState) -> None:
        if state.epoch == self.at:
            raise KeyboardInterrupt("killed")


def test_sandwich_runs_four_subnets_and_trains(space: BlocksSpace, tiny_data: Dataset) -> None:
    net = fresh(space)
    step = SandwichStep(net, seed=3, random_subnets=2)
    genomes = step.genomes(7)
    assert len(genomes) == 4 and genomes[0] == net.largest() and genomes[1] == net.smallest()
    assert [str(g) for g in step.genomes(7)] == [str(g) for g in genomes]  # a function of (seed, step)
    assert {str(g) for g in step.genomes(8)[2:]} != {str(g) for g in genomes[2:]}
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fitted = train_supernet(net, tiny_data, RECIPE, seed=0)
    assert fitted.history[-1].train_loss < fitted.history[0].train_loss
    assert any(not torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_sandwich_step_needs_its_callback(space: BlocksSpace, tiny_data: Dataset) -> None:
    net = fresh(space)
    with pytest.raises(ConfigError, match="callbacks"):
        train(net, tiny_data, RECIPE, seed=0, step=SandwichStep(net))


def test_resume_after_interruption_gives_the_same_weights(
    space: BlocksSpace, tiny_data: Dataset, tmp_path: Path
) -> None:
    straight = fresh(space)
    train_supernet(straight, tiny_data, RECIPE, seed=1)

    ckpt = tmp_path / "sn.ckpt"
    first = fresh(space)
    with pytest.raises(KeyboardInterrupt):
        train_supernet(first, tiny_data, RECIPE, seed=1, checkpoint=ckpt, checkpoint_every_s=0.0,
                       callbacks=[Kill(at=2)])
    assert ckpt.exists()
    saved = torch.load(ckpt, weights_only=True)  # plain tensors and numbers
    assert saved["loop"]["epoch"] == 2

    resumed = fresh(space)
    train_supernet(resumed, tiny_data, RECIPE, seed=1, checkpoint=ckpt, checkpoint_every_s=0.0)
    for k, v in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, rtol=0, atol=0, msg=k)


def test_saved_directory_round_trip(space: BlocksSpace, scramble, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    net = scramble(fresh(space), 4).eval()
    out = save_supernet(tmp_path / "sn", net, data={"name": "quadrants", "input_shape": [1, 16, 16]},
                        training={"epochs": 3})
    torch.load(out / "supernet.pt", weights_only=True)
    info = read_info(out)
    assert info.data["name"] == "quadrants" and info.training == {"epochs": 3}
    loaded, _ = load_supernet(out)
    assert loaded.space.stage_channels == space.stage_channels and loaded.space.kernels == space.kernels
    genome = space.sample(np.random.default_rng(2))
    x = torch.randn(2, 1, genome.resolution, genome.resolution)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, genome), net(x, genome), rtol=0, atol=0)


def test_read_info_refuses_other_directories(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="supernet"):
        read_info(tmp_path)


class Snapshot(BaseCallback):
    """Copies the model's weights when training starts (before the first step)."""

    def __init__(self) -> None:
        self.state: dict[str, torch.Tensor] = {}

    def on_train_start(self, state: TrainState) -> None:
        self.state = {k: v.detach().clone() for k, v in state.model.state_dict().items()}


def test_finetune_starts_from_the_inherited_weights(space: BlocksSpace, tiny_data: Dataset) -> None:
    net = fresh(space)
    train_supernet(net, tiny_data, RECIPE, seed=0)
    genome = net.smallest()
    snap = Snapshot()
    model, fitted = finetune(net, genome, tiny_data, Recipe(epochs=1, batch_size=24), seed=0, callbacks=[snap])
    inherited = net.sliced_state(genome)
    assert inherited.keys() <= snap.state.keys()
    for k, v in inherited.items():
        torch.testing.assert_close(snap.state[k], v, rtol=0, atol=0, msg=k)
    assert any(not torch.equal(t, inherited[k]) for k, t in model.state_dict().items() if k in inherited)
    assert len(fitted.history) == 1 and not model.training
