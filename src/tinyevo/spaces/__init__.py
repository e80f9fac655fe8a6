"""Search spaces. Importing this package registers every built-in space in :data:`SPACES`."""

from __future__ import annotations

import importlib

from tinyevo.spaces.base import (
    SPACES,
    GeneCountingSpace,
    Genome,
    NeighbourSpace,
    RepairingSpace,
    SearchSpace,
    ValidatingSpace,
    create_space,
)

# Built-in spaces register themselves on import; a module that is not there yet is simply absent.
for _name in ("nb201", "macro", "chain", "blocks"):
    try:
        importlib.import_module(f"tinyevo.spaces.{_name}")
    except ModuleNotFoundError as _exc:  # pragma: no cover - only while a space is being written
        if _exc.name != f"tinyevo.spaces.{_name}":
            raise

__all__ = ["SPACES", "GeneCountingSpace", "Genome", "NeighbourSpace", "RepairingSpace", "SearchSpace",
           "ValidatingSpace", "create_space"]
