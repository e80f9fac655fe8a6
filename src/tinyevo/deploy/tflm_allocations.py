"""TFLite-Micro's allocation report for a ``.tflite``, taken in a child process at one generous arena size.

TFLM can crash the whole process (SIGSEGV) at some too-small arena sizes, so the model is loaded by the probe child
of :func:`tinyevo.deploy.tflm.probe_arena`, never in the calling process, and with one size only (no bisection).
The default size is generous (many times what the model needs) and a multiple of 16, so the arena's end is 16-byte
aligned as on a device (with an unaligned end TFLM's tail also counts the few bytes it skips to align its first
allocation).

This is what the tail model (:mod:`tinyevo.cost.tflm_tail`) is validated against; the smallest working arena
size (bisected) is :func:`tinyevo.deploy.tflm.measure_arena`'s ``required``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tinyevo.deploy.errors import DeployError
from tinyevo.deploy.tflm import _default_arena, parse_allocations, probe_arena


@dataclass(frozen=True)
class AllocationReport:
    """TFLM's arena after ``AllocateTensors`` and one ``Invoke``, at ``arena_size`` bytes (64-bit host)."""

    arena_size: int
    total: int
    head: int  # non-persistent: planned activations + scratch buffers
    tail: int  # persistent: interpreter objects, eval tensors, nodes, op data, quantisation
    sections: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # name -> (used, requested, count)


def generous_arena(model: bytes) -> int:
    """:func:`tinyevo.deploy.tflm._default_arena` rounded up to 16 bytes."""
    return -(-_default_arena(model) // 16) * 16


def measure_allocations(model: bytes, *, arena_size: int | None = None) -> AllocationReport:
    """TFLM's allocation report for ``model`` with ``arena_size`` bytes (default :func:`generous_arena`), measured
    in a child process. Raises :class:`DeployError` when the model does not load with that size (also when TFLM
    crashes, with the signal)."""
    size = int(arena_size) if arena_size is not None else generous_arena(model)
    result = probe_arena(model, lower=size, upper=size, report=True)
    if result.report is None:
        raise DeployError(f"TFLite-Micro could not load the model with a {size}-byte arena: {result.detail}")
    total, head, tail, sections = parse_allocations(result.report)
    return AllocationReport(size, total, head, tail, sections)
