""":class:`Teacher`: the teacher a run distils from (``teacher`` / ``[final] teacher`` in a run config), parsed once
where the config is built and passed on as this record; :meth:`Teacher.load` builds the network where it is used.

Torch-free (the config imports it); loading the network imports torch then.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyevo.errors import ConfigError


def parse_teacher(spec: str) -> tuple[Path, int | None]:
    """``"RUN_DIR"`` -> (RUN_DIR, None: the run's model); ``"RUN_DIR:N"`` -> (RUN_DIR, trial N)."""
    head, sep, tail = spec.rpartition(":")
    if sep and tail.isdigit() and head:
        return Path(head), int(tail)
    return Path(spec), None


@dataclass(frozen=True)
class Teacher:
    """One or several retrained models of other runs to distil from, each ``"RUN_DIR"`` (that run's model) or
    ``"RUN_DIR:N"`` (trial N); several are an ensemble teacher (the mean of their logits)."""

    specs: tuple[str, ...]

    def __post_init__(self) -> None:
        specs = self.specs
        if not (isinstance(specs, tuple) and specs and all(isinstance(s, str) and s.strip() for s in specs)):
            raise ConfigError(f"a teacher is a run directory, optionally with :TRIAL, or a list of them; "
                              f"got {specs!r}")

    @classmethod
    def parse(cls, value: Any, what: str = "teacher") -> Teacher | None:
        """The teacher of a config value: None, one ``"RUN_DIR[:N]"``, a list of them (a list of one is that one)
        or a :class:`Teacher`; anything else is a :class:`ConfigError` naming ``what``."""
        if value is None or isinstance(value, Teacher):
            return value
        specs = (value,) if isinstance(value, str) else tuple(value) if isinstance(value, (list, tuple)) else ()
        if not (specs and all(isinstance(s, str) and s.strip() for s in specs)):
            raise ConfigError(f"{what} must be a run directory, optionally with :TRIAL, or a list of them; "
                              f"got {value!r}")
        return cls(specs)

    @property
    def models(self) -> tuple[tuple[Path, int | None], ...]:
        """(run directory, trial number or None for the run's model) of each model."""
        return tuple(parse_teacher(s) for s in self.specs)

    def to_json(self) -> str | list[str]:
        """As stored in a run's config: the one spec, or the list of several (the stored form before this
        record existed, so stored runs read back the same)."""
        return self.specs[0] if len(self.specs) == 1 else list(self.specs)

    def __str__(self) -> str:
        return ", ".join(self.specs)

    def load(self) -> Any:
        """The teacher network in eval mode (an :class:`~tinyevo.nn.Ensemble` of several); a missing run, trial
        or weights is a :class:`ConfigError` naming it (:func:`tinyevo.run.retraining.load_teacher`)."""
        from tinyevo.run.retraining import load_teacher

        return load_teacher(self.specs[0] if len(self.specs) == 1 else self.specs)
