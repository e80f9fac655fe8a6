"""The bare-metal harness on QEMU with hand-written models (independent of the code generator): outputs against
a numpy oracle, instruction counts against inline-assembly blocks of known length, section sizes, faults."""

from __future__ import annotations

import numpy as np
import pytest

from tinyevo.codegen.cortexm import TARGETS, ModelSources, ToolchainError, build_firmware, emulate

HEADER = """#include <stdint.h>
#define TINYEVO_MODEL_ARENA_BYTES {arena}
#define TINYEVO_MODEL_INPUT_BYTES 16
#define TINYEVO_MODEL_OUTPUT_BYTES 4
int tinyevo_model_invoke(const int8_t *input, int8_t *output, uint8_t *arena);
"""

# op 0: a 4x16 integer matrix-vector product into the arena; op 1: NOPS nops (an exact instruction count);
# op 2: shift, saturate and store the outputs
SOURCE = """#include "tinyevo_model.h"
#ifdef TINYEVO_MODEL_OP_HOOKS
void tinyevo_model_op_hook(int op, int end);
#define HOOK(i) tinyevo_model_op_hook((i) - 1, 1); tinyevo_model_op_hook((i), 0)
#else
#define HOOK(i)
#endif
#define STR2(x) #x
#define STR(x) STR2(x)
static const int8_t weights[4][16] = {WEIGHTS};
int tinyevo_model_invoke(const int8_t *input, int8_t *output, uint8_t *arena) {
    int32_t *acc = (int32_t *)arena;
#ifdef TINYEVO_MODEL_OP_HOOKS
    tinyevo_model_op_hook(0, 0);
#endif
    for (int j = 0; j < 4; j++) {
        int32_t s = 0;
        for (int i = 0; i < 16; i++) s += input[i] * weights[j][i];
        acc[j] = s;
    }
    HOOK(1);
    __asm__ volatile(".rept " STR(NOPS) "\\n nop\\n .endr");
    HOOK(2);
    for (int j = 0; j < 4; j++) {
        int32_t v = acc[j] >> 6;
        output[j] = (int8_t)(v > 127 ? 127 : v < -128 ? -128 : v);
    }
#ifdef TINYEVO_MODEL_OP_HOOKS
    tinyevo_model_op_hook(2, 1);
#endif
    return 0;
}
"""


def _sources(nops: int, *, arena: int = 16, hook: bool = True, weights: np.ndarray | None = None) -> ModelSources:
    w = _WEIGHTS if weights is None else weights
    text = SOURCE.replace("WEIGHTS", ", ".join("{" + ", ".join(map(str, row)) + "}" for row in w))
    text = f"#define NOPS {nops}\n" + text
    return ModelSources(HEADER.format(arena=arena), text, op_hooks=hook)


_WEIGHTS = np.random.default_rng(0).integers(-128, 128, size=(4, 16))


def _oracle(x: np.ndarray) -> np.ndarray:
    acc = x.astype(np.int64) @ _WEIGHTS.T.astype(np.int64)
    return np.clip(acc >> 6, -128, 127).astype(np.int8)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_outputs_match_oracle_and_counts_are_deterministic(cortexm_toolchain, plugin_dir, tmp_path, target):
    fw = build_firmware(_sources(0), target, tmp_path, toolchain=cortexm_toolchain)
    x = np.random.default_rng(1).integers(-128, 128, size=(5, 16)).astype(np.int8)
    first = emulate(fw, x, toolchain=cortexm_toolchain, plugin_dir=plugin_dir)
    second = emulate(fw, x, toolchain=cortexm_toolchain, plugin_dir=plugin_dir)
    np.testing.assert_array_equal(first.outputs, _oracle(x))
    assert first.inferences == second.inferences
    assert first.total_instructions == second.total_instructions
    # three ops each; the branch-free product and the empty op execute the same instructions for every input
    assert all(len(inf.ops) == 3 for inf in first.inferences)
    assert len({inf.ops[:2] for inf in first.inferences}) == 1
    # the matrix-vector product (64 multiply-accumulates) costs more than the empty op and the 4 stores
    ops = first.inferences[0].ops
    assert ops[0] > 64 and ops[0] > ops[1] and ops[0] > ops[2]


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_per_op_counts_see_exactly_the_added_instructions(cortexm_toolchain, plugin_dir, tmp_path, target):
    x = np.zeros((1, 16), dtype=np.int8)
    base = emulate(build_firmware(_sources(0), target, tmp_path / "a", toolchain=cortexm_toolchain), x,
                   toolchain=cortexm_toolchain, plugin_dir=plugin_dir).inferences[0]
    more = emulate(build_firmware(_sources(137), target, tmp_path / "b", toolchain=cortexm_toolchain), x,
                   toolchain=cortexm_toolchain, plugin_dir=plugin_dir).inferences[0]
    assert more.ops[1] - base.ops[1] == 137
    assert (more.ops[0], more.ops[2]) == (base.ops[0], base.ops[2])
    assert more.instructions - base.instructions == 137
    assert more.glue == base.glue > 0


def test_without_hook_counts_whole_inferences(cortexm_toolchain, plugin_dir, tmp_path):
    fw = build_firmware(_sources(10, hook=False), "cortex-m4", tmp_path, toolchain=cortexm_toolchain)
    assert not fw.per_op_markers
    run = emulate(fw, np.ones((2, 16), dtype=np.int8), toolchain=cortexm_toolchain, plugin_dir=plugin_dir)
    assert all(inf.ops == () and inf.instructions > 64 and inf.glue == inf.instructions for inf in run.inferences)


def test_section_sizes_hold_weights_and_arena(cortexm_toolchain, tmp_path):
    fw = build_firmware(_sources(0, arena=5000), "cortex-m4", tmp_path, toolchain=cortexm_toolchain)
    assert fw.arena_bytes == 5000 and fw.input_bytes == 16 and fw.output_bytes == 4
    assert fw.model_size.rodata >= 64  # the 4 x 16 int8 weights
    assert fw.size.bss >= 5000 + 16 + 4  # arena + input + output buffers of the harness
    assert fw.size.flash == fw.size.text + fw.size.rodata + fw.size.data
    assert fw.size.stack > 0 and fw.size.ram == fw.size.data + fw.size.bss


def test_fault_is_an_error_not_a_result(cortexm_toolchain, plugin_dir, tmp_path):
    bad = _sources(0)
    src = bad.source.replace("return 0;\n}", "return *(volatile int *)0xFFFFFFF0u;\n}")
    fw = build_firmware(ModelSources(bad.header, src), "cortex-m4", tmp_path, toolchain=cortexm_toolchain)
    with pytest.raises(ToolchainError, match="fault"):
        emulate(fw, np.zeros(16, dtype=np.int8), toolchain=cortexm_toolchain, plugin_dir=plugin_dir)


def test_model_error_code_is_reported(cortexm_toolchain, plugin_dir, tmp_path):
    bad = _sources(0)
    fw = build_firmware(ModelSources(bad.header, bad.source.replace("return 0;\n}", "return 7;\n}")),
                        "cortex-m4", tmp_path, toolchain=cortexm_toolchain)
    with pytest.raises(ToolchainError, match="model returned an error"):
        emulate(fw, np.zeros(16, dtype=np.int8), count=False, toolchain=cortexm_toolchain)


def test_compile_error_is_reported(cortexm_toolchain, tmp_path):
    with pytest.raises(ToolchainError, match="compiling tinyevo_model.c"):
        build_firmware(ModelSources(HEADER.format(arena=4), "int x = ;"), "cortex-m7", tmp_path,
                       toolchain=cortexm_toolchain)
