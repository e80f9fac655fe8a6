"""A generated network end to end on the emulated cores: Cortex-M4 / M7 outputs equal TFLite-Micro's on the same
``.tflite``, instruction counts are deterministic and per kernel, sizes hold the weights, and ``tinyevo profile``
prints the per-op table. Needs the deploy extra (export, TFLM) and the Cortex-M toolchain; skips otherwise."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("litert_torch", reason="needs the tinyevo[deploy] extra (litert-torch)")
pytest.importorskip("tflite_micro", reason="needs the tinyevo[deploy] extra (tflite-micro)")

from tinyevo.codegen import generate, quantize_input, tflm_outputs  # noqa: E402
from tinyevo.codegen.check import export_random_tflite  # noqa: E402
from tinyevo.codegen.cortexm import TARGETS, ModelSources, build_firmware, emulate  # noqa: E402
from tinyevo.codegen.cortexm.calibrate import measure  # noqa: E402
from tinyevo.spaces import create_space  # noqa: E402


@pytest.fixture(scope="module")
def network():  # type: ignore[no-untyped-def]
    space = create_space("blocks", input_shape=(3, 12, 12), num_classes=10)
    ir = space.decode(space.sample(np.random.default_rng(3)))
    lean, model = export_random_tflite(ir, seed=0, calibration=16)
    gen = generate(model)
    x = quantize_input(np.random.default_rng(1).normal(size=(4, *lean.input_shape)).astype(np.float32),
                       *gen.input_quant)
    return model, gen, x, tflm_outputs(model, x)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_emulated_outputs_equal_tflm_and_counts_repeat(cortexm_toolchain, plugin_dir, network, tmp_path, target):
    model, gen, x, ref = network
    m = measure(gen, x, target, tmp_path, toolchain=cortexm_toolchain, plugin_dir=plugin_dir)
    np.testing.assert_array_equal(m.outputs, np.asarray(ref).reshape(len(x), -1))
    assert len(m.op_instructions) == len(gen.ops) and all(n > 0 for n in m.op_instructions)
    again = measure(gen, x, target, tmp_path / "again", toolchain=cortexm_toolchain, plugin_dir=plugin_dir)
    assert (again.op_instructions, again.instructions) == (m.op_instructions, m.instructions)
    # the kernels are most of an inference; without hooks there is no hook overhead
    assert 0.5 * m.instructions < sum(m.op_instructions) < 1.2 * m.instructions
    # constants live in flash: the model object holds at least the weights
    assert m.model_size.rodata + m.model_size.data >= gen.weight_bytes


def test_hooked_build_computes_the_same_outputs(cortexm_toolchain, plugin_dir, network, tmp_path):
    _model, gen, x, ref = network
    fw = build_firmware(ModelSources(gen.h_source, gen.c_source, op_hooks=True), "cortex-m4", tmp_path,
                        toolchain=cortexm_toolchain)
    assert fw.per_op_markers and fw.arena_bytes == gen.arena_bytes
    run = emulate(fw, x, toolchain=cortexm_toolchain, plugin_dir=plugin_dir)
    np.testing.assert_array_equal(run.outputs, np.asarray(ref).reshape(len(x), -1))
    assert all(len(inf.ops) == len(gen.ops) for inf in run.inferences)


def test_profile_command_prints_per_op_table(cortexm_toolchain, network, tmp_path, capsys):
    from tinyevo.cli.main import main

    model, gen, _x, _ref = network
    path = tmp_path / "m.tflite"
    path.write_bytes(model)
    assert main(["profile", str(path), "--target", "cortex-m7", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["target"] == "cortex-m7" and doc["bit_exact_with_host"] is True
    assert [op["kind"] for op in doc["ops"]] == [op.kind for op in gen.ops]
    assert doc["arena_bytes"] == gen.arena_bytes
    assert sum(op["instructions"] for op in doc["ops"]) < 1.2 * doc["instructions"]
    for op, rec in zip(doc["ops"], gen.ops, strict=True):
        assert op["output_offset"] == rec.output_offset and op["macs"] == rec.macs
    assert main(["profile", str(path)]) == 0
    text = capsys.readouterr().out
    assert "instructions" in text and gen.ops[0].kind[:6] in text
