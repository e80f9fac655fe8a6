"""MACs and params agree with the torch module built from the same IR, for random genomes of every space."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tinyevo.cost import estimate_cost
from tinyevo.nn.builder import build_model
from tinyevo.spaces import SPACES, create_space

fvcore_nn = pytest.importorskip("fvcore.nn")

#: Small options per space so that building and tracing the torch modules stays fast.
TINY: dict[str, dict[str, object]] = {
    "nb201": dict(channels=4, cells_per_stage=1, input_shape=(3, 8, 8)),
    "macro": dict(init_channels=4, head_channels=16, input_shape=(3, 8, 8)),
    "chain": dict(input_shape=(1, 8, 8)),
    "blocks": dict(resolutions=(16,), width_multipliers=(0.3, 0.5), input_shape=(3, 16, 16)),
}


@pytest.mark.parametrize("space_name", SPACES.names())
def test_macs_and_params_match_torch(space_name: str) -> None:
    space = create_space(space_name, num_classes=3, **TINY.get(space_name, {}))
    rng = np.random.default_rng(7)
    for _ in range(2):
        ir = space.decode(space.sample(rng))
        model = build_model(ir, seed=0).eval()
        flops = fvcore_nn.FlopCountAnalysis(model, torch.zeros(1, *ir.input_shape))
        flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        by_op = flops.by_operator()
        report = estimate_cost(ir)
        assert report.macs == by_op.get("conv", 0) + by_op.get("linear", 0)
        # deployed params = torch params with each BN's (gamma, beta) replaced by one folded bias per channel
        bn = sum(m.num_features for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
        assert report.params == sum(p.numel() for p in model.parameters()) - bn
