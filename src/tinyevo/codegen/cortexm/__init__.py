"""Cortex-M build and emulation of the native C model: firmware for QEMU's MPS2 boards, instruction counts,
section sizes, per-op profiles and the calibrated latency model.

``build_firmware(ModelSources(h, c, hook_macro), "cortex-m4", workdir)`` compiles the generated model with a
minimal bare-metal harness (vector table, reset handler, semihosting); ``emulate(firmware, inputs)`` runs it on
``qemu-system-arm`` and returns the int8 outputs with the instructions executed per inference and per op (a TCG
plugin compiled at run time). See docs/native-runtime.md.
"""

from __future__ import annotations

from tinyevo.codegen.cortexm.emulate import Emulation, Inference, emulate, plugin_path
from tinyevo.codegen.cortexm.firmware import (
    Firmware,
    ModelSources,
    SizeReport,
    build_firmware,
    section_sizes,
    symbol_addresses,
)
from tinyevo.codegen.cortexm.toolchain import (
    APT_PACKAGES,
    TARGETS,
    Target,
    Toolchain,
    ToolchainError,
    get_target,
    harness_dir,
    missing_tools,
)

__all__ = [
    "APT_PACKAGES", "TARGETS", "Emulation", "Firmware", "Inference", "ModelSources", "SizeReport", "Target",
    "Toolchain", "ToolchainError", "build_firmware", "emulate", "get_target", "harness_dir", "missing_tools",
    "plugin_path", "section_sizes", "symbol_addresses",
]
