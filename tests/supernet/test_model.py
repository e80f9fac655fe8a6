"""The elastic supernet: extraction equals the supernet, slices and kernel transforms, channel sorting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

from tinyevo.errors import ConfigError
from tinyevo.nn import IRModule, build_model
from tinyevo.spaces import create_space
from tinyevo.spaces.blocks import BlocksSpace, round_channels
from tinyevo.supernet import Supernet, macs, resize_batch
from tinyevo.supernet.elastic import ElasticConvBN


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_extracted_subnet_equals_the_supernet(space: BlocksSpace, scramble, seed: int) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(seed % 1000)
    net = scramble(Supernet(space), seed).eval()
    genome = space.sample(np.random.default_rng(seed))
    x = torch.randn(3, 1, genome.resolution, genome.resolution, generator=torch.Generator().manual_seed(seed))
    model = net.extract(genome).eval()
    assert isinstance(model, IRModule) and model.ir == space.decode(genome)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(x, genome), rtol=1e-5, atol=1e-5)
    # its own copy: changing the extracted weights leaves the supernet alone
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        torch.testing.assert_close(net.extract(genome).eval()(x), net(x, genome), rtol=1e-5, atol=1e-5)


def test_parameter_counts_follow_the_builder(space: BlocksSpace) -> None:
    """Every sub-network's extracted parameters are as many as the builder's network of its IR has."""
    net = Supernet(space)
    rng = np.random.default_rng(1)
    for _ in range(10):
        g = space.sample(rng)
        expected = sum(p.numel() for p in build_model(space.decode(g)).parameters())
        assert sum(t.numel() for k, t in net.sliced_state(g).items() if "running" not in k) == expected


def test_kernel_transform_is_centre_crop_times_matrix() -> None:
    layer = ElasticConvBN(2, 4, kernels=(3, 5, 7))
    with torch.no_grad():
        for p in layer.transforms.values():
            p.copy_(torch.randn(p.shape))
    w7 = layer.weight.detach()
    m5, m3 = layer.transforms["k5"].detach(), layer.transforms["k3"].detach()
    w5 = np.einsum("ocij,kij->ock", w7[:, :, 1:6, 1:6].numpy(), m5.numpy().reshape(25, 5, 5)).reshape(4, 2, 5, 5)
    w3 = np.einsum("ocij,kij->ock", w5[:, :, 1:4, 1:4], m3.numpy().reshape(9, 3, 3)).reshape(4, 2, 3, 3)
    np.testing.assert_allclose(layer.kernel_weight(7).detach().numpy(), w7.numpy())
    np.testing.assert_allclose(layer.kernel_weight(5).detach().numpy(), w5, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.kernel_weight(3).detach().numpy(), w3, rtol=1e-5, atol=1e-5)


def test_fresh_transforms_are_plain_centre_crops() -> None:
    layer = ElasticConvBN(2, 4, kernels=(3, 7))
    np.testing.assert_array_equal(layer.kernel_weight(3).detach().numpy(), layer.weight[:, :, 2:5, 2:5].detach())


def test_largest_and_smallest(space: BlocksSpace) -> None:
    net = Supernet(space)
    big, small = net.largest(), net.smallest()
    assert big.resolution == 16 and big.width == 1.0 and small.resolution == 12 and small.width == 0.5
    assert all(s.depth == 2 and s.kernel == 5 for s in big.stages)
    rng = np.random.default_rng(0)
    cost = [macs(space.decode(space.sample(rng))) for _ in range(30)]
    assert macs(space.decode(small)) <= min(cost) and macs(space.decode(big)) >= max(cost)


def test_widths_are_channel_slices(space: BlocksSpace) -> None:
    """A width-0.5 conv block uses the first filters of the width-1.0 one (same input, same prefix of outputs)."""
    net = Supernet(space).eval()
    full = space.parse("r16_w1.0-conv_d1_k3_c16-conv_d1_k3_c24-conv_d1_k3_c32")
    x = torch.randn(2, 1, 16, 16)
    stem = net.stem
    with torch.no_grad():
        a = stem(x, round_channels(8 * 1.0), 3)
        b = stem(x, round_channels(8 * 0.5), 3)
    torch.testing.assert_close(a[:, : b.shape[1]], b)
    assert net(x, full).shape == (2, 3)


def test_sort_channels_keeps_the_largest_network(space: BlocksSpace, scramble) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    net = scramble(Supernet(space), 3).eval()
    big = net.largest()
    mb_big = space.parse("r16_w1.0-mb_d2_k5_e3_c16-mb_d2_k5_e3_c24-mb_d2_k5_e3_c32")
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        before = net(x, mb_big), net(x, big)
        net.sort_channels()
        torch.testing.assert_close(net(x, mb_big), before[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(net(x, big), before[1], rtol=1e-5, atol=1e-5)
    block = net.stages[0][0]["mb"]
    norms = block.project.weight.abs().sum(dim=(0, 2, 3))
    assert torch.all(norms[:-1] >= norms[1:])


def test_resize_batch_matches_the_data_resampling(tiny_data) -> None:  # type: ignore[no-untyped-def]
    from tinyevo.data import resize

    small = resize(tiny_data, (12, 12))
    x = torch.tensor(np.asarray(tiny_data.x_val))
    np.testing.assert_allclose(resize_batch(x, 12).numpy(), small.x_val, rtol=1e-6, atol=1e-6)
    assert resize_batch(x, 16) is x


def test_smallest_and_largest_train(space: BlocksSpace) -> None:
    torch.manual_seed(0)
    net = Supernet(space).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 1, 16, 16, generator=gen), torch.randint(0, 3, (16,), generator=gen)
    for genome in (net.largest(), net.smallest()):
        before = {k: v.clone() for k, v in net.state_dict().items()}
        losses = []
        for _ in range(8):
            opt.zero_grad()
            loss = F.cross_entropy(net(x, genome), y)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        assert losses[-1] < losses[0]
        changed = [k for k, v in net.state_dict().items() if not torch.equal(v, before[k])]
        assert any(k.startswith("stem.") for k in changed) and any(k.startswith("classifier.") for k in changed)


def test_refuses_dense_blocks_and_other_spaces(tiny_options: dict) -> None:
    with pytest.raises(ConfigError, match="dense"):
        Supernet(create_space("blocks", **{**tiny_options, "block_types": ("mb", "dense")}))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="blocks"):
        Supernet(create_space("chain"))  # type: ignore[arg-type]
