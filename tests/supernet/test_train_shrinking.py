"""Progressive shrinking: which genes a sampled sub-network may change at which point of the training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyevo.data import Dataset
from tinyevo.errors import ConfigError
from tinyevo.spaces.blocks import BlocksSpace
from tinyevo.supernet import Supernet
from tinyevo.supernet.train import GENE_GROUPS, SandwichStep, Shrinking, train_supernet
from tinyevo.training import Recipe


def fresh(space: BlocksSpace) -> Supernet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return Supernet(space)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), fixed=st.sets(st.sampled_from(GENE_GROUPS)))
def test_apply_takes_the_largest_value_of_exactly_the_fixed_groups(space: BlocksSpace, seed: int,
                                                                   fixed: set[str]) -> None:
    largest = fresh(space).largest()
    genome = space.sample(np.random.default_rng(seed))
    # groups in `fixed` open at 0.5, the others at 0.0; at progress 0.25 exactly `fixed` is not elastic yet
    shrinking = Shrinking(tuple((g, 0.5 if g in fixed else 0.0) for g in GENE_GROUPS))
    assert shrinking.fixed(0.25) == fixed and shrinking.fixed(0.5) == frozenset()
    out = shrinking.apply(genome, largest, 0.25, expand=max(space.expands))
    space.validate(out)  # still a genome of the space
    want_res = largest.resolution if "resolution" in fixed else genome.resolution
    want_w = largest.width if "width" in fixed else genome.width
    assert (out.resolution, out.width) == (want_res, want_w)
    for got, g, big in zip(out.stages, genome.stages, largest.stages, strict=True):
        assert got.depth == (big.depth if "depth" in fixed else g.depth)
        assert got.kernel == (big.kernel if "kernel" in fixed else g.kernel)
        assert (got.block, got.channels) == ((big.block, big.channels) if "width" in fixed else (g.block, g.channels))
        if got.block != "mb":
            assert got.expand is None
        elif "expand" in fixed or g.block != "mb":
            assert got.expand == max(space.expands)
        else:
            assert got.expand == g.expand
    assert shrinking.apply(genome, largest, 0.5, expand=3) == genome


def test_sandwich_genomes_follow_the_schedule(space: BlocksSpace) -> None:
    net = fresh(space)
    everything_late = Shrinking(tuple((g, 0.5) for g in GENE_GROUPS))
    step = SandwichStep(net, random_subnets=3, seed=2, shrinking=everything_late)
    assert step.genomes(5, progress=0.1) == [net.largest()]  # the largest network alone
    plain = SandwichStep(net, random_subnets=3, seed=2).genomes(5)
    assert step.genomes(5, progress=0.6) == [plain[0], *(g for g in plain[1:] if g != net.largest())]
    kernels_late = SandwichStep(net, random_subnets=6, seed=2, shrinking=Shrinking((("kernel", 0.5),)))
    early = kernels_late.genomes(9, progress=0.1)
    big_k = max(space.kernels)
    assert all(s.kernel == big_k for g in early for s in g.stages)
    assert len({str(g) for g in early}) > 1  # the other genes are elastic


def test_shrinking_rejects_unknown_groups_and_fractions() -> None:
    with pytest.raises(ConfigError, match="gene group"):
        Shrinking((("colour", 0.2),))
    with pytest.raises(ConfigError, match="fraction"):
        Shrinking((("kernel", 1.0),))


def test_kernel_transforms_untouched_until_kernels_are_elastic(space: BlocksSpace, tiny_data: Dataset) -> None:
    net = fresh(space)
    before = {k: v.clone() for k, v in net.named_parameters() if "transforms" in k}
    assert before
    # kernels open after the last step: only the largest kernel is ever used, its transforms get no gradient
    train_supernet(net, tiny_data, Recipe(epochs=1, batch_size=24), seed=0, shrinking=Shrinking((("kernel", 0.99),)))
    after = dict(net.named_parameters())
    for k, v in before.items():
        torch.testing.assert_close(after[k], v, rtol=0, atol=0, msg=k)
    # and with kernels elastic from the start they train
    net2 = fresh(space)
    train_supernet(net2, tiny_data, Recipe(epochs=1, batch_size=24), seed=0, shrinking=Shrinking((("kernel", 0.0),)))
    assert any(not torch.equal(dict(net2.named_parameters())[k], v) for k, v in before.items())
