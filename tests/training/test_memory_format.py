"""Channels-last training except for the 1x1 convolutions that crash oneDNN (issue 16, "Crashes 2").

The crash is a segfault / glibc abort inside oneDNN, so the training that used to hit it runs in a child
process: a regression fails the test instead of killing pytest.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from tinyevo.training.memory_format import ChannelsLast, conv_memory_format

# Trains a stride-2 1x1 convolution from 8 channels at 96x96 for one epoch of two steps, channels-last on:
# the shape benchmarks/onednn_cl_crash.py found to crash (8 -> 4 channels, stride 2, batch 8, 96x96 aborted
# or segfaulted on AVX-512 CPUs before the fix); the second net is a blocks-space genome with residual
# blocks whose stride-2 1x1 shortcuts start from 8 channels, as in the lowfi search candidate that crashed.
_TRAIN = textwrap.dedent("""
    import sys
    import numpy as np
    from tinyevo.data import from_arrays
    from tinyevo import training
    from tinyevo.training import TrainConfig
    from tinyevo.ir import Conv2d, Dense, GlobalPool, GraphBuilder
    from tinyevo.nn import build_model

    size = int(sys.argv[1])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 1, size, size)).astype(np.float32)
    y = np.arange(20) % 2
    data = from_arrays(x, y, seed=0, val_fraction=0.2, test_fraction=0.2)
    if sys.argv[2] == "conv":
        b = GraphBuilder((1, size, size))
        h = b.add(Conv2d(8, kernel=3, act="relu"), b.input, name="c1")
        h = b.add(Conv2d(4, kernel=1, stride=2, act="relu"), h, name="c2")
        h = b.add(GlobalPool(), h, name="gap")
        ir = b.build(b.add(Dense(2), h, name="fc"))
    else:
        from tinyevo.spaces import create_space
        space = create_space("blocks", input_shape=(1, size, size), num_classes=2)
        ir = space.decode(space.parse(sys.argv[2]))
    model = build_model(ir, seed=0)
    cfg = TrainConfig(epochs=1, batch_size=8, channels_last=True)
    training.fit(model, data, config=cfg, seed=0)
    print("trained")
""")


@pytest.mark.parametrize("net", ["conv", "r96_w0.3-res_d1_k3_c16-res_d1_k3_c24-res_d1_k3_c40-res_d1_k3_c80-"
                                         "res_d1_k3_c80-res_d1_k3_c160"])
def test_training_the_crashing_1x1_conv_shape_channels_last_exits_cleanly(net: str) -> None:
    r = subprocess.run([sys.executable, "-c", _TRAIN, "96", net], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "trained" in r.stdout, (r.returncode, r.stderr[-2000:])


def _conv(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride, groups=groups, bias=False)


# The oracle: the outcomes of benchmarks/onednn_cl_crash.py (benchmarks/results/onednn_cl_crash.json), as
# (in, out, kernel, stride, groups) -> crashed with channels-last tensors.
GRID = [
    ((8, 4, 1, 2, 1), True), ((1, 4, 1, 2, 1), True), ((4, 64, 1, 2, 1), True), ((15, 4, 1, 2, 1), True),
    ((12, 16, 1, 2, 1), True), ((8, 4, 1, 3, 1), True), ((8, 4, 1, 4, 1), True),
    ((16, 4, 1, 2, 1), False), ((17, 4, 1, 2, 1), False), ((24, 16, 1, 2, 1), False),
    ((64, 4, 1, 2, 1), False),
    ((8, 4, 1, 1, 1), False), ((4, 64, 1, 1, 1), False), ((8, 8, 1, 2, 2), False), ((8, 8, 1, 2, 8), False),
    ((8, 4, 3, 2, 1), False),
]


@pytest.mark.parametrize(("shape", "crashed"), GRID)
def test_the_memory_format_rule_keeps_exactly_the_crashing_shapes_contiguous(
    shape: tuple[int, int, int, int, int], crashed: bool
) -> None:
    want = torch.contiguous_format if crashed else torch.channels_last
    assert conv_memory_format(_conv(*shape)) == want


def test_a_non_square_stride_counts_as_strided() -> None:
    assert conv_memory_format(nn.Conv2d(8, 4, 1, (1, 2))) == torch.contiguous_format


def test_channels_last_skips_only_the_crashing_conv_and_its_input_and_undo_restores_all() -> None:
    safe, bad, dw = _conv(2, 8, kernel=3), _conv(8, 16, stride=2), _conv(16, 16, kernel=3, groups=8)
    model = nn.Sequential(safe, bad, dw)
    layout = ChannelsLast([model])
    cl = torch.channels_last
    assert safe.weight.is_contiguous(memory_format=cl) and not safe.weight.is_contiguous()
    assert dw.weight.is_contiguous(memory_format=cl) and not dw.weight.is_contiguous()
    assert bad.weight.stride() == (8, 1, 1, 1)  # a 1x1 weight is "contiguous" both ways: its strides tell
    x = torch.randn(2, 2, 8, 8)
    inputs: list[torch.Tensor] = []
    handle = bad.register_forward_hook(lambda m, args, out: inputs.append(args[0]))
    y = model(x)
    handle.remove()
    assert inputs[0].is_contiguous() and not inputs[0].is_contiguous(memory_format=cl)
    layout.undo()
    assert all(p.stride() == torch.empty(p.shape).stride() for p in model.parameters())
    assert not bad._forward_pre_hooks
    torch.testing.assert_close(model(x), y, atol=1e-5, rtol=1e-4)
