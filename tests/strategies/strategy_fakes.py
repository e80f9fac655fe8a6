"""Test helpers for strategy tests: a tiny fake space, a synthetic nb201 evaluator, hand-made populations."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyevo.errors import InvalidGenomeError
from tinyevo.strategies.base import Status, Trial
from tinyevo.strategies.selection import Individual


@dataclass(frozen=True)
class TinyGenome:
    value: int

    def __str__(self) -> str:
        return f"t{self.value}"


class TinySpace:
    """A space of ``size`` genomes ``t0 .. t{size-1}``; enough to exhaust in a test."""

    name = "tiny"

    def __init__(self, size: int = 4) -> None:
        self.size = size

    def sample(self, rng: np.random.Generator) -> TinyGenome:
        return TinyGenome(int(rng.integers(self.size)))

    def trivial(self) -> TinyGenome:
        return TinyGenome(0)

    def mutate(self, genome: TinyGenome, rng: np.random.Generator) -> TinyGenome:
        return TinyGenome((genome.value + 1 + int(rng.integers(self.size - 1))) % self.size)

    def crossover(self, a: TinyGenome, b: TinyGenome, rng: np.random.Generator) -> TinyGenome:
        return a if rng.random() < 0.5 else b

    def decode(self, genome: TinyGenome):  # pragma: no cover - strategies never decode
        raise NotImplementedError

    def parse(self, text: str) -> TinyGenome:
        if not text.startswith("t") or not text[1:].isdigit() or int(text[1:]) >= self.size:
            raise InvalidGenomeError(f"bad tiny genome {text!r}")
        return TinyGenome(int(text[1:]))

    def features(self, genome: TinyGenome) -> np.ndarray:
        return np.eye(self.size)[genome.value]


def conv_count(genome) -> dict[str, float]:
    """Synthetic evaluator on nb201: number of conv edges (more is better) and pools (fewer is better)."""
    return {
        "convs": float(sum("conv" in op for op in genome.ops)),
        "pools": float(sum("pool" in op for op in genome.ops)),
    }


def ok_trial(number: int, acc: float, genome: str | None = None, **metrics: float) -> Trial:
    metrics = {"acc": acc, **metrics}
    return Trial(number=number, genome=genome or f"g{number}", status=Status.OK, metrics=metrics)


def make_population(values, *, statuses=None, violations=None) -> list[Individual]:
    """Individuals ``g0, g1, ...`` (births 0, 1, ...) with metric ``acc`` = ``values[i]``."""
    out = []
    for i, v in enumerate(values):
        status = Status.OK if statuses is None else statuses[i]
        viol = 0.0 if violations is None else violations[i]
        t = Trial(number=i, genome=f"g{i}", status=status, metrics={"acc": float(v)}, violation=viol)
        out.append(Individual(genome=f"g{i}", trial=t, birth=i))
    return out
