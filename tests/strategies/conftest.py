"""Fixtures for strategy tests."""

from __future__ import annotations

import pytest

from tinyevo.spaces import create_space
from tinyevo.strategies.base import Objective, Problem


@pytest.fixture
def acc_problem() -> Problem:
    return Problem(objectives=(Objective("acc"),))


@pytest.fixture
def nb201():
    return create_space("nb201", channels=8, cells_per_stage=1)


@pytest.fixture
def conv_problem() -> Problem:
    return Problem(objectives=(Objective("convs"), Objective("pools", "min")))
