"""Differentiable NAS (DARTS, first order; MicroNets' DNAS with resource regularisers; see docs/dnas.md).

A space is seen as a list of :class:`Decision` s (the choices of each searchable gene: the operation of each
NB201 cell edge; the resolution, width and per-stage block type / depth / channels / kernel / expansion of a
``blocks`` genome). :class:`ArchParams` holds one logit vector per decision; their softmax (or a Gumbel-softmax
sample) weighs the choices:

* :class:`MixedNB201` -- a small weight-sharing NB201 network whose cell edges are mixed ops (the weighted sum of
  the five candidate ops, DARTS); with one-hot weights it computes exactly the chosen op.
* :class:`MixedBlocks` -- the elastic :class:`~tinyevo.supernet.Supernet` of a ``blocks`` space: depth is mixed
  exactly (the weighted sum of the stage's outputs after each allowed number of blocks, all computed by one pass
  of the deepest prefix); the other decisions change the network's shapes, so one choice per decision is
  sampled (hard Gumbel-softmax) and the sampled sub-network's outputs are multiplied by the straight-through
  one-hot weights (GDAS, Dong & Yang 2019): forward value 1, gradient into the logits.

:class:`DartsStep` is a :class:`~tinyevo.training.Step` (and callback) for the one training loop: on each training
batch it first updates the architecture logits on a validation batch (first-order DARTS: the validation loss plus
the resource penalty, its own Adam optimiser -- :class:`~tinyevo.training.FusedAdam`, not ``torch.optim``, whose
first step imports ``torch._dynamo``; after ``warmup_epochs`` of weights-only training), then computes the
weights' loss on the training batch with the architecture weights detached (the loop's optimiser steps them).

:class:`ResourcePenalty` is MicroNets' differentiable cost term, built from the exact cost model: for every
decision and choice the metrics of the reference genome with that one decision changed (:class:`CostTables`);
the expected flash / MACs / latency is the reference's plus the probability-weighted changes (exact on every
single-decision change, a first-order expansion elsewhere), and the working memory is a smooth maximum
(log-sum-exp) over the decisions of the expected peak SRAM. Each is a hinge above its target (the run's
``--flash`` / ``--sram`` / ``--latency-ms`` limits). :func:`project_feasible` makes the argmax genome respect the
hard limits with the exact cost model (greedy downgrade).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tinyevo.data import Dataset
from tinyevo.errors import ConfigError, InvalidGenomeError
from tinyevo.spaces.blocks import BlocksGenome, BlocksSpace, Stage, round_channels
from tinyevo.spaces.nb201 import EDGES, OPS, NB201Genome, NB201Space
from tinyevo.supernet.model import Supernet, resize_batch
from tinyevo.training import BaseCallback, FusedAdam, ParamGroup, Recipe, TrainState, torch_threads, train

CostFn = Callable[[object], Mapping[str, float]]
"""``cost(genome) -> metrics`` (the run's cost function: ``flash_bytes``, ``peak_sram_bytes``, ``macs``, ...)."""


# --- decisions ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    """One searchable decision: its name and its choices (values of the gene)."""

    name: str
    choices: tuple[object, ...]


def decisions(space: object) -> tuple[Decision, ...]:
    """The decisions of an ``nb201`` or ``blocks`` space, in a fixed order."""
    if isinstance(space, NB201Space):
        return tuple(Decision(f"edge{to}<-{src}", OPS) for to, src in EDGES)
    if isinstance(space, BlocksSpace):
        out = [Decision("resolution", tuple(space.resolutions)), Decision("width", tuple(space.width_multipliers))]
        for i in range(space.num_stages):
            out += [Decision(f"s{i}.block", tuple(space.block_types)), Decision(f"s{i}.depth", tuple(space.depths)),
                    Decision(f"s{i}.channels", tuple(space.stage_channels[i])),
                    Decision(f"s{i}.kernel", tuple(space.kernels)),
                    Decision(f"s{i}.expand", tuple(space.expands))]
        return tuple(out)
    raise ConfigError(f"dnas searches the 'nb201' and 'blocks' spaces, not {getattr(space, 'name', space)!r}")


def genome_of(space: object, index: Sequence[int]) -> NB201Genome | BlocksGenome:
    """The genome choosing ``index[i]`` for decision ``i``."""
    ds = decisions(space)
    if len(index) != len(ds):
        raise ConfigError(f"{len(ds)} decisions, got {len(index)} choices")
    v = [d.choices[int(i)] for d, i in zip(ds, index, strict=True)]
    if isinstance(space, NB201Space):
        return NB201Genome(tuple(str(o) for o in v))
    assert isinstance(space, BlocksSpace)
    stages = []
    for s in range(space.num_stages):
        block, depth, ch, k, e = v[2 + 5 * s: 7 + 5 * s]
        stages.append(Stage(str(block), int(depth), int(ch), int(k), int(e) if block == "mb" else None))
    return space.validate(BlocksGenome(int(v[0]), float(v[1]), tuple(stages)))


def index_of(space: object, genome: object) -> tuple[int, ...]:
    """The choice indices of ``genome`` (inverse of :func:`genome_of`; an unset expansion is the first)."""
    ds = decisions(space)
    if isinstance(space, NB201Space):
        assert isinstance(genome, NB201Genome)
        return tuple(OPS.index(o) for o in genome.ops)
    assert isinstance(genome, BlocksGenome)
    vals: list[object] = [genome.resolution, genome.width]
    for st in genome.stages:
        vals += [st.block, st.depth, st.channels, st.kernel, st.expand if st.expand is not None else space.expands[0]]
    return tuple(d.choices.index(x) for d, x in zip(ds, vals, strict=True))


# --- architecture parameters --------------------------------------------------------------------------------------
class ArchParams(nn.Module):
    """One logit vector per decision (zeros: uniform). ``weights()``: the softmax, or with ``gumbel`` a
    Gumbel-softmax sample at temperature ``tau`` (``hard``: straight-through one-hot) drawn from ``generator``."""

    def __init__(self, ds: Sequence[Decision]) -> None:
        super().__init__()
        self.decisions = tuple(ds)
        self.logits = nn.ParameterList([nn.Parameter(torch.zeros(len(d.choices))) for d in ds])

    def probs(self) -> list[torch.Tensor]:
        return [F.softmax(a, dim=0) for a in self.logits]

    def weights(self, *, gumbel: bool = False, tau: float = 1.0, hard: bool = False,
                generator: torch.Generator | None = None) -> list[torch.Tensor]:
        if not gumbel:
            return self.probs()
        out = []
        for a in self.logits:
            u = torch.rand(a.shape, generator=generator, device=a.device).clamp_(1e-9, 1 - 1e-9)
            soft = F.softmax((a - torch.log(-torch.log(u))) / tau, dim=0)
            if hard:
                one = torch.zeros_like(soft)
                one[int(soft.argmax())] = 1.0
                soft = one - soft.detach() + soft
            out.append(soft)
        return out

    def argmax(self) -> tuple[int, ...]:
        return tuple(int(a.detach().argmax()) for a in self.logits)


# --- NB201: mixed ops -------------------------------------------------------------------------------------------
class _ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1) -> None:
        super().__init__(nn.ReLU(), nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False),
                         nn.BatchNorm2d(c_out, affine=False))


