"""Weight inheritance (network morphism): a child starts from its parent's trained weights.

Weights are matched by ``state_dict`` key -- i.e. by IR node name and layer role -- and copied only where the
shapes agree; everything else keeps the child's fresh initialisation. Trained weights are kept in a
:class:`WeightStore` keyed by genome string (in memory, optionally mirrored to a directory so that worker
processes and resumed runs can read them).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tinyevo.errors import ConfigError

StateDict = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class InheritReport:
    """How much of a child's state came from its parent."""

    copied_tensors: int
    total_tensors: int
    copied_params: int  # scalar parameters (weights, biases, BN affine) copied
    total_params: int

    @property
    def fraction(self) -> float:
        return self.copied_params / self.total_params if self.total_params else 0.0


def inherit_weights(model: nn.Module, parent_state: StateDict) -> InheritReport:
    """Copy every tensor of ``parent_state`` whose key and shape match one of ``model``'s into ``model``."""
    own = model.state_dict()
    params = {name for name, _ in model.named_parameters()}
    update: dict[str, torch.Tensor] = {}
    copied_params = total_params = 0
    for key, value in own.items():
        if key in params:
            total_params += value.numel()
        src = parent_state.get(key)
        if src is not None and tuple(src.shape) == tuple(value.shape):
            update[key] = src.detach().to(dtype=value.dtype)
            if key in params:
                copied_params += value.numel()
    if update:
        model.load_state_dict({**own, **update})
    return InheritReport(len(update), len(own), copied_params, total_params)


class WeightStore:
    """Trained ``state_dict`` objects keyed by genome string: an in-memory LRU of ``max_items`` entries,
    backed by ``directory`` (one ``.pt`` file per genome, loadable with ``torch.load(...,
    weights_only=True)``) if given."""

    def __init__(self, directory: str | Path | None = None, *, max_items: int = 128) -> None:
        if max_items < 1:
            raise ConfigError("max_items must be >= 1")
        self.directory = Path(directory) if directory is not None else None
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
        self.max_items = max_items
        self._memory: OrderedDict[str, dict[str, torch.Tensor]] = OrderedDict()

    def _file(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".pt")

    def put(self, key: str, state: StateDict) -> None:
        copy = {k: v.detach().cpu().clone() for k, v in state.items()}
        self._memory[key] = copy
        self._memory.move_to_end(key)
        while len(self._memory) > self.max_items:
            self._memory.popitem(last=False)
        if self.directory is not None:
            fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
            os.close(fd)
            torch.save(copy, tmp)
            os.replace(tmp, self._file(key))  # atomic: readers never see half a file

    def get(self, key: str) -> dict[str, torch.Tensor] | None:
        if key in self._memory:
            self._memory.move_to_end(key)
            return self._memory[key]
        if self.directory is not None and self._file(key).exists():
            state = torch.load(self._file(key), weights_only=True)
            self._memory[key] = state
            while len(self._memory) > self.max_items:
                self._memory.popitem(last=False)
            return state
        return None

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (
            key in self._memory or (self.directory is not None and self._file(key).exists())
        )

    def __len__(self) -> int:
        if self.directory is None:
            return len(self._memory)
        return len(list(self.directory.glob("*.pt")))
