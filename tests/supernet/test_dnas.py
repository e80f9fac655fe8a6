"""DNAS: mixed ops, architecture weights, resource regularisers, projection, the search end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from tinyevo.cost import estimate_cost
from tinyevo.spaces.nb201 import OPS, NB201Genome, NB201Space
from tinyevo.supernet.dnas import (
    ArchParams,
    CostTables,
    DnasConfig,
    MixedBlocks,
    MixedEdge,
    MixedNB201,
    ResourcePenalty,
    decisions,
    dnas_search,
    genome_of,
    index_of,
    project_feasible,
)
from tinyevo.training import Recipe


def _cost(space):  # type: ignore[no-untyped-def]
    def cost(genome: object) -> dict[str, float]:
        return dict(estimate_cost(space.decode(genome), device="stm32f412").as_metrics())
    return cost


@pytest.fixture(scope="module")
def nb201() -> NB201Space:
    return NB201Space(channels=4, cells_per_stage=1, input_shape=(1, 16, 16), num_classes=3)


def _one_hot(i: int, n: int) -> torch.Tensor:
    return F.one_hot(torch.tensor(i), n).float()


@pytest.mark.parametrize("j", range(len(OPS)))
def test_mixed_edge_one_hot_is_the_chosen_op(j: int) -> None:
    torch.manual_seed(0)
    edge = MixedEdge(4).eval()
    x = torch.randn(2, 4, 6, 6)
    expected = {  # independent oracle: the op written out with torch.nn.functional
        "none": torch.zeros_like(x),
        "skip_connect": x,
        "nor_conv_1x1": F.batch_norm(F.conv2d(F.relu(x), edge.conv1[1].weight), edge.conv1[2].running_mean,
                                     edge.conv1[2].running_var),
        "nor_conv_3x3": F.batch_norm(F.conv2d(F.relu(x), edge.conv3[1].weight, padding=1),
                                     edge.conv3[2].running_mean, edge.conv3[2].running_var),
        "avg_pool_3x3": F.avg_pool2d(x, 3, 1, 1, count_include_pad=False),
    }[OPS[j]]
    torch.testing.assert_close(edge(x, _one_hot(j, len(OPS))), expected)


def test_mixed_edge_is_the_weighted_sum() -> None:
    torch.manual_seed(0)
    edge = MixedEdge(3).eval()
    x = torch.randn(1, 3, 5, 5)
    w = torch.tensor([0.1, 0.2, 0.3, 0.15, 0.25])
    total = sum(w[j] * edge(x, _one_hot(j, 5)) for j in range(5))
    torch.testing.assert_close(edge(x, w), total)


def test_mixed_nb201_one_hot_depends_only_on_chosen_ops(nb201: NB201Space) -> None:
    torch.manual_seed(1)
    net = MixedNB201(nb201).eval()
    x = torch.randn(2, 1, 16, 16)
    g = NB201Genome(("nor_conv_3x3", "skip_connect", "none", "avg_pool_3x3", "nor_conv_1x1", "skip_connect"))
    w = [_one_hot(i, 5) for i in index_of(nb201, g)]
    before = net(x, w)
    with torch.no_grad():  # weights of unchosen ops on edge 0 (its 1x1 conv) must not matter
        for cell in net.cells:
            cell[0].conv1[1].weight.add_(1.0)
    torch.testing.assert_close(net(x, w), before)
    with torch.no_grad():  # the chosen op's weights do
        for cell in net.cells:
            cell[0].conv3[1].weight.add_(1.0)
    assert not torch.allclose(net(x, w), before)


def test_mixed_blocks_one_hot_equals_the_supernet(space, scramble) -> None:  # type: ignore[no-untyped-def]
    net = MixedBlocks(space)
    scramble(net.supernet, 3)
    net.eval()
    rng = np.random.default_rng(0)
    x = torch.randn(2, 1, 16, 16)
    for _ in range(4):
        g = space.sample(rng)
        w = [_one_hot(i, len(d.choices)) for i, d in zip(index_of(space, g), decisions(space), strict=True)]
        torch.testing.assert_close(net(x, w), net.supernet(x, g))


def test_genome_index_round_trip(space, nb201) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    for sp in (space, nb201):
        for _ in range(5):
            g = sp.sample(rng)
            assert genome_of(sp, index_of(sp, g)) == g


@pytest.mark.parametrize("metric", ["flash_bytes", "macs", "latency_ms", "peak_sram_bytes"])
def test_penalty_gradient_sign(nb201: NB201Space, metric: str) -> None:
    """Raising the logit of a costlier choice raises the penalty (target below every genome's cost)."""
    cost = _cost(nb201)
    tables = CostTables(nb201, cost, (3,) * 6, [metric])
    pen = ResourcePenalty(tables, {metric: 1.0})
    arch = ArchParams(decisions(nb201))
    pen(arch.probs()).backward()
    for e in range(6):
        # oracle: the exact cost of the reference with edge e set to each op
        exact = [cost(genome_of(nb201, [3] * e + [j] + [3] * (5 - e)))[metric] for j in range(5)]
        hi, lo = int(np.argmax(exact)), int(np.argmin(exact))
        if exact[hi] > exact[lo]:
            g = arch.logits[e].grad
            assert g[hi] > g[lo], (metric, e, exact, g)


def test_penalty_zero_below_target(nb201: NB201Space) -> None:
    tables = CostTables(nb201, _cost(nb201), (3,) * 6, ["flash_bytes"])
    pen = ResourcePenalty(tables, {"flash_bytes": 1e12})
    assert float(pen(ArchParams(decisions(nb201)).probs()).detach()) == 0.0


def test_expected_cost_exact_on_one_hot(nb201: NB201Space) -> None:
    cost = _cost(nb201)
    tables = CostTables(nb201, cost, (3,) * 6, ["macs"])
    idx = [3, 3, 0, 3, 3, 3]
    probs = [_one_hot(i, 5) for i in idx]
    assert float(tables.expected("macs", probs)) == pytest.approx(cost(genome_of(nb201, idx))["macs"])


def test_projection_meets_the_limits(nb201: NB201Space) -> None:
    cost = _cost(nb201)
    big = (3,) * 6  # every edge a 3x3 conv
    limit = {"flash_bytes": 0.8 * cost(genome_of(nb201, big))["flash_bytes"],
             "peak_sram_bytes": cost(genome_of(nb201, big))["peak_sram_bytes"]}
    probs = [[0.2] * 5 for _ in range(6)]
    proj = project_feasible(nb201, big, probs, cost, limit)
    assert proj.feasible and proj.moves
    m = cost(genome_of(nb201, proj.index))
    assert all(m[k] <= v for k, v in limit.items())


def _recipe() -> Recipe:
    return Recipe(epochs=2, batch_size=16, optimizer="sgd", lr=0.05)


def test_search_end_to_end_nb201(nb201, tiny_data) -> None:  # type: ignore[no-untyped-def]
    cost = _cost(nb201)
    big = cost(genome_of(nb201, (3,) * 6))
    limits = {"flash_bytes": 0.7 * big["flash_bytes"]}
    cfg = DnasConfig(warmup_epochs=1, exclude=("none",))
    a = dnas_search(nb201, tiny_data, _recipe(), seed=4, cfg=cfg, cost=cost, limits=limits)
    b = dnas_search(nb201, tiny_data, _recipe(), seed=4, cfg=cfg, cost=cost, limits=limits)
    assert a.genome == b.genome and a.probabilities == b.probabilities
    assert cost(a.genome)["flash_bytes"] <= limits["flash_bytes"]
    assert "none" not in a.argmax.ops  # excluded
    assert any(abs(p - 0.2) > 1e-4 for row in a.probabilities for p in row)  # the architecture moved


def test_search_end_to_end_blocks(space, tiny_data) -> None:  # type: ignore[no-untyped-def]
    cost = _cost(space)
    limits = {"peak_sram_bytes": cost(space.trivial())["peak_sram_bytes"] * 1.5}
    r = dnas_search(space, tiny_data, _recipe(), seed=0, cfg=DnasConfig(warmup_epochs=0, gumbel=True),
                    cost=cost, limits=limits)
    space.validate(r.genome)
    assert cost(r.genome)["peak_sram_bytes"] <= limits["peak_sram_bytes"]
    assert r.history


def test_gumbel_weights(nb201: NB201Space) -> None:
    arch = ArchParams(decisions(nb201))
    with torch.no_grad():
        arch.logits[0].copy_(torch.tensor([0.0, 0.0, 0.0, 5.0, 0.0]))
    soft = arch.weights(gumbel=True, tau=0.5, generator=torch.Generator().manual_seed(0))
    assert all(abs(float(w.sum()) - 1.0) < 1e-5 for w in soft)
    counts = np.zeros(5)
    gen = torch.Generator().manual_seed(1)
    for _ in range(200):
        hard = arch.weights(gumbel=True, hard=True, generator=gen)
        assert sorted(hard[0].tolist()) == [0.0, 0.0, 0.0, 0.0, 1.0]
        counts[int(hard[0].argmax())] += 1
    assert counts.argmax() == 3 and counts[3] < 200  # mostly the favoured choice, not only it
    hard[0][3].backward()
    assert arch.logits[0].grad is not None and float(arch.logits[0].grad.abs().sum()) > 0