class MixedEdge(nn.Module):
    """The weighted sum of NB201's five candidate ops (in :data:`OPS` order); a zero weight skips its op, so
    with one-hot weights the edge computes exactly (and only) the chosen op."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = _ReLUConvBN(c, c, 1)
        self.conv3 = _ReLUConvBN(c, c, 3)
        self.pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)

    def op(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if name == "none":
            return torch.zeros_like(x)
        if name == "skip_connect":
            return x
        if name == "nor_conv_1x1":
            return self.conv1(x)
        if name == "nor_conv_3x3":
            return self.conv3(x)
        return self.pool(x)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor | None = None
        for j, name in enumerate(OPS):
            if name == "none" or bool(w[j].detach() == 0):  # "none" contributes w * 0
                continue
            term = w[j] * self.op(name, x)
            out = term if out is None else out + term
        return out if out is not None else x * w.sum() * 0


class MixedNB201(nn.Module):
    """NB201's skeleton (stem, three stages of ``cells`` cells, residual reductions, classifier) with mixed cell
    edges; ``forward(x, weights)`` with one weight vector per edge (shared by every cell, as the genome is)."""

    def __init__(self, space: NB201Space, *, channels: int | None = None, cells: int | None = None) -> None:
        super().__init__()
        c = channels or space.channels
        n = cells or space.cells_per_stage
        self.space = space
        self.stem = nn.Sequential(nn.Conv2d(space.input_shape[0], c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))
        self.cells = nn.ModuleList()
        self.reductions = nn.ModuleDict()
        for stage in range(3):
            if stage > 0:
                self.reductions[str(stage)] = _Reduction(c, 2 * c)
                c *= 2
            for _ in range(n):
                self.cells.append(nn.ModuleList([MixedEdge(c) for _ in EDGES]))
        self.cells_per_stage = n
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())
        self.classifier = nn.Linear(c, space.num_classes)

    def forward(self, x: torch.Tensor, weights: Sequence[torch.Tensor]) -> torch.Tensor:
        y = self.stem(x)
        for i, cell in enumerate(self.cells):
            if i and i % self.cells_per_stage == 0:
                y = self.reductions[str(i // self.cells_per_stage)](y)
            nodes = [y]
            k = 0
            for node in (1, 2, 3):
                acc = None
                for src in range(node):
                    term = cell[k](nodes[src], weights[k])
                    acc = term if acc is None else acc + term
                    k += 1
                nodes.append(acc)
            y = nodes[3]
        return self.classifier(self.head(y).mean(dim=(2, 3)))


class _Reduction(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.a = _ReLUConvBN(c_in, c_out, 3, 2)
        self.b = _ReLUConvBN(c_out, c_out, 3)
        self.short = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x)) + self.short(x)


# --- blocks: the elastic supernet, depth mixed, the rest sampled (GDAS) -----------------------------------------
class MixedBlocks(nn.Module):
    """The elastic supernet of a ``blocks`` space driven by architecture weights (see the module docstring).
    ``forward(x, weights)``: weights are taken as given for depth; for every other decision the choice is the
    argmax of its weight vector and the outputs are scaled by that entry divided by its detached value (1 in the
    forward pass): pass hard Gumbel-softmax samples during search."""

    def __init__(self, space: BlocksSpace) -> None:
        super().__init__()
        self.supernet = Supernet(space)
        self.space = space
        self.decisions = decisions(space)

    def forward(self, x: torch.Tensor, weights: Sequence[torch.Tensor]) -> torch.Tensor:
        sp, net = self.space, self.supernet
        idx = [int(w.detach().argmax()) for w in weights]

        def gate(i: int) -> torch.Tensor:
            w = weights[i][idx[i]]
            return w / w.detach()

        res, width = sp.resolutions[idx[0]], sp.width_multipliers[idx[1]]
        y = net.stem(resize_batch(x, res), round_channels(sp.stem_channels * width), 3) * (gate(0) * gate(1))
        for s, positions in enumerate(net.stages):
            b = 2 + 5 * s
            block, ch, k, e = (sp.block_types[idx[b]], sp.stage_channels[s][idx[b + 2]], sp.kernels[idx[b + 3]],
                               sp.expands[idx[b + 4]])
            st = Stage(block, max(sp.depths), ch, k, e if block == "mb" else None)
            c_out = round_channels(ch * width)
            g = gate(b) * gate(b + 2) * gate(b + 3) * (gate(b + 4) if block == "mb" else 1.0)
            wd = weights[b + 1]
            used = [j for j in range(len(sp.depths)) if bool(wd[j].detach() != 0)]
            deepest = max(sp.depths[j] for j in used)
            mixed: torch.Tensor | None = None
            for d in range(deepest):
                y = positions[d][block](y, st, c_out)
                if d + 1 in sp.depths and sp.depths.index(d + 1) in used:
                    term = wd[sp.depths.index(d + 1)] * y
                    mixed = term if mixed is None else mixed + term
            assert mixed is not None
            y = mixed * g
        return net.classifier(y.mean(dim=(2, 3)))


def mixed_network(space: object, **options: int) -> nn.Module:
    """The weight-sharing network DNAS trains for ``space``: :class:`MixedNB201` or :class:`MixedBlocks`."""
    if isinstance(space, NB201Space):
        return MixedNB201(space, **options)
    if isinstance(space, BlocksSpace):
        return MixedBlocks(space)
    decisions(space)  # raises
    raise AssertionError  # pragma: no cover


# --- resource regularisers ----------------------------------------------------------------------------------------
class CostTables:
    """For each decision ``i`` and choice ``j``: the exact cost metrics of ``reference`` with decision ``i``
    set to choice ``j`` (``None`` where that genome is not valid). Rebuilt around a new reference with
    :meth:`recentre`."""

    def __init__(self, space: object, cost: CostFn, reference: Sequence[int], metrics: Sequence[str]) -> None:
        self.space, self.cost, self.metrics = space, cost, tuple(metrics)
        self.decisions = decisions(space)
        self.recentre(reference)

    def recentre(self, reference: Sequence[int]) -> None:
        self.reference = tuple(int(i) for i in reference)
        base = self.cost(genome_of(self.space, self.reference))
        self.base = {m: float(base[m]) for m in self.metrics}
        self.table: dict[str, list[torch.Tensor]] = {m: [] for m in self.metrics}
        for i, d in enumerate(self.decisions):
            rows: dict[str, list[float]] = {m: [] for m in self.metrics}
            for j in range(len(d.choices)):
                idx = list(self.reference)
                idx[i] = j
                c = self.cost(genome_of(self.space, idx))
                for m in self.metrics:
                    rows[m].append(float(c[m]))
            for m in self.metrics:
                self.table[m].append(torch.tensor(rows[m], dtype=torch.float32))

    def expected(self, metric: str, probs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Reference cost + sum over decisions of the probability-weighted change (additive metrics)."""
        base = self.base[metric]
        out = torch.tensor(base, dtype=torch.float32)
        for p, row in zip(probs, self.table[metric], strict=True):
            out = out + (p * (row.to(p.device) - base)).sum()
        return out

    def smooth_peak(self, metric: str, probs: Sequence[torch.Tensor], rel_temperature: float = 0.02) -> torch.Tensor:
        """A smooth maximum (log-sum-exp at temperature ``rel_temperature * reference``) over the decisions of
        the expected ``metric`` under each decision's distribution (the working memory: a peak, not a sum)."""
        base = self.base[metric]
        t = max(rel_temperature * base, 1e-9)
        per = torch.stack([(p * row.to(p.device)).sum() for p, row in zip(probs, self.table[metric], strict=True)])
        return t * torch.logsumexp(per / t, dim=0) - t * math.log(len(per))


