"""Errors of the deployment step (kept beside the package so the optional extra stays self-contained)."""

from __future__ import annotations

from tinyevo.errors import DeployError

__all__ = ["DeployError", "MissingExtraError", "require"]


class MissingExtraError(DeployError, ImportError):
    """An optional deployment dependency is not installed."""


def require(module: str, *, purpose: str) -> None:
    """Raise :class:`MissingExtraError` with an install hint when ``module`` cannot be imported."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(
            f"{purpose} needs the optional package providing {module!r}; install it with "
            "`pip install 'tinyevo[deploy]'`"
        )
