from __future__ import annotations

from estimator_helpers import data  # noqa: F401 - the shared session fixture