PEAK_METRICS = frozenset({"peak_sram_bytes"})


class ResourcePenalty:
    """``sum_m strength * relu(E_m / target_m - 1)`` over the limited metrics ``targets`` (metric -> bound):
    expected values for additive metrics, the smooth peak for ``peak_sram_bytes``."""

    def __init__(self, tables: CostTables, targets: Mapping[str, float], strength: float = 1.0) -> None:
        missing = [m for m in targets if m not in tables.metrics]
        if missing:
            raise ConfigError(f"no cost table for {missing}")
        self.tables, self.targets, self.strength = tables, dict(targets), float(strength)

    def values(self, probs: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        return {m: (self.tables.smooth_peak(m, probs) if m in PEAK_METRICS else self.tables.expected(m, probs))
                for m in self.targets}

    def __call__(self, probs: Sequence[torch.Tensor]) -> torch.Tensor:
        total = torch.zeros(())
        for m, v in self.values(probs).items():
            total = total + self.strength * F.relu(v / self.targets[m] - 1.0)
        return total


# --- projection to the hard limits --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Projection:
    """The projected choice indices; ``moves``: the decisions changed (name, from, to), in order;
    ``feasible``: whether the result meets every limit (exact cost model)."""

    index: tuple[int, ...]
    moves: tuple[tuple[str, object, object], ...]
    feasible: bool


def violation(metrics: Mapping[str, float], limits: Mapping[str, float]) -> float:
    """Sum over the limits of the relative excess (0 when every limit holds)."""
    return sum(max(0.0, float(metrics[m]) / b - 1.0) for m, b in limits.items())


def project_feasible(space: object, index: Sequence[int], probs: Sequence[Sequence[float]], cost: CostFn,
                     limits: Mapping[str, float], max_moves: int = 100) -> Projection:
    """Greedy downgrade to the hard ``limits``: while the genome violates them, change the one decision whose
    change removes the most violation per unit of architecture probability lost (``d_violation / (p_from -
    p_to + eps)``), checked with the exact ``cost``; stops when feasible or when no change reduces the
    violation."""
    ds = decisions(space)
    idx = [int(i) for i in index]
    moves: list[tuple[str, object, object]] = []
    v = violation(cost(genome_of(space, idx)), limits)
    while v > 0 and len(moves) < max_moves:
        best: tuple[float, int, int, float] | None = None
        for i, d in enumerate(ds):
            for j in range(len(d.choices)):
                if j == idx[i]:
                    continue
                cand = list(idx)
                cand[i] = j
                try:
                    vj = violation(cost(genome_of(space, cand)), limits)
                except InvalidGenomeError:  # an invalid combination is simply not a move
                    continue
                gain = v - vj
                if gain <= 0:
                    continue
                ratio = gain / (float(probs[i][idx[i]]) - float(probs[i][j]) + 1.0)
                if best is None or ratio > best[0]:
                    best = (ratio, i, j, vj)
        if best is None:
            break
        _, i, j, v = best
        moves.append((ds[i].name, ds[i].choices[idx[i]], ds[i].choices[j]))
        idx[i] = j
    return Projection(tuple(idx), tuple(moves), v <= 0)


# --- the DARTS step -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DnasConfig:
    """Search hyper-parameters: architecture Adam ``arch_lr`` / ``arch_weight_decay``; ``warmup_epochs`` of
    weights-only training first (a guard against DARTS' collapse to parameter-free ops); ``gumbel`` sampling at
    temperature ``tau`` (always hard on ``blocks``); ``penalty`` strength; ``exclude`` choices never used (e.g.
    NB201's ``none``: masked to -inf)."""

    arch_lr: float = 3e-3
    arch_weight_decay: float = 1e-3
    warmup_epochs: int = 1
    gumbel: bool = False
    tau: float = 1.0
    penalty: float = 1.0
    exclude: tuple[str, ...] = ()


class DartsStep(BaseCallback):
    """First-order DARTS alternation as a :class:`~tinyevo.training.Step`; pass it also among the loop's
    callbacks (it reads the epoch). ``x_val`` / ``y_val``: the architecture's batches (tensors)."""

    order = 5
    key = ""

    def __init__(self, arch: ArchParams, x_val: torch.Tensor, y_val: torch.Tensor, cfg: DnasConfig, *,
                 penalty: ResourcePenalty | None, seed: int, hard: bool = False) -> None:
        self.arch, self.x_val, self.y_val, self.cfg, self.penalty = arch, x_val, y_val, cfg, penalty
        self.hard = hard
        self.opt = self._optimizer()
        self.gen = torch.Generator().manual_seed(seed)
        self._state: TrainState | None = None
        self.mask = [torch.tensor([0.0 if str(c) not in cfg.exclude else -math.inf for c in d.choices])
                     for d in arch.decisions]
        self.log: list[dict[str, float]] = []

    def _optimizer(self) -> FusedAdam:
        """The architecture's Adam: ``torch.optim.Adam(lr=arch_lr, betas=(0.5, 0.999), weight_decay=
        arch_weight_decay)`` (L2 decay added to the gradient) as the fused kernel, without ``torch.optim``, whose
        first step imports ``torch._dynamo``; its state (on the logits' device) has ``torch.optim``'s layout."""
        return FusedAdam((ParamGroup(tuple(self.arch.parameters()), self.cfg.arch_weight_decay),),
                         decoupled_weight_decay=False, betas=(0.5, 0.999))

    def on_train_start(self, state: TrainState) -> None:
        self._state = state

    def on_train_end(self, state: TrainState) -> None:
        self._state = None

    def on_epoch_end(self, state: TrainState) -> None:
        probs = [p.detach() for p in self.arch.probs()]
        rec = {"epoch": float(state.epoch)}
        if self.penalty is not None:
            rec.update({m: float(v) for m, v in self.penalty.values(probs).items()})
        self.log.append(rec)

    def _weights(self) -> list[torch.Tensor]:
        sampled = self.cfg.gumbel or self.hard
        with torch.no_grad():
            for a, m in zip(self.arch.logits, self.mask, strict=True):
                a.data = torch.where(torch.isinf(m), torch.full_like(a, -1e4), a.data)
        return self.arch.weights(gumbel=sampled, tau=self.cfg.tau, hard=self.hard, generator=self.gen)

    def __call__(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self._state is None:
            raise ConfigError("a DartsStep must also be one of the loop's callbacks")
        if self._state.epoch >= self.cfg.warmup_epochs:
            n = len(self.x_val)
            pick = torch.randint(0, n, (min(len(inputs), n),), generator=self.gen).to(self.x_val.device)
            xv, yv = self.x_val[pick].to(inputs.device), self.y_val[pick].to(inputs.device)
            w = self._weights()
            loss = F.cross_entropy(model(xv, w), yv)
            if self.penalty is not None:
                loss = loss + self.penalty(self.arch.probs())
            params = list(self.arch.parameters())
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            self.opt.zero_grad()
            for p, g in zip(params, grads, strict=True):
                p.grad = g
            self.opt.step(self.cfg.arch_lr)
        w = [t.detach() for t in self._weights()]
        loss = F.cross_entropy(model(inputs, w), targets)
        loss.backward()
        return loss.detach()

    def prepare(self, model: nn.Module, device: torch.device, input_shape: Sequence[int]) -> None:
        if any(p.device != device for p in self.arch.parameters()):
            if any(bool(s) for s in self.opt.steps):
                raise ConfigError("the architecture's optimiser has stepped; move the logits before the search")
            self.arch.to(device)
            self.opt = self._optimizer()  # its moments live beside the logits

    def modules(self) -> Sequence[nn.Module]:
        return ()

    def signature(self) -> dict[str, object]:
        return {"step": "darts", **{k: str(v) for k, v in self.cfg.__dict__.items()}, "hard": self.hard}


def probabilities(arch: ArchParams) -> list[list[float]]:
    return [p.detach().cpu().tolist() for p in arch.probs()]


def entropy(arch: ArchParams) -> float:
    """Mean entropy of the decisions' distributions (nats)."""
    return float(np.mean([float(-(p * p.clamp_min(1e-12).log()).sum()) for p in arch.probs()]))


# --- the search ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DnasResult:
    """What :func:`dnas_search` found: ``genome`` (after projection), ``argmax`` (the architecture weights'
    argmax genome), the projection, the final probabilities per decision, the penalty log per epoch and the
    weights' learning curve."""

    genome: object
    argmax: object
    projection: Projection | None
    probabilities: tuple[tuple[float, ...], ...]
    log: tuple[dict[str, float], ...]
    history: tuple[object, ...]
    seconds: float
    config: DnasConfig


def dnas_search(space: object, data: Dataset, recipe: Recipe, *, seed: int, cfg: DnasConfig | None = None,
                cost: CostFn | None = None, limits: Mapping[str, float] | None = None,
                network_options: Mapping[str, int] | None = None) -> DnasResult:
    """DARTS / DNAS on ``space`` (``nb201`` or ``blocks``): the mixed network's weights are trained on one half
    of ``data.x_train`` and the architecture logits on the other half (first order, :class:`DartsStep`) through
    the one training loop with ``recipe``; ``limits`` (metric -> bound, with ``cost`` the exact cost function)
    set the resource penalty's targets and the hard limits the argmax genome is projected onto. Deterministic
    given ``seed``."""
    import time

    cfg = cfg or DnasConfig()
    if cfg.warmup_epochs >= recipe.epochs:  # at least one epoch trains the architecture
        cfg = replace(cfg, warmup_epochs=recipe.epochs - 1)
    limits = dict(limits or {})
    if limits and cost is None:
        raise ConfigError("limits need a cost function")
    t0 = time.perf_counter()
    ds = decisions(space)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # the mixed network's initial weights; the global RNG is restored
        torch.manual_seed(seed)
        net = mixed_network(space, **(network_options or {}))
    arch = ArchParams(ds)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(data.x_train))
    half = len(perm) // 2
    if half < 2:
        raise ConfigError("dnas needs at least four training samples (two halves)")
    w_idx, a_idx = np.sort(perm[:half]), np.sort(perm[half:])
    fit = replace(data, x_train=data.x_train[w_idx], y_train=data.y_train[w_idx])
    xa, ya = torch.from_numpy(np.ascontiguousarray(data.x_train[a_idx])), torch.from_numpy(data.y_train[a_idx])
    penalty = None
    if limits:
        assert cost is not None
        reference = tuple(len(d.choices) // 2 for d in ds)
        tables = CostTables(space, cost, reference, tuple(limits))
        penalty = ResourcePenalty(tables, limits, cfg.penalty)
    step = DartsStep(arch, xa, ya, cfg, penalty=penalty, seed=int(torch.randint(2**62, (1,), generator=gen)),
                     hard=isinstance(space, BlocksSpace))

    def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        one = [F.one_hot(torch.tensor(i), len(d.choices)).float().to(x.device)
               for i, d in zip(arch.argmax(), ds, strict=True)]
        model.eval()
        with torch.no_grad():
            correct = 0
            for s in range(0, len(x), recipe.eval_batch_size):
                correct += int((model(x[s:s + recipe.eval_batch_size], one).argmax(1)
                                == y[s:s + recipe.eval_batch_size]).sum())
        return correct / max(len(x), 1)

    with torch_threads(recipe.threads):
        fitted = train(net, fit, recipe, seed=seed, step=step, callbacks=[step], evaluate=evaluate)
    top = arch.argmax()
    found = genome_of(space, top)
    projection = None
    genome: object = found
    if limits:
        assert cost is not None
        projection = project_feasible(space, top, probabilities(arch), cost, limits)
        genome = genome_of(space, projection.index)
    return DnasResult(genome=genome, argmax=found, projection=projection,
                      probabilities=tuple(tuple(p) for p in probabilities(arch)), log=tuple(step.log),
                      history=fitted.history, seconds=time.perf_counter() - t0, config=cfg)


__all__ = [
    "ArchParams", "CostTables", "DartsStep", "Decision", "DnasConfig", "DnasResult", "MixedBlocks", "MixedEdge", "MixedNB201",
    "Projection", "ResourcePenalty", "decisions", "dnas_search", "entropy", "genome_of", "index_of", "mixed_network",
    "probabilities", "project_feasible", "violation",
]
