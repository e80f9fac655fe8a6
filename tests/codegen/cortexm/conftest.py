"""Cortex-M tests need arm-none-eabi-gcc, qemu-system-arm and cc: without them they skip with a message."""

from __future__ import annotations

import pytest

from tinyevo.codegen.cortexm import APT_PACKAGES, missing_tools


@pytest.fixture(scope="session")
def cortexm_toolchain():
    from tinyevo.codegen.cortexm import Toolchain

    missing = missing_tools()
    if missing:
        pytest.skip(f"Cortex-M toolchain missing ({', '.join(missing)}): apt-get install {APT_PACKAGES}")
    return Toolchain.find()


@pytest.fixture(scope="session")
def plugin_dir(tmp_path_factory):
    """One build of the QEMU plugin for the whole session."""
    return tmp_path_factory.mktemp("qemu-plugin")
