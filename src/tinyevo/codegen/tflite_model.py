"""Read an int8 ``.tflite`` into typed records: the source of truth for the generated C (weights,
quantisation,
ops in the flatbuffer's order). Parsed with the flatbuffer schema shipped in ``tflite-micro``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinyevo.codegen.errors import CodegenError
from tinyevo.deploy.errors import require

_DTYPES = {0: np.float32, 2: np.int32, 3: np.uint8, 4: np.int64, 7: np.int16, 9: np.int8}
ACTIVATIONS = {0: "none", 1: "relu", 2: "relu_n1_to_1", 3: "relu6"}


@dataclass(frozen=True)
class TensorQ:
    """One tensor: shape, element type, quantisation (per tensor: one scale; per channel: one per channel
    along
    ``axis``) and, for constants, the data."""

    index: int
    shape: tuple[int, ...]
    dtype: str
    scales: tuple[float, ...] = ()  # float32 values as Python floats (exact)
    zero_points: tuple[int, ...] = ()
    axis: int = 0
    data: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def constant(self) -> bool:
        return self.data is not None

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.elements * np.dtype(self.dtype).itemsize

    @property
    def scale(self) -> float:
        if not self.scales:
            raise CodegenError(f"tensor {self.index} is not quantised")
        return self.scales[0]

    @property
    def zero_point(self) -> int:
        return self.zero_points[0] if self.zero_points else 0

    @property
    def chw(self) -> tuple[int, int, int]:
        """The shape as the cost model's ``(C, H, W)``: NHWC ``[1, H, W, C]``, ``[1, F]`` -> ``(F, 1, 1)``."""
        s = self.shape
        if len(s) == 4:
            return (s[3], s[1], s[2])
        if len(s) == 2:
            return (s[1], 1, 1)
        if len(s) == 1:
            return (s[0], 1, 1)
        raise CodegenError(f"tensor {self.index} has an unsupported rank-{len(s)} shape {s}")


@dataclass(frozen=True)
class OpQ:
    """One operator: its builtin name, input / output tensor indices (-1 = optional input left out) and
    options."""

    index: int
    kind: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class TfliteModel:
    tensors: tuple[TensorQ, ...]
    ops: tuple[OpQ, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def tensor(self, i: int) -> TensorQ:
        return self.tensors[i]

    def activations(self, op: OpQ) -> tuple[int, ...]:
        """The op's non-constant inputs (activation tensors), in order."""
        return tuple(t for t in op.inputs if t >= 0 and not self.tensors[t].constant)


_OPTION_FIELDS = ("padding", "strideW", "strideH", "dilationWFactor", "dilationHFactor", "depthMultiplier",
                  "fusedActivationFunction", "filterWidth", "filterHeight", "keepNumDims", "keepDims", "axis",
                  "newShape", "weightsFormat", "potScaleInt16")


def read_tflite(model: bytes) -> TfliteModel:
    """Parse the first subgraph of ``model``."""
    require("tflite_micro", purpose="reading .tflite files for code generation")
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    try:
        obj = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(model), 0))
    except Exception as exc:
        raise CodegenError(f"not a valid .tflite flatbuffer ({exc})") from exc
    if not obj.subgraphs:
        raise CodegenError("the .tflite has no subgraph")
    if len(obj.subgraphs) > 1:
        raise CodegenError("the .tflite has several subgraphs; the native runtime supports one")
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    sg = obj.subgraphs[0]
    tensors = []
    for i, t in enumerate(sg.tensors):
        dtype = _DTYPES.get(int(t.type))
        if dtype is None:
            raise CodegenError(f"tensor {i} has an unsupported type {t.type}")
        shape = tuple(int(v) for v in (t.shape if t.shape is not None else ()))
        data = None
        buf = obj.buffers[t.buffer] if obj.buffers is not None and 0 < t.buffer < len(obj.buffers) else None
        if buf is not None:
            raw: bytes | None = None
            if buf.data is not None and len(buf.data):
                raw = bytes(np.asarray(buf.data, dtype=np.uint8))
            elif getattr(buf, "offset", 0) and getattr(buf, "size", 0):
                raw = model[int(buf.offset):int(buf.offset) + int(buf.size)]
            if raw is not None:
                data = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)
                data = data.reshape(shape) if shape else data
        q = t.quantization
        scales: tuple[float, ...] = ()
        zps: tuple[int, ...] = ()
        axis = 0
        if q is not None and q.scale is not None and len(q.scale):
            scales = tuple(float(np.float32(s)) for s in q.scale)
            zps = tuple(int(z) for z in (q.zeroPoint if q.zeroPoint is not None else [0] * len(scales)))
            axis = int(q.quantizedDimension or 0)
        tensors.append(TensorQ(i, shape, np.dtype(dtype).name, scales, zps, axis, data))
    ops = []
    for j, op in enumerate(sg.operators or ()):
        code = obj.operatorCodes[op.opcodeIndex]
        kind = names.get(max(int(code.builtinCode), int(code.deprecatedBuiltinCode)), f"OP{code.builtinCode}")
        options: dict[str, Any] = {}
        o = op.builtinOptions
        if o is not None:
            for name in _OPTION_FIELDS:
                if hasattr(o, name):
                    v = getattr(o, name)
                    options[name] = tuple(int(x) for x in v) if isinstance(v, (list, np.ndarray)) else v
        ops.append(OpQ(j, kind, tuple(int(v) for v in (op.inputs if op.inputs is not None else ())),
                       tuple(int(v) for v in (op.outputs if op.outputs is not None else ())), options))
    return TfliteModel(tuple(tensors), tuple(ops), tuple(int(v) for v in sg.inputs),
                       tuple(int(v) for v in sg.outputs))
