"""The optional space capabilities (spaces/base.py) hold for every registered space that declares them, and the
shared categorical-gene operators (spaces/genes.py) do what they say (issue 18 item 7)."""

from __future__ import annotations

import numpy as np
import pytest
from test_space_contract import NAMES, tiny

from tinyevo.errors import InvalidGenomeError
from tinyevo.spaces import GeneCountingSpace, NeighbourSpace, RepairingSpace, ValidatingSpace
from tinyevo.spaces.genes import ChangeOneGene, UniformCrossover, single_edits


def test_every_builtin_space_validates():
    for name in ("nb201", "macro", "chain", "blocks"):
        assert isinstance(tiny(name), ValidatingSpace), name
    assert isinstance(tiny("chain"), RepairingSpace)
    assert isinstance(tiny("nb201"), NeighbourSpace) and isinstance(tiny("macro"), NeighbourSpace)


@pytest.mark.parametrize("name", NAMES)
def test_declared_capabilities_hold(name: str):
    space = tiny(name)
    rng = np.random.default_rng(0)
    for _ in range(10):
        g = space.sample(rng)
        child = space.mutate(g, rng)
        if isinstance(space, ValidatingSpace):
            assert space.validate(g) == g and space.validate(child) == child
        if isinstance(space, RepairingSpace):
            assert space.repair(g) == g  # a valid genome is its own nearest valid genome
        if isinstance(space, NeighbourSpace):
            near = space.neighbours(g)
            assert g not in near and len(set(map(str, near))) == len(near)
            assert all(space.parse(str(n)) == n for n in near)
            assert child in near  # a mutation is one edit
        if isinstance(space, GeneCountingSpace):
            assert space.num_genes(g) >= 1


def test_validate_refuses_a_genome_of_another_space():
    with pytest.raises(InvalidGenomeError):
        tiny("macro").validate(tiny("nb201").trivial())
    with pytest.raises(InvalidGenomeError):
        tiny("nb201").validate(tiny("macro").trivial())


CHOICES = (("a", "b", "c"), ("x", "y"), (0, 1, 2, 3), ("only",))


def test_change_one_gene_changes_exactly_one_gene_to_an_allowed_value():
    rng = np.random.default_rng(1)
    genes = ("a", "x", 0, "only")
    changed_positions = set()
    for _ in range(200):
        child = ChangeOneGene()(genes, CHOICES, rng)
        diff = [i for i in range(4) if child[i] != genes[i]]
        assert len(diff) <= 1 and all(child[i] in CHOICES[i] for i in range(4))
        assert len(diff) == 1 or genes[3] == child[3] == "only"  # a gene with no alternative stays
        changed_positions.update(diff)
    assert changed_positions == {0, 1, 2}


def test_uniform_crossover_takes_each_gene_from_a_parent():
    rng = np.random.default_rng(2)
    a, b = ("a", "x", 0, "only"), ("c", "y", 3, "only")
    children = [UniformCrossover()(a, b, rng) for _ in range(100)]
    assert all(c[i] in (a[i], b[i]) for c in children for i in range(4))
    assert {c[0] for c in children} == {"a", "c"}  # both parents contribute


def test_single_edits_are_every_one_gene_change():
    genes = ("b", "y", 2, "only")
    edits = single_edits(genes, CHOICES)
    assert len(edits) == 2 + 1 + 3 + 0
    assert len(set(edits)) == len(edits)
    assert all(sum(x != y for x, y in zip(e, genes)) == 1 for e in edits)
