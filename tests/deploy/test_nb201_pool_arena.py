"""An NB201 cell of average pools and skips: the int8 export stays all-int8 and TFLite-Micro's arena equals the
cost model's estimate (head with the ``tflm`` planner, the 32-bit arena with the default ``tflm-mcu``).

The genome is DNAS's Fashion-MNIST winner (benchmarks/results/dnas.json). Its cells compute ``p + p`` twice
(``n2 = p + n1`` and the first partial sum of ``n3 = p + n1 + pool(n2)``, ``n1 = p``). Quantised with a
histogram observer, the two copies got different parameters; the converter merged them in float and kept the
add in float (DEQUANTIZE, float ADD, two QUANTIZE): 50,176 B of arena head against an estimate of 18,816 B.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("tflite_micro", reason="needs the tinyevo[deploy] extra (tflite-micro)")

from tinyevo.cost import estimate_cost, lower  # noqa: E402
from tinyevo.cost.tflm_tail import tail_spec_from_flatbuffer, tflm_arena_required, tflm_tail  # noqa: E402
from tinyevo.deploy.graph import strip_passthrough  # noqa: E402
from tinyevo.deploy.model import load_weights  # noqa: E402
from tinyevo.deploy.quantize import QuantConfig, _export, quantize_int8  # noqa: E402
from tinyevo.deploy.tflite import strip_flatbuffer, to_tflite  # noqa: E402
from tinyevo.deploy.tflm import inspect_flatbuffer  # noqa: E402
from tinyevo.deploy.tflm_allocations import measure_allocations  # noqa: E402
from tinyevo.spaces.nb201 import NB201Space  # noqa: E402

POOL_CELL = "|avg_pool_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|avg_pool_3x3~0|skip_connect~1|avg_pool_3x3~2|"
HOST = {"pointer_size": 8, "recording": True, "compression": True}  # the Python interpreter's TFLM


def test_pool_cell_exports_all_int8_and_the_arena_equals_the_estimate() -> None:
    space = NB201Space(channels=8, cells_per_stage=1, input_shape=(1, 28, 28), num_classes=10)
    ir = space.decode(space.parse(POOL_CELL))
    lean = strip_passthrough(ir)
    rng = np.random.default_rng(0)
    model = load_weights(lean, None, seed=0)
    x = rng.normal(size=(8, *lean.input_shape)).astype(np.float32)
    # the default observer (histogram): with min-max the copies happened to get equal parameters
    q = quantize_int8(model, x, config=QuantConfig(calibration_samples=8, batch_size=8, observer="histogram",
                                                   qat_mode="never"), rng=rng)
    fb = strip_flatbuffer(to_tflite(q, lean.input_shape, strip=False))
    info = inspect_flatbuffer(fb)
    activations = [t for t in info.tensors if not t.constant]
    assert {t.dtype for t in activations} == {"int8"}
    # the kernels are the lowering's, one for one (two ADDs per cell: p + p once)
    assert Counter(info.op_names()) == Counter(op.tflite for op in lower(ir).ops)
    assert Counter(info.op_names())["ADD"] == 3 * 2 + 2  # cells + the two reduction blocks' residual adds

    measured = measure_allocations(fb)
    assert measured.head == estimate_cost(ir, planner="tflm").peak_sram_bytes
    spec = tail_spec_from_flatbuffer(info)
    assert tflm_tail(spec, **HOST).total == measured.tail
    # the default planner prices the arena a 32-bit MCU needs: equal to TFLM's rule with the measured head
    assert estimate_cost(ir).peak_sram_bytes == tflm_arena_required(spec, measured.head, pointer_size=4)


class _Twice(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = nn.functional.avg_pool2d(x, 3, 1, 1)
        b = nn.functional.avg_pool2d(x, 3, 1, 1)  # = a
        c = nn.functional.avg_pool2d(x, 3, 1, 0)  # other attributes: kept
        s1 = a + b
        s2 = b + a  # = s1 (commuted)
        return torch.relu(s1) + s2 + c.mean()


def _count(program: torch.fx.GraphModule, target: object) -> int:
    return sum(1 for n in program.graph.nodes if n.op == "call_function" and n.target is target)


def test_export_merges_duplicate_ops_and_keeps_the_function() -> None:
    module = _Twice().eval()
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(2, 3, 6, 6)).astype(np.float32))
    program = _export(module, x)
    aten = torch.ops.aten
    assert _count(program, aten.avg_pool2d.default) == 2
    assert _count(program, aten.add.Tensor) == 3  # a + b, relu(.) + s1, + mean
    assert _count(program, aten.relu.default) == 1
    y = torch.from_numpy(np.random.default_rng(2).normal(size=(5, 3, 6, 6)).astype(np.float32))
    torch.testing.assert_close(program(y), module(y), rtol=0, atol=0)
