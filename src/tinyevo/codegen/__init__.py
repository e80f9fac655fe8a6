"""Native int8 C runtime: ``.tflite`` -> a self-contained C99 model on tinyevo's own memory plan.

:func:`generate` reads an int8 ``.tflite`` (the source of truth for weights and quantisation), lays the
activations out in one arena with the ``native`` planner (:mod:`tinyevo.cost.native`: the optimal execution
order, in-place depthwise convs / adds / activations) and emits ``tinyevo_model.h`` / ``tinyevo_model.c``:
straight-line calls of C99 kernels that use TFLite-Micro's reference integer arithmetic, so the int8 outputs
equal TFLM's bit for bit. ``TINYEVO_MODEL_ARENA_BYTES`` equals ``estimate_cost(ir,
planner="native").peak_sram_bytes``.

Typical use::

    from tinyevo.codegen import generate, build_host, tflm_outputs, compare

    gen = generate("model.tflite")            # GeneratedModel
    gen.write("out/")                          # out/tinyevo_model.h, out/tinyevo_model.c
    gen.arena_bytes, gen.ops                   # per-op records: kind, MACs, bytes in / out, arena offsets
    native = build_host(gen, "build/").run(x_int8)     # cc -std=c99 -Wall -Wextra -Werror
    compare(native, tflm_outputs(model_bytes, x_int8)).exact

The generated C API::

    #define TINYEVO_MODEL_ARENA_BYTES, _INPUT_BYTES, _OUTPUT_BYTES, _NUM_OPS, _INPUT_OFFSET, _OUTPUT_OFFSET
    int tinyevo_model_invoke(const int8_t *input, int8_t *output, uint8_t *arena);  /* 0 on success */
    int8_t *tinyevo_model_input(uint8_t *arena);               /* the input inside the arena (zero copy) */
    const int8_t *tinyevo_model_output(const uint8_t *arena);

Compiled with ``-DTINYEVO_MODEL_OP_HOOKS`` every kernel calls ``void tinyevo_model_op_hook(int op, int end)``
before (``end = 0``) and after (``end = 1``) it runs, ``op`` being the index into :attr:`GeneratedModel.ops`
(per-op instruction counts on an emulator).

:func:`check_network` (module :mod:`tinyevo.codegen.check`) does the whole round trip for an IR with random
weights: ``.tflite`` export, C generation, host build, comparison with TFLM, arena vs the cost model.
The other names are imported on first use; nothing here imports torch (the TFLM child process imports this
package).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tinyevo.codegen.errors import CodegenError

# imported eagerly: the submodule ``tinyevo.codegen.generate`` would otherwise shadow the function of that name
# once something imports the submodule (numpy and the cost model only, no torch)
from tinyevo.codegen.generate import generate

if TYPE_CHECKING:
    from tinyevo.codegen.check import NetworkCheck, check_network
    from tinyevo.codegen.generate import SUPPORTED_OPS, GeneratedModel, OpRecord, graph_from_tflite
    from tinyevo.codegen.host import (
        BitExact,
        HostBuild,
        build_host,
        check_bit_exact,
        compare,
        find_cc,
        quantize_input,
        tflm_outputs,
    )

_LAZY = {
    "NetworkCheck": "check", "check_network": "check",
    "SUPPORTED_OPS": "generate", "GeneratedModel": "generate", "OpRecord": "generate",
    "graph_from_tflite": "generate",
    "BitExact": "host", "HostBuild": "host", "build_host": "host", "check_bit_exact": "host",
    "compare": "host",
    "find_cc": "host", "quantize_input": "host", "tflm_outputs": "host",
}

__all__ = [
    "SUPPORTED_OPS", "BitExact", "CodegenError", "GeneratedModel", "HostBuild", "NetworkCheck", "OpRecord",
    "build_host", "check_bit_exact", "check_network", "compare", "find_cc", "generate", "graph_from_tflite",
    "quantize_input", "tflm_outputs",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
