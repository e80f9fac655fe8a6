"""The TFLM persistent-tail model with 8-byte pointers equals what the host's TFLite-Micro allocates, byte for
byte, on random int8 networks of every space (measured in a child process; the 20+-network version is
``benchmarks/tflm_tail_check.py``)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tflite_micro", reason="needs the tinyevo[deploy] extra (tflite-micro)")

from tinyevo.cost.tflm_tail import tail_spec_from_flatbuffer, tflm_arena_required, tflm_tail  # noqa: E402
from tinyevo.deploy import DeployError  # noqa: E402
from tinyevo.deploy.graph import strip_passthrough  # noqa: E402
from tinyevo.deploy.model import load_weights  # noqa: E402
from tinyevo.deploy.quantize import QuantConfig, quantize_int8  # noqa: E402
from tinyevo.deploy.tflite import strip_flatbuffer, to_tflite  # noqa: E402
from tinyevo.deploy.tflm import inspect_flatbuffer  # noqa: E402
from tinyevo.deploy.tflm_allocations import measure_allocations  # noqa: E402
from tinyevo.spaces import create_space  # noqa: E402

SPACES = {
    "chain": {"input_shape": (1, 28, 28), "num_classes": 10},
    "blocks": {"input_shape": (3, 32, 32), "num_classes": 10, "width_multipliers": (0.3,), "resolutions": (32,)},
    "macro": {"input_shape": (3, 32, 32), "num_classes": 10, "init_channels": 8, "stages": (1, 1, 1),
              "head_channels": 64},
    "nb201": {"input_shape": (3, 32, 32), "num_classes": 10, "channels": 8, "cells_per_stage": 1},
}
HOST = {"pointer_size": 8, "recording": True, "compression": True}  # the Python interpreter's TFLM


def _export(space_name: str, seed: int) -> bytes:
    space = create_space(space_name, **SPACES[space_name])  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    ir = strip_passthrough(space.decode(space.sample(rng)))
    model = load_weights(ir, None, seed=seed)
    x = rng.normal(size=(8, *ir.input_shape)).astype(np.float32)
    q = quantize_int8(model, x, config=QuantConfig(calibration_samples=8, batch_size=8, observer="minmax",
                                                   qat_mode="never"), rng=rng)
    return strip_flatbuffer(to_tflite(q, ir.input_shape, strip=False))


@pytest.mark.parametrize(("space_name", "seed"), [("chain", 1), ("chain", 2), ("blocks", 3), ("macro", 4),
                                                  ("nb201", 5)])
def test_modelled_tail_equals_the_hosts_tflm(space_name: str, seed: int) -> None:
    fb = _export(space_name, seed)
    measured = measure_allocations(fb)
    model = tflm_tail(tail_spec_from_flatbuffer(inspect_flatbuffer(fb)), **HOST)
    assert model.total == measured.tail
    # and each section the recording allocator reports, as requested (before alignment)
    for section, (_used, requested, _count) in measured.sections.items():
        assert model.sections.get(section, 0) == requested, section
    # a 32-bit MCU needs less: 4-byte pointers, the plain allocator, no compression build
    assert tflm_tail(tail_spec_from_flatbuffer(inspect_flatbuffer(fb)), pointer_size=4).total < measured.tail


def test_a_too_small_arena_fails_in_the_child_not_here() -> None:
    fb = _export("chain", 1)
    with pytest.raises(DeployError, match="could not load the model with a 512-byte arena"):
        measure_allocations(fb, arena_size=512)


def _fits(fb: bytes, size: int) -> bool:
    try:
        measure_allocations(fb, arena_size=size)
    except DeployError:
        return False
    return True


def _export_genome(genome: str, input_shape: tuple[int, int, int]) -> bytes:
    space = create_space("chain", input_shape=input_shape, num_classes=10)
    rng = np.random.default_rng(0)
    ir = strip_passthrough(space.decode(space.parse(genome)))
    model = load_weights(ir, None, seed=0)
    x = rng.normal(size=(8, *ir.input_shape)).astype(np.float32)
    q = quantize_int8(model, x, config=QuantConfig(calibration_samples=8, batch_size=8, observer="minmax",
                                                   qat_mode="never"), rng=rng)
    return strip_flatbuffer(to_tflite(q, ir.input_shape, strip=False))


def test_required_arena_bounds_the_hosts_smallest_working_size() -> None:
    # a digits-sized network (a depthwise conv, two dense layers): the depthwise conv's Prepare temporaries,
    # not the activations, set the arena size
    fb = _export_genome("conv_k5_s2_c24-flat-dense_c32", (1, 8, 8))
    measured = measure_allocations(fb)
    spec = tail_spec_from_flatbuffer(inspect_flatbuffer(fb))
    required = tflm_arena_required(spec, measured.head, **HOST)
    assert required > measured.total
    # the smallest working multiple of 16 (the arena's end stays aligned), bisected in child processes
    lo, hi = measured.total // 16, required // 16 + 4
    assert _fits(fb, hi * 16)
    while lo < hi:
        mid = (lo + hi) // 2
        if _fits(fb, mid * 16):
            hi = mid
        else:
            lo = mid + 1
    # an upper bound, tight to 16 bytes (the host's arena start is not always 16-byte aligned)
    assert 0 <= required - lo * 16 <= 16
