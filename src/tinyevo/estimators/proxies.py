"""Zero-cost proxies: scores of an untrained network that correlate (loosely) with its trained accuracy.

* ``synflow`` (Tanaka et al. 2020; Abdelfattah et al. 2021): sum of ``|theta * dR/dtheta|`` where ``R`` is the
  output sum of the network with absolute-valued weights on an all-ones input (float64; BatchNorm in eval
  mode, i.e. the identity at initialisation). Data-free.
* ``naswot`` (Mellor et al. 2021): ``log det`` of the Hamming-similarity kernel of the binary ReLU activation
  codes of a mini-batch (``K = C C^T + (1-C)(1-C)^T``); a tiny ridge keeps it finite for degenerate nets.
* ``grad_norm``: Euclidean norm of the cross-entropy gradient of all parameters on one mini-batch.

Higher is better for each. :class:`ProxyEstimator` makes each selectable by name; :func:`rank_genomes` and
:func:`seed_population` use them as a cheap pre-filter or to seed a population.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tinyevo.data import Dataset
from tinyevo.errors import ConfigError, EstimationError, UnknownNameError
from tinyevo.estimators.base import ESTIMATORS, EvalContext
from tinyevo.training import TrainConfig, fit_data_to_ir, torch_threads
from tinyevo.ir import ArchIR
from tinyevo.nn import build_model


def _batch(data: Dataset, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(data.x_train), size=min(n, len(data.x_train)), replace=False))
    return torch.from_numpy(np.array(data.x_train[idx])), torch.from_numpy(np.array(data.y_train[idx]))


def synflow(model: nn.Module, input_shape: tuple[int, int, int]) -> float:
    """SynFlow score of ``model`` (its weights are restored afterwards)."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    was_training = model.training
    try:
        model.double().eval()
        with torch.no_grad():
            for p in model.parameters():
                p.abs_()
        model.zero_grad(set_to_none=True)
        out = model(torch.ones((1, *input_shape), dtype=torch.float64))
        out.sum().backward()
        with torch.no_grad():
            score = sum(float((p * p.grad).abs().sum()) for p in model.parameters() if p.grad is not None)
    finally:
        model.float()
        model.load_state_dict(state)
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return score


def naswot(model: nn.Module, x: torch.Tensor) -> float:
    """NASWOT score: log-determinant of the activation-pattern kernel on the batch ``x``."""
    codes: list[torch.Tensor] = []

    def hook(_m: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        codes.append((out.detach().flatten(1) > 0).to(torch.float64))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
    was_training = model.training
    try:
        model.train()
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    n = len(x)
    k = torch.zeros((n, n), dtype=torch.float64)
    for c in codes:
        k += c @ c.T + (1.0 - c) @ (1.0 - c).T
    k += 1e-3 * torch.eye(n, dtype=torch.float64)  # ridge: degenerate nets get a very low, finite score
    sign, logdet = torch.linalg.slogdet(k)
    return float(logdet) if float(sign) > 0 else -math.inf


def grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Norm of the gradient of the cross-entropy loss on ``(x, y)`` with respect to all parameters."""
    was_training = model.training
    try:
        model.train()
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        total = sum(float(p.grad.pow(2).sum()) for p in model.parameters() if p.grad is not None)
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return math.sqrt(total)


PROXIES: dict[str, Callable[[nn.Module, ArchIR, Dataset, int, int], float]] = {
    "synflow": lambda m, ir, data, n, seed: synflow(m, ir.input_shape),
    "naswot": lambda m, ir, data, n, seed: naswot(m, _batch(data, n, seed)[0]),
    "grad_norm": lambda m, ir, data, n, seed: grad_norm(m, *_batch(data, n, seed)),
}


def proxy_score(name: str, ir: ArchIR, data: Dataset, *, seed: int = 0, batch_size: int = 64) -> float:
    """The zero-cost proxy ``name`` (``synflow``, ``naswot`` or ``grad_norm``) of ``ir`` initialised with
    ``seed``; the mini-batch is drawn with ``seed`` too."""
    if name not in PROXIES:
        raise UnknownNameError(f"unknown proxy {name!r}; known: {', '.join(PROXIES)}")
    data = fit_data_to_ir(ir, data)
    with torch_threads(1):
        model = build_model(ir, seed=seed)
        score = PROXIES[name](model, ir, data, batch_size, seed)
    if math.isnan(score):
        raise EstimationError(f"proxy {name} is NaN for this architecture")
    return score


class ProxyEstimator:
    """Estimator returning one zero-cost proxy as the metric named like the proxy (no ``val_acc``: optimise
    the proxy's metric, or combine it with a training estimator, e.g. ``naswot+lowfi``)."""

    def __init__(self, proxy: str, *, batch_size: int = 64) -> None:
        if proxy not in PROXIES:
            raise UnknownNameError(f"unknown proxy {proxy!r}; known: {', '.join(PROXIES)}")
        self.proxy = proxy
        self.batch_size = batch_size
        self.name = proxy.replace("_", "-")

    @property
    def metric_names(self) -> frozenset[str]:
        """The metrics :meth:`evaluate` returns: the proxy's score and its time."""
        return frozenset({self.proxy, f"{self.proxy}_time_s"})

    def evaluate(
        self, ir: ArchIR, data: Dataset, *, seed: int, context: EvalContext | None = None
    ) -> dict[str, float]:
        start = time.perf_counter()
        score = proxy_score(self.proxy, ir, data, seed=seed, batch_size=self.batch_size)
        return {self.proxy: score, f"{self.proxy}_time_s": time.perf_counter() - start}


def _register(proxy: str) -> None:
    @ESTIMATORS.register(
        proxy.replace("_", "-"), help=f"zero-cost proxy {proxy} (metric '{proxy}', higher is better)"
    )
    def factory(*, config: TrainConfig | None = None) -> ProxyEstimator:
        return ProxyEstimator(proxy, batch_size=min(64, (config or TrainConfig()).batch_size))


for _p in PROXIES:
    _register(_p)


def rank_genomes(
    space: object, genomes: Sequence[object], data: Dataset, *, proxy: str = "naswot", seed: int = 0
) -> list[tuple[object, float]]:
    """``(genome, score)`` pairs sorted best first by the zero-cost ``proxy`` (ties keep the input order).

    ``space`` is a :class:`~tinyevo.spaces.base.SearchSpace` (its ``decode`` gives each genome's IR).
    """
    scored = [(g, proxy_score(proxy, space.decode(g), data, seed=seed)) for g in genomes]  # type: ignore[attr-defined]
    order = sorted(range(len(scored)), key=lambda i: (-scored[i][1], i))
    return [scored[i] for i in order]


def seed_population(
    space: object, data: Dataset, rng: np.random.Generator, *, size: int, pool: int, proxy: str = "naswot",
    seed: int = 0,
) -> list[object]:
    """The ``size`` best of ``pool`` distinct random genomes by ``proxy``: a population seed or pre-filter.

    Sampling stops after ``20 * pool`` draws even if fewer distinct genomes were found.
    """
    if size < 1 or pool < size:
        raise ConfigError(f"need 1 <= size <= pool, got size={size}, pool={pool}")
    seen: dict[str, object] = {}
    for _ in range(20 * pool):
        g = space.sample(rng)  # type: ignore[attr-defined]
        seen.setdefault(str(g), g)
        if len(seen) >= pool:
            break
    return [g for g, _ in rank_genomes(space, list(seen.values()), data, proxy=proxy, seed=seed)[:size]]
