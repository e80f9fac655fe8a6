"""Which trained supernet scores a run: its directory and a digest of its files (``search --supernet DIR``).

The run's config stores both (:attr:`tinyevo.run.config.EstimatorConfig.supernet`), so the run records which
supernet scored it and a resume refuses a supernet that changed since (retrained, overwritten). Torch-free: the
driver reads ``supernet.json`` itself; only the workers load the weights
(:class:`tinyevo.estimators.supernet.SupernetEstimator`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyevo.errors import ConfigError

META = "supernet.json"  # as tinyevo.supernet.store (which imports torch)
WEIGHTS = "supernet.pt"
SPACE = "blocks"
SUPERNET_ESTIMATOR = "supernet"
"""The estimator name of a supernet-scored run (:class:`tinyevo.estimators.supernet.SupernetEstimator`; not in the
estimator registry: it needs the directory)."""
DATA_KEYS = ("input_shape", "num_classes")
"""Options of ``supernet.json``'s space that come from the run's data, not from the supernet."""


def supernet_digest(directory: str | Path) -> str:
    """``sha256:`` of ``supernet.json`` and ``supernet.pt`` in ``directory`` (a :class:`ConfigError` when one is
    missing)."""
    h = hashlib.sha256()
    for name in (META, WEIGHTS):
        path = Path(directory) / name
        try:
            with path.open("rb") as fh:
                h.update(name.encode() + b"\0")
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        except OSError as exc:
            raise ConfigError(f"--supernet {directory}: cannot read {name} ({exc.strerror or exc}); train one with "
                              "`tinyevo supernet train --out DIR`") from None
    return "sha256:" + h.hexdigest()


@dataclass(frozen=True)
class SupernetRef:
    """A trained supernet's directory (as given, made absolute) and the digest of its files when the run started."""

    path: str
    digest: str

    @classmethod
    def of(cls, directory: str | Path) -> SupernetRef:
        """The supernet in ``directory`` now (its digest computed)."""
        path = Path(directory).expanduser().resolve()
        return cls(path=str(path), digest=supernet_digest(path))

    @classmethod
    def parse(cls, value: Any) -> SupernetRef | None:
        """A stored ``{"path": ..., "digest": ...}`` (or an instance, or None)."""
        if value is None or isinstance(value, SupernetRef):
            return value
        if isinstance(value, Mapping) and isinstance(value.get("path"), str) and isinstance(value.get("digest"), str):
            return cls(path=value["path"], digest=value["digest"])
        raise ConfigError(f"estimator.supernet must be {{path, digest}}, got {value!r}")

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "digest": self.digest}

    def check(self) -> None:
        """A one-line :class:`ConfigError` when the supernet's files are gone or changed since the run started."""
        now = supernet_digest(self.path)
        if now != self.digest:
            raise ConfigError(f"the supernet in {self.path} changed since this run started (digest {now[:19]}... "
                              f"!= stored {self.digest[:19]}...); its trials were scored by the old one")

    def space_options(self) -> dict[str, Any]:
        """The options of the supernet's ``blocks`` space without those the data sets (``input_shape``,
        ``num_classes``)."""
        try:
            info = json.loads((Path(self.path) / META).read_text())
            space = dict(info["space"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"--supernet {self.path}: unreadable {META} ({exc})") from None
        return {k: v for k, v in space.items() if k not in DATA_KEYS}


def supernet_space(ref: SupernetRef, space: str | None, options: Mapping[str, Any]) -> dict[str, Any]:
    """The space options of a run scored by ``ref``: the supernet's. A run that names another space, or a space
    option with another value, is a one-line :class:`ConfigError` (the search may only ask genomes the supernet
    covers)."""
    if space not in (None, SPACE):
        raise ConfigError(f"--supernet scores the {SPACE!r} space it was trained on; drop --space {space}")
    own = ref.space_options()
    for key, value in options.items():
        if key in DATA_KEYS:
            continue
        if key not in own or _plain(own[key]) != _plain(value):
            raise ConfigError(f"space option {key}={_plain(value)!r} conflicts with the supernet in {ref.path} "
                              f"({key}={own.get(key)!r}); its space options come from its supernet.json")
    return own


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
