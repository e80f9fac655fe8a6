"""Named exceptions. Every error a user can cause is one of these, with a message they can act on.

The CLI turns any :class:`TinyEvoError` into a single line on stderr and exit code 2.
"""

from __future__ import annotations


class TinyEvoError(Exception):
    """Base class of every error tinyevo raises on purpose."""


class UnknownNameError(TinyEvoError, KeyError):
    """A registry lookup (space, strategy, device, ...) with a name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class InvalidGenomeError(TinyEvoError, ValueError):
    """A genome string that does not parse, or a genome that is not valid in its space."""


class IRValidationError(TinyEvoError, ValueError):
    """An architecture graph that is not a valid DAG or whose tensor shapes do not fit together."""


class ConfigError(TinyEvoError, ValueError):
    """Bad options or configuration (CLI flags, config files, constructor arguments)."""


class DataError(TinyEvoError, ValueError):
    """A data set that cannot be used (missing file, wrong shapes, bad labels)."""


class SearchExhaustedError(TinyEvoError, RuntimeError):
    """A strategy could not propose any genome it has not already seen."""


class StorageError(TinyEvoError, RuntimeError):
    """A run directory or database that cannot be used (missing, not a tinyevo run, already holds a run)."""


class EstimationError(TinyEvoError, RuntimeError):
    """An estimator could not score an architecture (e.g. training diverged to NaN)."""


class DeployError(TinyEvoError, RuntimeError):
    """A model that cannot be pruned, quantised, converted, run on TFLite-Micro or exported as asked (also
    available as :class:`tinyevo.deploy.errors.DeployError`)."""


class InfeasibleError(TinyEvoError, ValueError):
    """No architecture in the searched region satisfies the resource limits (the message names the tightest)."""
