"""A trained supernet on disk: a directory with ``supernet.json`` (what it is) and ``supernet.pt`` (weights).

``supernet.json`` describes the space (``create_space("blocks", **options)`` rebuilds it), the data it was trained
on (name, input shape, classes) and the training recipe, so a later search can check that its data and limits fit
and record which supernet scored it. ``supernet.pt`` is a plain ``state_dict`` (tensors only): it loads with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tinyevo import __version__
from tinyevo.errors import ConfigError
from tinyevo.fsutil import atomic_write, atomic_write_text
from tinyevo.spaces.base import create_space
from tinyevo.spaces.blocks import BlocksSpace
from tinyevo.supernet.model import Supernet

META = "supernet.json"
WEIGHTS = "supernet.pt"
FORMAT = 1


def space_options(space: BlocksSpace) -> dict[str, Any]:
    """The keyword arguments of ``create_space("blocks", ...)`` that rebuild ``space``."""
    return {
        "input_shape": list(space.input_shape),
        "num_classes": space.num_classes,
        "width_multipliers": list(space.width_multipliers),
        "resolutions": list(space.resolutions),
        "block_types": list(space.block_types),
        "depths": list(space.depths),
        "kernels": list(space.kernels),
        "expands": list(space.expands),
        "stage_strides": list(space.stage_strides),
        "stage_channels": [list(c) for c in space.stage_channels],
        "stem_channels": space.stem_channels,
    }


def space_from_options(options: Mapping[str, Any]) -> BlocksSpace:
    tuples = {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
              for k, v in options.items()}
    space = create_space("blocks", **tuples)
    assert isinstance(space, BlocksSpace)
    return space


@dataclass(frozen=True)
class SupernetInfo:
    """The contents of ``supernet.json``: the space options, the data and the training record."""

    space: Mapping[str, Any]
    data: Mapping[str, Any] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)
    version: str = __version__
    format: int = FORMAT

    def to_json(self) -> str:
        return json.dumps({"format": self.format, "tinyevo": self.version, "space": dict(self.space),
                           "data": dict(self.data), "training": dict(self.training)}, indent=2) + "\n"


def save_supernet(
    directory: str | Path, supernet: Supernet, *, data: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``supernet`` (weights and description) into ``directory`` (created); returns the directory."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    info = SupernetInfo(space=space_options(supernet.space), data=dict(data or {}), training=dict(training or {}))
    state = {k: v.detach().cpu() for k, v in supernet.state_dict().items()}
    atomic_write(out / WEIGHTS, lambda fh: torch.save(state, fh))
    atomic_write_text(out / META, info.to_json())
    return out


def read_info(directory: str | Path) -> SupernetInfo:
    path = Path(directory) / META
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{directory} is not a trained supernet directory (no {META}); "
                          "train one with `tinyevo supernet train ... --out DIR`") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON: {e}") from None
    if raw.get("format") != FORMAT:
        raise ConfigError(f"{path} has format {raw.get('format')!r}; this tinyevo reads format {FORMAT}")
    return SupernetInfo(space=raw["space"], data=raw.get("data", {}), training=raw.get("training", {}),
                        version=str(raw.get("tinyevo", "")), format=FORMAT)


def load_supernet(directory: str | Path) -> tuple[Supernet, SupernetInfo]:
    """The supernet saved in ``directory`` (in eval mode) and its description."""
    info = read_info(directory)
    net = Supernet(space_from_options(info.space))
    state = torch.load(Path(directory) / WEIGHTS, map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    net.eval()
    return net, info
