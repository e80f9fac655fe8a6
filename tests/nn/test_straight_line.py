"""A chain IR runs as straight-line calls of its layers: the same outputs (bit for bit) as the IR interpreter,
on random genomes of every space, in training and in evaluation mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tinyevo.ir import ArchIR
from tinyevo.nn import build_model
from tinyevo.spaces import SPACES, create_space


def _is_chain(ir: ArchIR) -> bool:  # the oracle: every node reads only the node before it
    names = [n.name for n in ir.nodes]
    return names[-1] == ir.output and all(list(n.inputs) == [names[i]] for i, n in enumerate(ir.nodes[1:]))


@pytest.mark.parametrize("space_name", sorted(SPACES))
def test_forward_equals_the_interpreter_on_random_genomes(space_name: str) -> None:
    space = create_space(space_name)
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    for _ in range(6):
        ir = space.decode(space.sample(rng))
        model = build_model(ir, seed=0)
        assert model.is_chain == _is_chain(ir)
        x = torch.randn(2, *ir.shapes[ir.input_name], generator=gen)
        for train in (True, False):
            model.train(train)
            with torch.no_grad():
                assert torch.equal(model(x), model.interpret(x))


def test_chain_genomes_take_the_straight_line_and_residual_ones_do_not() -> None:
    space = create_space("chain")
    assert build_model(space.decode(space.parse("conv_k3_s2_c8-dsc_k3_s1_c8-gap-dense_c16")), seed=0).is_chain
    assert not build_model(space.decode(space.parse("conv_k3_s2_c8-conv_k3_s1_c8_r-gap")), seed=0).is_chain
