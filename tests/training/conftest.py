from __future__ import annotations

import pytest
from estimator_helpers import separable

from tinyevo.data import Dataset


@pytest.fixture(scope="session")
def data() -> Dataset:
    return separable()
