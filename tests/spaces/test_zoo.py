"""The zoo of known architectures and seed resolution."""

from __future__ import annotations

import pytest

from tinyevo.errors import ConfigError
from tinyevo.spaces import create_space
from tinyevo.spaces.zoo import ZOO, resolve_seeds, zoo_entries

SHAPES = {"chain": (3, 32, 32), "nb201": (3, 32, 32), "blocks": (3, 96, 96)}


@pytest.mark.parametrize("space_name", sorted(ZOO))
def test_every_entry_parses_round_trips_and_decodes(space_name):
    space = create_space(space_name, input_shape=SHAPES[space_name], num_classes=10)
    for entry in zoo_entries(space_name):
        g = space.parse(entry.genome)
        assert str(g) == entry.genome
        assert space.decode(g).nodes  # a valid IR
        assert entry.source


def test_resolve_mixes_zoo_names_and_genome_strings():
    space = create_space("chain", input_shape=(1, 28, 28), num_classes=10)
    got = resolve_seeds(space, ["zoo:resnet8-like", "conv_k3_s2_c8-gap", "resnet8-like"])
    assert [str(g) for g in got] == [ZOO["chain"]["resnet8-like"].genome, "conv_k3_s2_c8-gap"]


def test_zoo_keyword_skips_entries_the_space_options_exclude():
    space = create_space("chain", input_shape=(1, 28, 28), num_classes=10, channels=(8, 16, 32, 64), max_layers=5)
    got = {str(g) for g in resolve_seeds(space, ["zoo"])}
    assert ZOO["chain"]["ds-cnn-like"].genome in got  # 5 layers, 64 channels
    assert ZOO["chain"]["resnet8-like"].genome not in got  # 6 layers > max_layers
    assert ZOO["chain"]["mobilenet-tiny"].genome not in got


@pytest.mark.parametrize(
    "items, message",
    [
        (["zoo:nope"], "unknown zoo architecture 'nope'"),
        (["conv_k3_s9_c8-gap"], "bad seed genome"),
    ],
)
def test_bad_seeds_raise_config_errors(items, message):
    space = create_space("chain", input_shape=(1, 28, 28), num_classes=10)
    with pytest.raises(ConfigError, match=message):
        resolve_seeds(space, items)


def test_named_entry_invalid_in_the_space_is_a_config_error():
    space = create_space("chain", input_shape=(1, 28, 28), num_classes=10, max_layers=3)
    with pytest.raises(ConfigError, match="not valid"):
        resolve_seeds(space, ["resnet8-like"])
    with pytest.raises(ConfigError, match="no zoo architecture"):
        resolve_seeds(create_space("macro"), ["zoo"])
