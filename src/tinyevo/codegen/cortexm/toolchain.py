"""The Cortex-M targets and the tools that build and emulate them (found on ``PATH``).

=============  ================  ===================  ======================================
target         QEMU machine      ``-mcpu``            device profiles' core (latency model)
=============  ================  ===================  ======================================
``cortex-m4``  ``mps2-an386``    ``cortex-m4``        ``cortex-m4`` (stm32f412, nrf52840)
``cortex-m7``  ``mps2-an500``    ``cortex-m7``        ``cortex-m7`` (stm32f746, stm32h743)
=============  ================  ===================  ======================================

Tools: ``arm-none-eabi-gcc`` / ``-nm`` / ``-size`` (Debian ``gcc-arm-none-eabi libnewlib-arm-none-eabi``),
``qemu-system-arm`` (Debian ``qemu-system-arm``, 7.2 or later: TCG plugins) and a host C compiler (``cc``) that
builds the instruction-counting plugin.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from tinyevo.errors import TinyEvoError

APT_PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
"""The Debian packages that provide the cross compiler, its C library and the emulator."""


class ToolchainError(TinyEvoError, RuntimeError):
    """A Cortex-M tool is missing, a build failed or the emulated firmware did not finish cleanly."""


@dataclass(frozen=True)
class Target:
    """A Cortex-M core as tinyevo builds and emulates it."""

    name: str
    machine: str  # QEMU -M
    cpu: str  # arm-none-eabi-gcc -mcpu
    linker_script: str  # file in the harness directory
    core: str  # the CoreModel name in tinyevo.devices whose latency the emulation calibrates
    description: str = ""


TARGETS: dict[str, Target] = {
    "cortex-m4": Target("cortex-m4", "mps2-an386", "cortex-m4", "mps2_an386.ld", "cortex-m4",
                        "Arm Cortex-M4 (DSP extension) on QEMU's MPS2 AN386 board"),
    "cortex-m7": Target("cortex-m7", "mps2-an500", "cortex-m7", "mps2_an500.ld", "cortex-m7",
                        "Arm Cortex-M7 (DSP extension) on QEMU's MPS2 AN500 board"),
}


def get_target(name: str | Target) -> Target:
    if isinstance(name, Target):
        return name
    try:
        return TARGETS[name]
    except KeyError:
        raise ToolchainError(f"unknown Cortex-M target {name!r}; known: {', '.join(TARGETS)}") from None


_TOOLS = {"gcc": "arm-none-eabi-gcc", "nm": "arm-none-eabi-nm", "size": "arm-none-eabi-size",
          "qemu": "qemu-system-arm", "host_cc": "cc"}


@dataclass(frozen=True)
class Toolchain:
    """Paths of the tools (see the module docstring)."""

    gcc: Path
    nm: Path
    size: Path
    qemu: Path
    host_cc: Path

    @classmethod
    def find(cls) -> Toolchain:
        """The tools on ``PATH``; a :class:`ToolchainError` naming the missing ones and how to install them."""
        missing = missing_tools()
        if missing:
            raise ToolchainError(
                f"the Cortex-M build and emulation need {', '.join(missing)} (Debian/Ubuntu: "
                f"apt-get install --no-install-recommends {APT_PACKAGES}; a host C compiler for cc)"
            )
        return cls(**{key: Path(shutil.which(tool) or tool) for key, tool in _TOOLS.items()})


def missing_tools() -> list[str]:
    """The tools of :class:`Toolchain` that are not on ``PATH`` (empty when everything is there)."""
    return [tool for tool in _TOOLS.values() if shutil.which(tool) is None]


def harness_dir() -> Path:
    """The directory of the harness sources (startup, semihosting, linker scripts, the QEMU plugin)."""
    return Path(str(resources.files("tinyevo.codegen.cortexm").joinpath("harness")))


__all__ = ["APT_PACKAGES", "TARGETS", "Target", "Toolchain", "ToolchainError", "get_target", "harness_dir",
           "missing_tools"]
