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


@pytest.mark.parametrize("genome", ["flat-dense_c32-dense_c64", "conv_k3_s2_c8-gap-dense_c16-dense_c8"])
def test_dense_layers_of_a_chain_skip_their_reshapes_while_training_with_the_same_values_and_gradients(
        genome: str) -> None:
    space = create_space("chain", input_shape=(1, 8, 8), num_classes=3)
    model = build_model(space.decode(space.parse(genome)), seed=0)
    dense = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    flat = [getattr(m, "flat_out", None) for m in model.layers.values() if hasattr(m, "linear")]
    assert flat == [True] * len(dense)  # each is read by a dense layer or is the output
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))

    def by_hand() -> torch.Tensor:  # the oracle: the layers' functions, without the builder's modules
        h = x
        for name, m in model.layers.items():
            if hasattr(m, "linear"):
                h = torch.nn.functional.linear(h.reshape(len(h), -1), m.linear.weight, m.linear.bias)
                h = h if name == list(model.layers)[-1] else torch.relu(h)
            elif not isinstance(m, torch.nn.Identity):
                h = m(h)
        return h

    model.train()
    out = model(x)
    assert out.shape == (4, 3)
    assert torch.equal(out, model.interpret(x))
    out.sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    ref = by_hand()
    assert torch.equal(out, ref)
    ref.sum().backward()
    for g, p in zip(grads, model.parameters(), strict=True):
        assert torch.equal(g, p.grad)
    first = next(m for m in model.layers.values() if hasattr(m, "linear"))
    probe = torch.randn(2, first.linear.in_features)
    assert first(probe).dim() == 2
    model.eval()  # eval mode (what exporters trace): the 4-D layout, the same values
    assert first(probe).dim() == 4
    with torch.no_grad():
        assert torch.equal(model(x), by_hand())
