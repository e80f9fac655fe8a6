"""Training a supernet with the sandwich rule, through the one training loop; fine-tuning an extracted winner.

:class:`SandwichStep` is a :class:`~tinyevo.training.Step`: on each batch it runs the largest sub-network with the
labels, then the smallest and ``random_subnets`` random sub-networks of the space (default 4, which ranked
architectures better than the usual 2 in ``benchmarks/supernet_rank.py``), each distilled in place from the
largest one's (detached) predictions (BigNAS / Once-for-All's in-place distillation); the gradients of all of them
accumulate into the one optimiser step the loop takes. The random sub-networks of step ``t`` come from a
generator seeded with ``(seed, t)``, ``t`` being the loop's optimiser step count (the step reads it from the
:class:`~tinyevo.training.TrainState`, so it is also a callback of the loop): a training resumed from a
:class:`~tinyevo.training.Checkpoint` samples the same sub-networks it would have sampled without the
interruption. :func:`train_supernet` wires the step, its callback and the checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tinyevo.data import Dataset
from tinyevo.errors import ConfigError
from tinyevo.nn import IRModule
from tinyevo.spaces.blocks import BlocksGenome
from tinyevo.supernet.model import Genome, Supernet
from tinyevo.training import (
    BaseCallback,
    Callback,
    Checkpoint,
    Evaluate,
    Fitted,
    Recipe,
    TrainState,
    torch_threads,
    train,
)
from tinyevo.training.evaluate import accuracy
from tinyevo.training.train_ir import fit_data_to_ir


class SandwichStep(BaseCallback):
    """The sandwich rule with in-place distillation (see the module docstring). Pass it to
    :func:`tinyevo.training.train` both as ``step`` and among the ``callbacks`` (:func:`train_supernet` does)."""

    order = 5  # only reads the state (the step count), lazily, at each call
    key = ""

    def __init__(self, supernet: Supernet, *, random_subnets: int = 4, seed: int = 0,
                 label_smoothing: float = 0.0) -> None:
        if random_subnets < 0:
            raise ConfigError(f"random_subnets must be >= 0, got {random_subnets}")
        self.space = supernet.space
        self.random_subnets, self.seed, self.label_smoothing = int(random_subnets), int(seed), label_smoothing
        self.largest, self.smallest = supernet.largest(), supernet.smallest()
        self._state: TrainState | None = None

    # --- the callback part: where the loop is ----------------------------------------------------------------
    def on_train_start(self, state: TrainState) -> None:
        self._state = state

    def on_train_end(self, state: TrainState) -> None:
        self._state = None

    def genomes(self, step: int) -> list[BlocksGenome]:
        """The sub-networks of optimiser step ``step``: largest, smallest, then the random ones."""
        rng = np.random.default_rng([self.seed, step])
        return [self.largest, self.smallest, *(self.space.sample(rng) for _ in range(self.random_subnets))]

    # --- the step part ---------------------------------------------------------------------------------------
    def __call__(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self._state is None:
            raise ConfigError("a SandwichStep must also be one of the loop's callbacks (train_supernet wires it)")
        if not isinstance(model, Supernet):
            raise ConfigError(f"the sandwich rule trains a Supernet, not {type(model).__name__}")
        teacher, *students = self.genomes(self._state.step)
        logits = model(inputs, teacher)
        loss = F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)
        loss.backward()
        soft = F.softmax(logits.detach(), dim=1)
        for genome in students:
            kd = -(soft * F.log_softmax(model(inputs, genome), dim=1)).sum(dim=1).mean()
            kd.backward()
        return loss.detach()

    def prepare(self, model: nn.Module, device: torch.device, input_shape: Sequence[int]) -> None:
        if not isinstance(model, Supernet):
            raise ConfigError(f"the sandwich rule trains a Supernet, not {type(model).__name__}")
        if input_shape[0] != model.space.input_shape[0]:
            raise ConfigError(f"the supernet reads {model.space.input_shape[0]} input channel(s), the data "
                              f"{input_shape[0]}")

    def modules(self) -> Sequence[nn.Module]:
        return ()

    def signature(self) -> dict[str, object]:
        return {"step": "sandwich", "random_subnets": self.random_subnets, "seed": self.seed,
                "label_smoothing": self.label_smoothing, "largest": str(self.largest),
                "smallest": str(self.smallest)}


def largest_accuracy(supernet: Supernet, batch_size: int = 1024) -> Evaluate:
    """An ``evaluate`` function for the loop: validation accuracy of the largest sub-network."""
    big = supernet.largest()

    def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        assert isinstance(model, Supernet)
        return accuracy(_Bound(model, big), x, y, batch_size=batch_size)

    return evaluate


class _Bound(nn.Module):
    """A supernet with one genome bound (for code that calls ``model(x)``); holds no state of its own."""

    def __init__(self, supernet: Supernet, genome: Genome) -> None:
        super().__init__()
        self.supernet, self.genome = supernet, supernet.genome(genome)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.supernet(x, self.genome)


def train_supernet(
    supernet: Supernet, data: Dataset, recipe: Recipe, *, seed: int, random_subnets: int = 4,
    checkpoint: str | Path | None = None, checkpoint_every_s: float = 60.0, callbacks: Sequence[Callback] = (),
) -> Fitted:
    """Train ``supernet`` in place on ``data`` with the sandwich rule through :func:`tinyevo.training.train`
    (deterministic given ``seed``; ``recipe.threads`` torch threads). ``checkpoint``: a file the training is saved to at epoch ends (at most every
    ``checkpoint_every_s`` seconds) and resumed from when it exists (a killed training goes on from there). The
    learning curve's ``val_acc`` is the largest sub-network's, with the running BatchNorm statistics (a blend of
    all sub-networks': scores after recalibration are higher)."""
    step = SandwichStep(supernet, random_subnets=random_subnets, seed=seed)
    cbs: list[Callback] = [step, *callbacks]
    if checkpoint is not None:
        cbs.append(Checkpoint(checkpoint, every_s=checkpoint_every_s, tag="supernet"))
    with torch_threads(recipe.threads):
        return train(supernet, data, recipe, seed=seed, step=step, callbacks=cbs,
                     evaluate=largest_accuracy(supernet, recipe.eval_batch_size))


def finetune(
    supernet: Supernet, genome: Genome, data: Dataset, recipe: Recipe, *, seed: int,
    callbacks: Sequence[Callback] = (),
) -> tuple[IRModule, Fitted]:
    """Extract sub-network ``genome`` (its own weights, inherited from the supernet) and train it further on
    ``data`` (resampled to the genome's resolution) through the loop; returns the module (in eval mode) and its
    learning curve. The module is the builder's module of ``space.decode(genome)``, so it goes on through the
    final evaluation, int8 quantisation and export like any trained candidate."""
    g = supernet.genome(genome)
    model = supernet.extract(g)
    with torch_threads(recipe.threads):
        fitted = train(model, fit_data_to_ir(model.ir, data), recipe, seed=seed, callbacks=callbacks)
    return model, fitted
