from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from estimator_helpers import conv_net, dead_net

from tinyevo.data import Dataset
from tinyevo.errors import UnknownNameError
from tinyevo.estimators import PROXIES, proxy_score, rank_genomes, seed_population
from tinyevo.nn import build_model


@pytest.mark.parametrize("proxy", sorted(PROXIES))
def test_proxies_are_finite_and_deterministic(data: Dataset, proxy: str) -> None:
    a = proxy_score(proxy, conv_net(), data, seed=0)
    assert math.isfinite(a) and a == proxy_score(proxy, conv_net(), data, seed=0)


def test_synflow_and_naswot_prefer_the_wider_net(data: Dataset) -> None:
    for proxy in ("synflow", "naswot"):
        assert proxy_score(proxy, conv_net(16), data) > proxy_score(proxy, conv_net(1), data), proxy
    assert proxy_score("naswot", conv_net(8), data) > proxy_score("naswot", dead_net(), data)
    assert proxy_score("grad_norm", conv_net(8), data) > 0


def test_synflow_restores_the_model() -> None:
    model = build_model(conv_net(), seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    from tinyevo.estimators import synflow

    synflow(model, (1, 6, 6))
    after = model.state_dict()
    assert all(torch.equal(before[k], v) and v.dtype == before[k].dtype for k, v in after.items())


class _WidthSpace:
    """A minimal space whose genomes are conv widths (enough for the ranking helpers)."""

    def decode(self, g: int) -> object:
        return conv_net(g)

    def sample(self, rng: np.random.Generator) -> int:
        return int(rng.choice([1, 2, 4, 8, 16]))


def test_rank_and_seed_population(data: Dataset) -> None:
    ranked = rank_genomes(_WidthSpace(), [1, 16, 4], data, proxy="synflow")
    assert [g for g, _ in ranked] == [16, 4, 1]
    seeds = seed_population(_WidthSpace(), data, np.random.default_rng(0), size=2, pool=5, proxy="synflow")
    assert seeds == [16, 8]
    with pytest.raises(UnknownNameError):
        proxy_score("jacov", conv_net(), data)
