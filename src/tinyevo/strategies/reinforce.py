"""Reinforcement-learning search (``reinforce``): a policy over the genes trained with REINFORCE.

Zoph & Le (2017) and MnasNet (Tan et al., 2019) train a controller that samples architectures; the reward of a
sampled architecture (its accuracy, or MnasNet's ``ACC * (LAT / T) ** w``) pushes the controller towards the
choices that earned it. Here the controller is one independent categorical distribution per gene (softmax over
logits), the policy the NAS-Bench-201 paper benchmarks as "REINFORCE"; it works on every fixed-structure space
through a :class:`GeneCodec` (``nb201``: 6 edges x 5 ops, ``macro``: 8 layers x 3 choices, ``blocks``:
resolution, width and 5 genes per stage).

**Update.** Told trials are collected in batches of ``batch_size`` (in the order they are told). For each batch,
the advantage of trial ``i`` is ``A_i = (r_i - b) / s``, where ``b`` is an exponential moving average of past
batch-mean rewards (the baseline, decay ``baseline_decay``) and ``s`` a moving average of the rewards' spread
around it, so that the step size does not depend on the reward's units (percent or fraction). The policy takes
one Adam ascent step (``lr``) on ``mean_i A_i log p(a_i) + entropy * H(p)``; the entropy bonus works against
collapsing on the first good genome. A gene that does not matter for a genome (the expansion ratio of a
non-MBConv ``blocks`` stage) takes no part in its log-probability.

The defaults (``lr=0.3``, ``batch_size=1``, Adam betas ``(0.5, 0.9)``, ``entropy=0.01``,
``baseline_decay=0.9``) were chosen on NAS-Bench-201 at 100 queries (seeds 0..99) among a handful of settings
(``benchmarks/results/rl_reinforce_tuning.json``, ``docs/reinforce.md``): a high learning rate with one trial
per update and short Adam memories matter most (betas ``(0.9, 0.999)``: 91.32 mean best valid accuracy vs 91.46).

**Reward.** The reward of an evaluated trial is :func:`~tinyevo.strategies.base.fitness`: the first objective's
score (with its MnasNet soft targets, if any) minus the soft-constraint penalty. Infeasible and failed trials
have no score; they get a reward below everything seen: the lowest evaluated reward so far (0 before any) minus
one spread ``s``, and an infeasible trial a further ``s * min(violation, 1)``, so that the policy learns to avoid
them and, among infeasible genomes, prefers the nearly feasible ones.

**Never re-ask.** A sampled genome that was already asked is drawn again (up to ``max_retries`` times, without a
policy update), then a uniform random sample is taken (origin ``random``), as every strategy does; if the space
is exhausted, :class:`~tinyevo.errors.SearchExhaustedError` ends the search. Genomes the strategy did not propose
(a warm start) are encoded and learnt from like its own.

**Determinism and resume.** All random numbers come from one ``numpy`` Generator seeded with ``seed``; the state
after a sequence of asks and tells depends on nothing else, so :func:`~tinyevo.strategies.base.replay` rebuilds
it. With several evaluations in flight, a trial is learnt from with the policy of the moment it is told (the
usual asynchronous approximation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tinyevo.errors import ConfigError, InvalidGenomeError
from tinyevo.spaces.base import Genome, SearchSpace
from tinyevo.spaces.blocks import BlocksGenome, BlocksSpace, Stage
from tinyevo.spaces.macro import MacroGenome, MacroSpace
from tinyevo.spaces.nb201 import EDGES, OPS, NB201Genome, NB201Space
from tinyevo.strategies.base import STRATEGIES, Candidate, Problem, Status, Trial, fitness
from tinyevo.strategies.operators import Deduplicator
from tinyevo.strategies.settings import StrategySettings, check_settings, register_settings

__all__ = ["GeneCodec", "Reinforce", "gene_codec"]


# --- genes ----------------------------------------------------------------------------------------------------
@runtime_checkable
class GeneCodec(Protocol):
    """A fixed-structure space as a vector of categorical genes."""

    sizes: tuple[int, ...]
    """Number of choices of each gene."""

    def decode(self, index: Sequence[int]) -> Genome:
        """The genome with choice ``index[g]`` for gene ``g``."""
        ...

    def encode(self, genome: Genome) -> tuple[tuple[int, ...], tuple[bool, ...]]:
        """The choice of each gene and whether the gene matters for this genome."""
        ...


@dataclass(frozen=True)
class NB201Codec:
    """One gene per cell edge, one choice per operation (:data:`~tinyevo.spaces.nb201.OPS` order)."""

    sizes: tuple[int, ...] = (len(OPS),) * len(EDGES)

    def decode(self, index: Sequence[int]) -> NB201Genome:
        return NB201Genome(tuple(OPS[int(i)] for i in index))

    def encode(self, genome: Genome) -> tuple[tuple[int, ...], tuple[bool, ...]]:
        if not isinstance(genome, NB201Genome):
            raise InvalidGenomeError(f"not an nb201 genome: {genome}")
        return tuple(OPS.index(op) for op in genome.ops), (True,) * len(EDGES)


@dataclass(frozen=True)
class MacroCodec:
    """One gene per searchable layer, choices 0, 1, 2."""

    sizes: tuple[int, ...]

    def decode(self, index: Sequence[int]) -> MacroGenome:
        return MacroGenome(tuple(int(i) for i in index))

    def encode(self, genome: Genome) -> tuple[tuple[int, ...], tuple[bool, ...]]:
        if not isinstance(genome, MacroGenome) or len(genome.layers) != len(self.sizes):
            raise InvalidGenomeError(f"not a genome of this macro space: {genome}")
        return tuple(genome.layers), (True,) * len(self.sizes)


class BlocksCodec:
    """Resolution, width, then per stage: block type, depth, kernel, channels, expansion (used by ``mb`` only)."""

    def __init__(self, space: BlocksSpace) -> None:
        self.space = space
        self._stage_genes: list[tuple[tuple[Any, ...], ...]] = [
            (space.block_types, space.depths, space.kernels, space.stage_channels[i], space.expands)
            for i in range(space.num_stages)
        ]
        self.sizes = (len(space.resolutions), len(space.width_multipliers),
                      *(len(c) for genes in self._stage_genes for c in genes))

    def decode(self, index: Sequence[int]) -> BlocksGenome:
        sp = self.space
        stages = []
        for i, genes in enumerate(self._stage_genes):
            b, d, k, c, e = (genes[j][int(index[2 + 5 * i + j])] for j in range(5))
            stages.append(Stage(b, int(d), int(c), int(k), int(e) if b == "mb" else None))
        return BlocksGenome(int(sp.resolutions[int(index[0])]), float(sp.width_multipliers[int(index[1])]),
                            tuple(stages))

    def encode(self, genome: Genome) -> tuple[tuple[int, ...], tuple[bool, ...]]:
        if not isinstance(genome, BlocksGenome):
            raise InvalidGenomeError(f"not a blocks genome: {genome}")
        sp = self.space
        sp.validate(genome)
        index = [sp.resolutions.index(genome.resolution), sp.width_multipliers.index(genome.width)]
        active = [True, True]
        for st, genes in zip(genome.stages, self._stage_genes, strict=True):
            index += [genes[0].index(st.block), genes[1].index(st.depth), genes[2].index(st.kernel),
                      genes[3].index(st.channels), genes[4].index(st.expand) if st.expand is not None else 0]
            active += [True, True, True, True, st.block == "mb"]
        return tuple(index), tuple(active)


def gene_codec(space: SearchSpace) -> GeneCodec:
    """The categorical genes of ``space``: its own ``gene_codec()`` if it has one, else the built-in codec of
    ``nb201``, ``macro`` or ``blocks``; :class:`ConfigError` for a space without a fixed structure."""
    hook = getattr(space, "gene_codec", None)
    if callable(hook):
        return hook()  # type: ignore[no-any-return]
    if isinstance(space, NB201Space):
        return NB201Codec()
    if isinstance(space, MacroSpace):
        return MacroCodec((len(space.choices),) * space.num_layers)
    if isinstance(space, BlocksSpace):
        return BlocksCodec(space)
    raise ConfigError(
        f"the reinforce strategy needs a fixed-structure space (nb201, macro, blocks), not {space.name!r}: "
        "its controller has one categorical distribution per gene"
    )


# --- the strategy ---------------------------------------------------------------------------------------------
ADAM_BETAS = (0.5, 0.9)
"""The default Adam betas of the policy (short memories: see the module text)."""


class Reinforce:
    """Ask / tell REINFORCE over independent categorical genes (see module docstring)."""

    def __init__(
        self,
        space: SearchSpace,
        problem: Problem,
        *,
        lr: float = 0.3,
        batch_size: int = 1,
        baseline_decay: float = 0.9,
        entropy: float = 0.01,
        adam_betas: tuple[float, float] = ADAM_BETAS,
        max_retries: int = 100,
        seed: int = 0,
    ) -> None:
        if not lr > 0 or not math.isfinite(lr):
            raise ConfigError(f"lr must be a positive number, got {lr}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if not 0.0 <= baseline_decay < 1.0:
            raise ConfigError(f"baseline_decay must be in [0, 1), got {baseline_decay}")
        if entropy < 0:
            raise ConfigError(f"entropy must be >= 0, got {entropy}")
        if len(adam_betas) != 2 or not all(0.0 <= b < 1.0 for b in adam_betas):
            raise ConfigError(f"adam_betas must be two numbers in [0, 1), got {adam_betas}")
        self.space = space
        self.problem = problem
        self.codec = gene_codec(space)
        self.lr = lr
        self.batch_size = batch_size
        self.baseline_decay = baseline_decay
        self.entropy = entropy
        self.adam_betas = adam_betas
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.seen = Deduplicator(max_retries=max_retries)
        sizes = self.codec.sizes
        self._offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.logits = np.zeros(int(self._offsets[-1]), dtype=np.float64)
        self._m = np.zeros_like(self.logits)  # Adam moments
        self._v = np.zeros_like(self.logits)
        self.updates = 0
        self.baseline: float | None = None
        self.spread: float | None = None
        self._worst: float | None = None  # lowest reward of an evaluated trial
        self._batch: list[tuple[tuple[int, ...], tuple[bool, ...], float]] = []

    # --- policy -----------------------------------------------------------------------------------------------
    def probabilities(self) -> list[np.ndarray]:
        """The controller's current distribution over the choices of each gene."""
        return [_softmax(self.logits[a:b]) for a, b in zip(self._offsets[:-1], self._offsets[1:], strict=True)]

    def _samples(self, n: int) -> np.ndarray:
        """``n`` choice vectors drawn from the policy (one row each; inverse CDF of one uniform per gene)."""
        u = self.rng.random((n, len(self.codec.sizes)))
        out = np.empty(u.shape, dtype=np.int64)
        for g, p in enumerate(self.probabilities()):
            out[:, g] = np.minimum(np.searchsorted(np.cumsum(p), u[:, g], side="right"), len(p) - 1)
        return out

    # --- ask / tell -------------------------------------------------------------------------------------------
    def ask(self) -> Candidate:
        left = self.seen.max_retries
        while left > 0:  # draws in blocks of 8 (the policy does not change within an ask)
            block = self._samples(min(8, left))
            left -= len(block)
            for row in block:
                genome = self.codec.decode(row)
                if self.seen.claim(genome):
                    return Candidate(genome=genome, generation=self.updates, origin="reinforce")
        cand = self.seen.propose(None, space=self.space, rng=self.rng, generation=self.updates)
        return replace(cand, generation=self.updates)

    def tell(self, candidate: Candidate, trial: Trial) -> None:
        self.seen.add(candidate.genome)
        try:
            index, active = self.codec.encode(candidate.genome)
        except InvalidGenomeError as exc:
            raise ConfigError(f"reinforce was told a genome outside its space: {exc}") from None
        self._batch.append((index, active, self._reward(trial)))
        if len(self._batch) >= self.batch_size:
            self._update()

    # --- internals --------------------------------------------------------------------------------------------
    def _reward(self, trial: Trial) -> float:
        """The reward of ``trial`` (module docstring): fitness if evaluated, else below the worst so far."""
        r = fitness(self.problem, trial) if trial.status is Status.OK else -math.inf
        if math.isfinite(r):
            self._worst = r if self._worst is None else min(self._worst, r)
            return r
        spread = self.spread if self.spread else 1.0
        floor = (self._worst if self._worst is not None else 0.0) - spread
        if trial.status is Status.INFEASIBLE:
            floor -= spread * min(float(trial.violation), 1.0) if math.isfinite(trial.violation) else spread
        return floor

    def _update(self) -> None:
        batch, self._batch = self._batch, []
        rewards = np.array([r for _, _, r in batch], dtype=np.float64)
        if self.baseline is None or self.spread is None:  # first batch: its own statistics
            self.baseline = float(rewards.mean())
            self.spread = float(rewards.std()) or 1.0
        adv = (rewards - self.baseline) / max(self.spread, 1e-12)
        probs = self.probabilities()
        grad = np.zeros_like(self.logits)
        for (index, active, _), a in zip(batch, adv, strict=True):
            for g, (choice, on) in enumerate(zip(index, active, strict=True)):
                if on:
                    lo = self._offsets[g]
                    grad[lo:self._offsets[g + 1]] -= a * probs[g]
                    grad[lo + choice] += a
        grad /= len(batch)
        if self.entropy:
            for g, p in enumerate(probs):  # dH/dlogit_j = -p_j (log p_j + H)
                logp = np.log(np.maximum(p, 1e-300))
                h = -float(np.sum(p * logp))
                grad[self._offsets[g]:self._offsets[g + 1]] += self.entropy * (-p * (logp + h))
        self._adam(grad)
        d = self.baseline_decay
        dev = float(np.sqrt(np.mean((rewards - self.baseline) ** 2)))  # spread around the baseline used
        if dev > 0:
            self.spread = d * self.spread + (1 - d) * dev
        self.baseline = d * self.baseline + (1 - d) * float(rewards.mean())
        self.updates += 1

    def _adam(self, grad: np.ndarray) -> None:
        b1, b2 = self.adam_betas
        t = self.updates + 1
        self._m = b1 * self._m + (1 - b1) * grad
        self._v = b2 * self._v + (1 - b2) * grad * grad
        m_hat = self._m / (1 - b1**t)
        v_hat = self._v / (1 - b2**t)
        self.logits = self.logits + self.lr * m_hat / (np.sqrt(v_hat) + 1e-8)  # ascent


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


@STRATEGIES.register("reinforce", help="REINFORCE controller (per-gene categoricals, EMA baseline, entropy bonus)")
def reinforce(space: SearchSpace, problem: Problem, *, seed: int,
              settings: StrategySettings = StrategySettings()) -> Reinforce:
    """:class:`Reinforce` with its defaults, and the given ``settings`` (``[strategy_options]``) over them."""
    check_settings("reinforce", settings)
    given = settings.as_dict()
    b1, b2 = given.pop("adam_beta1", ADAM_BETAS[0]), given.pop("adam_beta2", ADAM_BETAS[1])
    return Reinforce(space, problem, seed=seed, adam_betas=(float(b1), float(b2)), **given)  # type: ignore[arg-type]


register_settings("reinforce", ("lr", "batch_size", "baseline_decay", "entropy", "adam_beta1", "adam_beta2"))

