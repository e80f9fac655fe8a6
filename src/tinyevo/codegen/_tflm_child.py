"""Child process running int8 inputs through TFLite-Micro; started by
:func:`tinyevo.codegen.host.tflm_outputs`.

``python -m tinyevo.codegen._tflm_child MODEL X.npy Y.npy --arena N``: loads ``MODEL`` with an ``N``-byte
arena, runs every row of ``X`` (int8, ``[rows, ...]`` in the model's input layout) and saves the int8 outputs
``[rows, output bytes]`` to ``Y``. Imports numpy and ``tflite_micro`` only.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tinyevo.codegen._tflm_child")
    p.add_argument("model")
    p.add_argument("x")
    p.add_argument("y")
    p.add_argument("--arena", type=int, required=True)
    args = p.parse_args(argv)
    from tinyevo.deploy.tflm import _captured_fds, _runtime

    runtime = _runtime()
    with open(args.model, "rb") as f:
        model = f.read()
    with _captured_fds(2):
        it = runtime.Interpreter.from_bytes(model, arena_size=args.arena)
    d = it.get_input_details(0)
    shape = tuple(int(v) for v in d["shape"])
    x = np.load(args.x)
    outs = []
    for row in x:
        it.set_input(np.asarray(row, dtype=d["dtype"]).reshape(shape), 0)
        it.invoke()
        outs.append(np.asarray(it.get_output(0)).reshape(-1).copy())
    np.save(args.y, np.stack(outs) if outs else np.zeros((0, 0), np.int8))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
