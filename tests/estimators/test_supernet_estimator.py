"""The supernet estimator: scores from a saved supernet directory, equal to the scorer's, picklable."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from tinyevo.data import Dataset, from_arrays
from tinyevo.errors import ConfigError
from tinyevo.estimators.base import EvalContext
from tinyevo.estimators.supernet import SupernetEstimator
from tinyevo.spaces import create_space
from tinyevo.spaces.blocks import BlocksSpace
from tinyevo.supernet import Supernet
from tinyevo.supernet.score import ScoreConfig, SupernetScorer
from tinyevo.supernet.store import save_supernet

OPTIONS = {"input_shape": (1, 12, 12), "num_classes": 3, "resolutions": (8, 12), "width_multipliers": (0.5, 1.0),
           "block_types": ("mb", "conv"), "depths": (1, 2), "kernels": (3, 5), "expands": (1, 3),
           "stage_strides": (1, 2), "stage_channels": ((8, 16), (16, 24)), "stem_channels": 8}


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, BlocksSpace, Dataset]:
    space = create_space("blocks", **OPTIONS)
    assert isinstance(space, BlocksSpace)
    torch.manual_seed(0)
    net = Supernet(space)
    net.train()
    with torch.no_grad():  # non-trivial running statistics
        for s in range(3):
            net(torch.randn(8, 1, 12, 12), space.sample(np.random.default_rng(s)))
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    x = (rng.normal(size=(90, 1, 12, 12)) + y[:, None, None, None]).astype(np.float32)
    data = from_arrays(x, y, name="toy", seed=0, val_fraction=0.3, test_fraction=0.2, num_classes=3)
    return save_supernet(tmp_path / "sn", net.eval()), space, data


def test_scores_equal_the_scorer_and_survive_pickling(saved: tuple[Path, BlocksSpace, Dataset]) -> None:
    directory, space, data = saved
    cfg = ScoreConfig(calibration_rows=20, batch_size=16)
    est = SupernetEstimator(directory, config=cfg)
    genomes = [space.sample(np.random.default_rng(s)) for s in range(4)]
    got = [est.evaluate(space.decode(g), data, seed=0, context=EvalContext(genome=str(g)))["val_acc"]
           for g in genomes]
    scorer = SupernetScorer(est.supernet, data, config=cfg)
    assert got == [scorer.score(g) for g in genomes]
    clone = pickle.loads(pickle.dumps(est))
    assert clone._net is None  # the worker loads it itself
    assert clone.evaluate(space.decode(genomes[0]), data, seed=1,
                          context=EvalContext(genome=str(genomes[0])))["val_acc"] == got[0]
    assert est.metric_names == frozenset({"val_acc"})


def test_refuses_what_it_cannot_score(saved: tuple[Path, BlocksSpace, Dataset], tmp_path: Path) -> None:
    directory, space, data = saved
    est = SupernetEstimator(directory)
    g = space.sample(np.random.default_rng(0))
    with pytest.raises(ConfigError, match="genome"):
        est.evaluate(space.decode(g), data, seed=0)
    with pytest.raises(ConfigError, match="not a genome"):
        est.evaluate(space.decode(g), data, seed=0, context=EvalContext(genome="r8_w0.5-mb_d9_k3_e1_c8"))
    other = space.sample(np.random.default_rng(5))
    assert str(other) != str(g)
    with pytest.raises(ConfigError, match="another network"):
        est.evaluate(space.decode(other), data, seed=0, context=EvalContext(genome=str(g)))
    with pytest.raises(ConfigError, match="supernet"):
        SupernetEstimator(tmp_path / "nothing")
