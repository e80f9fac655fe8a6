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

:class:`Shrinking` adds Once-for-All's progressive shrinking to the rule: each group of genes (kernel, depth,
expansion, width, resolution) becomes elastic at its own fraction of the optimiser steps; before that, every
sampled sub-network (the smallest included) takes the largest one's value of those genes, so training starts with
the largest network alone and the space opens up group by group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tinyevo.data import Dataset
from tinyevo.errors import ConfigError
from tinyevo.nn import IRModule
from tinyevo.spaces.blocks import BlocksGenome, Stage
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

#: The gene groups progressive shrinking opens one after another (``width``: the width multiplier, the stage
#: channels and the block type).
GENE_GROUPS: tuple[str, ...] = ("resolution", "kernel", "depth", "expand", "width")


@dataclass(frozen=True)
class Shrinking:
    """Progressive shrinking: ``starts`` maps a gene group (:data:`GENE_GROUPS`) to the fraction of the optimiser
    steps from which on it is elastic; a group not named is elastic from the start. The default opens kernel,
    depth, then expansion and width at 20 / 40 / 60 % of the training (the largest network alone before 20 %),
    Once-for-All's order compressed into one schedule."""

    starts: tuple[tuple[str, float], ...] = (("kernel", 0.2), ("depth", 0.4), ("expand", 0.6), ("width", 0.6))

    def __post_init__(self) -> None:
        for group, at in self.starts:
            if group not in GENE_GROUPS:
                raise ConfigError(f"unknown gene group {group!r}; expected one of {', '.join(GENE_GROUPS)}")
            if not 0.0 <= at < 1.0:
                raise ConfigError(f"gene group {group!r} must become elastic at a fraction in [0, 1), got {at}")

    def fixed(self, progress: float) -> frozenset[str]:
        """The gene groups not yet elastic at ``progress`` (fraction of the optimiser steps taken)."""
        return frozenset(g for g, at in self.starts if progress < at)

    def apply(self, genome: BlocksGenome, largest: BlocksGenome, progress: float, *, expand: int) -> BlocksGenome:
        """``genome`` with the largest sub-network's value of every gene group not elastic at ``progress``
        (``expand``: the expansion ratio of an MBConv stage whose expansion is fixed, the space's largest)."""
        fixed = self.fixed(progress)
        if not fixed:
            return genome
        stages = []
        for st, big in zip(genome.stages, largest.stages, strict=True):
            block, channels = (big.block, big.channels) if "width" in fixed else (st.block, st.channels)
            e = None
            if block == "mb":
                e = expand if "expand" in fixed or st.block != "mb" else st.expand
            stages.append(Stage(block, big.depth if "depth" in fixed else st.depth, channels,
                                big.kernel if "kernel" in fixed else st.kernel, e))
        return replace(genome, resolution=largest.resolution if "resolution" in fixed else genome.resolution,
                       width=largest.width if "width" in fixed else genome.width, stages=tuple(stages))


class SandwichStep(BaseCallback):
    """The sandwich rule with in-place distillation (see the module docstring). Pass it to
    :func:`tinyevo.training.train` both as ``step`` and among the ``callbacks`` (:func:`train_supernet` does)."""

    order = 5  # only reads the state (the step count), lazily, at each call
    key = ""

    def __init__(self, supernet: Supernet, *, random_subnets: int = 4, seed: int = 0,
                 label_smoothing: float = 0.0, shrinking: Shrinking | None = None) -> None:
        if random_subnets < 0:
            raise ConfigError(f"random_subnets must be >= 0, got {random_subnets}")
        self.space = supernet.space
        self.random_subnets, self.seed, self.label_smoothing = int(random_subnets), int(seed), label_smoothing
        self.shrinking = shrinking
        self.largest, self.smallest = supernet.largest(), supernet.smallest()
        self._state: TrainState | None = None

    # --- the callback part: where the loop is ----------------------------------------------------------------
    def on_train_start(self, state: TrainState) -> None:
        self._state = state

    def on_train_end(self, state: TrainState) -> None:
        self._state = None

    def genomes(self, step: int, progress: float = 1.0) -> list[BlocksGenome]:
        """The sub-networks of optimiser step ``step``: largest, smallest, then the random ones; with
        progressive shrinking, restricted to the genes elastic at ``progress`` (fraction of the steps taken), and
        without those that are then the largest network again (they would distil from themselves)."""
        rng = np.random.default_rng([self.seed, step])
        out = [self.largest, self.smallest, *(self.space.sample(rng) for _ in range(self.random_subnets))]
        if self.shrinking is None:
            return out
        e_max = max(self.space.expands)
        out = [self.shrinking.apply(g, self.largest, progress, expand=e_max) for g in out]
        return [self.largest, *(g for g in out[1:] if g != self.largest)]

    # --- the step part ---------------------------------------------------------------------------------------
    def __call__(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self._state is None:
            raise ConfigError("a SandwichStep must also be one of the loop's callbacks (train_supernet wires it)")
        if not isinstance(model, Supernet):
            raise ConfigError(f"the sandwich rule trains a Supernet, not {type(model).__name__}")
        st = self._state
        teacher, *students = self.genomes(st.step, st.step / max(1, st.total_steps))
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
        sig: dict[str, object] = {"step": "sandwich", "random_subnets": self.random_subnets, "seed": self.seed,
                                  "label_smoothing": self.label_smoothing, "largest": str(self.largest),
                                  "smallest": str(self.smallest)}
        if self.shrinking is not None:
            sig["shrinking"] = [list(s) for s in self.shrinking.starts]
        return sig


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
    shrinking: Shrinking | None = None,
) -> Fitted:
    """Train ``supernet`` in place on ``data`` with the sandwich rule through :func:`tinyevo.training.train`
    (deterministic given ``seed``; ``recipe.threads`` torch threads). ``checkpoint``: a file the training is saved to at epoch ends (at most every
    ``checkpoint_every_s`` seconds) and resumed from when it exists (a killed training goes on from there). The
    learning curve's ``val_acc`` is the largest sub-network's, with the running BatchNorm statistics (a blend of
    all sub-networks': scores after recalibration are higher). ``shrinking``: progressive shrinking's schedule
    (:class:`Shrinking`; None: every gene elastic from the first step)."""
    step = SandwichStep(supernet, random_subnets=random_subnets, seed=seed, shrinking=shrinking)
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
