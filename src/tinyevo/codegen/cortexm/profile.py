"""Per-op profile of the native C model on an emulated Cortex-M core (``tinyevo profile``).

:func:`profile_tflite` generates the C model of an int8 ``.tflite``, builds it for the target with op hooks
(per-kernel instruction counts) and without (the instructions a deployed model executes), emulates both on one
seeded random input and joins the counts with the generator's per-op records (MACs, bytes moved, arena offsets).
The emulated output is compared with the same C built for the host (``bit_exact_with_host``).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyevo.codegen.cortexm.calibrate import CPI, measure
from tinyevo.codegen.cortexm.firmware import SizeReport
from tinyevo.codegen.cortexm.toolchain import Target, Toolchain, get_target
from tinyevo.codegen.generate import GeneratedModel, OpRecord, generate
from tinyevo.codegen.host import build_host


@dataclass(frozen=True)
class OpProfile:
    """One kernel of the generated model with its emulated instruction count."""

    record: OpRecord
    instructions: int

    @property
    def bytes_moved(self) -> int:
        """Activation bytes read and written plus constant bytes read."""
        return self.record.bytes_in + self.record.bytes_out + self.record.weight_bytes

    @property
    def instructions_per_mac(self) -> float | None:
        return self.instructions / self.record.macs if self.record.macs else None

    def as_json(self) -> dict[str, object]:
        return {**self.record.as_json(), "instructions": self.instructions, "bytes_moved": self.bytes_moved,
                "instructions_per_mac": self.instructions_per_mac}


@dataclass(frozen=True)
class Profile:
    """A generated model profiled on one target."""

    target: Target
    model: GeneratedModel
    ops: tuple[OpProfile, ...]
    instructions: int  # per inference, built without hooks
    size: SizeReport  # the whole firmware image
    model_size: SizeReport  # tinyevo_model.o
    bit_exact_with_host: bool  # the emulated int8 output equals the host build's

    @property
    def cpi(self) -> float:
        return CPI[self.target.core][0]

    @property
    def cycles(self) -> float:
        """Estimated cycles: instructions x the core's documented CPI."""
        return self.instructions * self.cpi

    @property
    def macs(self) -> int:
        return self.model.macs

    def as_json(self) -> dict[str, object]:
        return {
            "target": self.target.name, "machine": self.target.machine, "instructions": self.instructions,
            "macs": self.macs, "cpi": self.cpi, "cycles_estimate": self.cycles,
            "arena_bytes": self.model.arena_bytes, "input_bytes": self.model.input_bytes,
            "output_bytes": self.model.output_bytes,
            "model_flash_bytes": self.model_size.flash, "model_text_bytes": self.model_size.text,
            "model_rodata_bytes": self.model_size.rodata, "image_flash_bytes": self.size.flash,
            "image_ram_bytes": self.size.ram, "image_stack_bytes": self.size.stack,
            "bit_exact_with_host": self.bit_exact_with_host,
            "ops": [op.as_json() for op in self.ops],
        }


def profile_tflite(model: bytes | str | Path, *, target: str | Target = "cortex-m4", seed: int = 0,
                   workdir: str | Path | None = None, toolchain: Toolchain | None = None) -> Profile:
    """Profile the native C model of the int8 ``.tflite`` ``model`` on ``target`` (see the module docstring)."""
    tc = toolchain or Toolchain.find()
    tgt = get_target(target)
    gen = generate(model)
    x = np.random.default_rng(seed).integers(-128, 128, size=(1, gen.input_bytes), dtype=np.int8)
    with tempfile.TemporaryDirectory(prefix="tinyevo-profile-") as tmp:
        work = Path(workdir) if workdir is not None else Path(tmp)
        m = measure(gen, x, tgt, work, toolchain=tc)
        host = build_host(gen, work / "host", cc=str(tc.host_cc)).run(x)
    ops = tuple(OpProfile(r, n) for r, n in zip(gen.ops, m.op_instructions, strict=True))
    return Profile(target=tgt, model=gen, ops=ops, instructions=m.instructions, size=m.size,
                   model_size=m.model_size, bit_exact_with_host=bool(np.array_equal(host, m.outputs)))


__all__ = ["OpProfile", "Profile", "profile_tflite"]
