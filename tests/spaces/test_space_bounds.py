"""Space options are bounded in the spaces' constructors, with a message naming the bound (issue 17)."""

from __future__ import annotations

import numpy as np
import pytest

from tinyevo.errors import ConfigError
from tinyevo.spaces import create_space


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("chain", {"max_layers": 1_000_000}, "max_layers must be at most 256, got 1000000"),
        ("chain", {"channels": (8, 10**9)}, "channels must be at most 8192"),
        ("chain", {"kernels": (3, 10**6)}, "kernels must be at most 31"),
        ("blocks", {"depths": (1, 10**6)}, "depths must be at most 32"),
        ("macro", {"stages": (2, 10**6)}, r"layers \(sum of stages\) must be at most 256"),
        ("nb201", {"cells_per_stage": 10**6}, "cells_per_stage must be at most 85"),
    ],
)
def test_space_options_beyond_their_bound_are_one_config_error(name: str, options: dict[str, object],
                                                               match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        create_space(name, **options)


def test_the_bound_itself_is_allowed() -> None:
    space = create_space("chain", input_shape=(1, 8, 8), num_classes=2, max_layers=256)
    g = space.sample(np.random.default_rng(0))
    assert len(g.layers) <= 256
