"""The run engine: typed run configuration, the search driver with storage and resume, final retraining,
reports."""

from __future__ import annotations

from tinyevo.run.config import RunConfig, build_config, load_config_file

__all__ = ["RunConfig", "build_config", "load_config_file"]
