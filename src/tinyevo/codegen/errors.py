"""The code generator's exception."""

from __future__ import annotations

from tinyevo.deploy.errors import DeployError


class CodegenError(DeployError):
    """The model cannot be turned into native C (an unsupported op or quantisation), or the C build failed."""
