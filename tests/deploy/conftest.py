"""Shared fixtures of the deployment tests: a small network trained on the built-in digits data, and a run."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tinyevo.data import Dataset, load_dataset
from tinyevo.ir import ArchIR
from tinyevo.run.config import DataConfig, FinalConfig, LimitsConfig, RunConfig, SpaceConfig
from tinyevo.spaces import create_space
from tinyevo.storage import DB_NAME, RetrainedModel, SQLiteStorage, TrialRecord, new_meta
from tinyevo.strategies.base import Status, Trial

GENOME = "conv_k3_s1_c16-dsc_k3_s2_c24_r-gap"


@dataclass(frozen=True)
class Trained:
    data: Dataset
    ir: ArchIR
    state: dict[str, torch.Tensor]
    float_test_acc: float


@pytest.fixture(scope="session")
def digits() -> Dataset:
    return load_dataset("digits")


def train_chain(digits: Dataset, genome: str, *, epochs: int) -> Trained:
    """A ``chain`` genome trained on ``digits`` (seed 0, batch 32, one thread)."""
    from tinyevo.training import TrainConfig, train_model

    space = create_space("chain", input_shape=digits.input_shape, num_classes=digits.num_classes)
    ir = space.decode(space.parse(genome))
    result = train_model(ir, digits, config=TrainConfig(epochs=epochs, batch_size=32, threads=1), seed=0)
    state = {k: v.detach().clone() for k, v in result.model.state_dict().items()}
    return Trained(digits, ir, state, float(result.metrics["test_acc"]))


@pytest.fixture(scope="session")
def trained(digits: Dataset) -> Trained:
    return train_chain(digits, GENOME, epochs=12)


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory, trained: Trained) -> Path:
    """A stored run: trial 0 retrained, 1 failed, 2 infeasible, 3 evaluated but not retrained."""
    root = tmp_path_factory.mktemp("run")
    cfg = RunConfig(data=DataConfig(spec="digits"), space=SpaceConfig(name="chain"),
                    limits=LimitsConfig(device=None), final=FinalConfig(enabled=True), seed=0)
    with SQLiteStorage(root / DB_NAME) as s:
        s.create(new_meta(cfg.seed, cfg.to_json()))
        trials = [
            Trial(0, GENOME, Status.OK, {"val_acc": 0.9}),
            Trial(1, "conv_k3_s1_c8-gap", Status.FAILED, error="RuntimeError: boom"),
            Trial(2, "conv_k5_s1_c64-gap", Status.INFEASIBLE, {"peak_sram_bytes": 1e9}, violation=2.5),
            Trial(3, "conv_k3_s1_c4-gap", Status.OK, {"val_acc": 0.5}),
        ]
        for t in trials:
            s.add(TrialRecord(t, finished_at=time.time()))
        weights = root / "final" / "trial-0000" / "model.pt"
        weights.parent.mkdir(parents=True)
        torch.save(trained.state, weights)
        s.add_final(RetrainedModel(0, GENOME, {"test_acc": trained.float_test_acc}, "final/trial-0000/model.pt"))
    return root
