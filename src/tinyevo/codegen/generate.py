"""``.tflite`` -> ``tinyevo_model.h`` / ``tinyevo_model.c``: straight-line calls of the native int8 kernels on
one
arena laid out by the ``native`` planner (:mod:`tinyevo.cost.native`)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from tinyevo.codegen import quant
from tinyevo.codegen.errors import CodegenError
from tinyevo.codegen.tflite_model import ACTIVATIONS, OpQ, TensorQ, TfliteModel, read_tflite
from tinyevo.cost.lowering import DeployGraph, DeployOp, Tensor
from tinyevo.cost.native import NativeLayout, NativePlanner

PREFIX = "tinyevo_model"
SUPPORTED_OPS: tuple[str, ...] = (
    "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN", "SUM",
    "REDUCE_MAX", "ADD", "CONCATENATION", "RESHAPE", "RELU", "RELU6", "PAD", "PADV2", "ZEROS_LIKE", "DIV",
    "QUANTIZE", "TRANSPOSE", "SLICE",
)
# C kernel functions each kernel uses (kernels.c compiles only those: no unused-function warnings)
_KERNEL_DEPS: dict[str, tuple[str, ...]] = {
    "requant": ("srdhm", "rdbp"), "conv": ("requant", "clamp"), "dwconv": ("dw_acc", "requant", "clamp"),
    "dwconv_inplace": ("dw_acc", "requant", "clamp"), "fc": ("requant", "clamp"), "pool": ("clamp",),
    "reduce": ("requant", "clamp"), "add": ("requant", "clamp"), "relu": ("requant", "clamp"),
    "clamp_copy": ("clamp",), "reciprocal": ("srdhm",), "div": ("reciprocal", "srdhm", "rdbp", "clamp"),
    "quantize": ("requant", "clamp"),
}
_OP_CLASS = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "depthwise", "FULLY_CONNECTED": "dense",
             "AVERAGE_POOL_2D": "pool", "MAX_POOL_2D": "pool", "MEAN": "pool", "SUM": "pool",
             "REDUCE_MAX": "pool"}


@dataclass(frozen=True)
class OpRecord:
    """One kernel call of the generated model, in execution order (for profiles: ``tinyevo profile``).

    ``inputs`` / ``output``: tensor names (``t<index in the .tflite>``); ``input_offsets`` /
    ``output_offset``: arena offsets; ``inplace_of``: the input tensor the output overwrites (in place), if
    any; ``scratch``: (offset, bytes) of its scratch buffer, if any.
    """

    index: int
    kind: str  # TFLite builtin name, e.g. CONV_2D
    op_class: str  # conv / pointwise / depthwise / dense / pool / elementwise (the cost model's classes)
    tflite_index: int  # the operator's position in the .tflite
    output: str
    inputs: tuple[str, ...]
    output_shape: tuple[int, ...]
    macs: int
    bytes_in: int
    bytes_out: int
    weight_bytes: int  # constants read: weights, biases, per-channel multipliers and shifts
    input_offsets: tuple[int, ...]
    output_offset: int
    inplace_of: str | None = None
    scratch: tuple[int, int] | None = None

    def as_json(self) -> dict[str, object]:
        return {"index": self.index, "kind": self.kind, "op_class": self.op_class,
                "tflite_index": self.tflite_index,
                "output": self.output, "inputs": list(self.inputs), "output_shape": list(self.output_shape),
                "macs": self.macs, "bytes_in": self.bytes_in, "bytes_out": self.bytes_out,
                "weight_bytes": self.weight_bytes, "input_offsets": list(self.input_offsets),
                "output_offset": self.output_offset, "inplace_of": self.inplace_of,
                "scratch": list(self.scratch) if self.scratch else None}


@dataclass(frozen=True)
class GeneratedModel:
    """The generated C source pair and what it needs.

    ``arena_bytes`` is ``TINYEVO_MODEL_ARENA_BYTES`` (= :class:`~tinyevo.cost.native.NativePlanner`'s
    ``peak_bytes`` of the same graph); ``input_offset`` / ``output_offset`` locate the network input and
    output in the arena; ``input_quant`` / ``output_quant`` are (scale, zero point) of the int8 input and
    output.
    """

    h_source: str
    c_source: str
    arena_bytes: int
    input_bytes: int
    output_bytes: int
    input_shape: tuple[int, ...]  # NHWC
    output_shape: tuple[int, ...]
    input_quant: tuple[float, int]
    output_quant: tuple[float, int]
    input_offset: int
    output_offset: int
    ops: tuple[OpRecord, ...]
    weight_bytes: int  # bytes of all static const arrays
    prefix: str = PREFIX
    layout: NativeLayout | None = field(default=None, repr=False, compare=False)

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.ops)

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``<prefix>.h`` and ``<prefix>.c`` into ``out_dir``; returns their paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        h, c = out / f"{self.prefix}.h", out / f"{self.prefix}.c"
        h.write_text(self.h_source)
        c.write_text(self.c_source)
        return h, c


def graph_from_tflite(model: TfliteModel) -> DeployGraph:
    """The activation graph of ``model`` as the cost model's :class:`~tinyevo.cost.lowering.DeployGraph`
    (tensors ``t<index>``, shapes ``(C, H, W)``), which the ``native`` planner lays out."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise CodegenError("the native runtime supports models with one input and one output")
    tensors: dict[str, Tensor] = {}

    def add(t: TensorQ) -> str:
        name = f"t{t.index}"
        tensors[name] = Tensor(name, t.chw, t.nbytes)
        return name

    first = add(model.tensor(model.inputs[0]))
    ops = []
    for op in model.ops:
        if op.kind not in SUPPORTED_OPS:
            raise CodegenError(f"the native runtime has no kernel for {op.kind} (supported: "
                               f"{', '.join(SUPPORTED_OPS)})")
        if len(op.outputs) != 1:
            raise CodegenError(f"{op.kind} with {len(op.outputs)} outputs is not supported")
        out = add(model.tensor(op.outputs[0]))
        ins = tuple(f"t{t}" for t in model.activations(op))
        ops.append(DeployOp(out, op.kind, _op_class(model, op), (out,), ins, 0, 0, 0, 0, 0))
    return DeployGraph(precision="int8", ops=tuple(ops), tensors=tensors, input=first,
                       output=f"t{model.outputs[0]}", tensor_of={first: first})


def _op_class(model: TfliteModel, op: OpQ) -> str:
    if op.kind == "CONV_2D":
        f = model.tensor(op.inputs[1]).shape
        return "pointwise" if f[1] == f[2] == 1 else "conv"
    return _OP_CLASS.get(op.kind, "elementwise")


def generate(model: bytes | str | Path, *, planner: NativePlanner | None = None, prefix: str = PREFIX,
             source: str = "") -> GeneratedModel:
    """Generate the native C model of the int8 ``.tflite`` ``model`` (bytes or a path).

    ``planner`` lays out the arena (default :class:`~tinyevo.cost.native.NativePlanner`); ``prefix`` names the
    files, the macros (upper case) and the functions; ``source`` is a line for the files' header comment.
    Raises :class:`~tinyevo.codegen.errors.CodegenError` for an op or quantisation without a native kernel.
    """
    data = Path(model).read_bytes() if isinstance(model, (str, Path)) else bytes(model)
    tm = fold_duplicated_channels(fold_layout_transposes(read_tflite(data)))
    graph = graph_from_tflite(tm)
    layout = (planner or NativePlanner()).layout(graph)
    return _Emitter(tm, layout, prefix, source).run()


#: Element-wise kernels that commute with a layout permutation (see :func:`fold_layout_transposes`).
_ELEMENTWISE_1 = frozenset({"QUANTIZE"})


def _perm(model: TfliteModel, op: OpQ) -> tuple[int, ...] | None:
    """The constant permutation of a ``TRANSPOSE`` op (None when it is not constant)."""
    if len(op.inputs) < 2 or op.inputs[1] < 0:
        return None
    p = model.tensor(op.inputs[1])
    return None if p.data is None else tuple(int(v) for v in np.asarray(p.data).reshape(-1))


def _only_reader(model: TfliteModel) -> Callable[[int], OpQ | None]:
    """``f(t)``: the one op that reads tensor ``t``, or None when ``t`` has other readers or is a model output."""
    consumers: dict[int, list[OpQ]] = {}
    for op in model.ops:
        for t in model.activations(op):
            consumers.setdefault(t, []).append(op)
    outputs = set(model.outputs)

    def only_reader(t: int) -> OpQ | None:
        readers = consumers.get(t, [])
        return readers[0] if len(readers) == 1 and t not in outputs else None

    return only_reader


def _with_replaced(model: TfliteModel, replaced: dict[int, OpQ | None]) -> TfliteModel:
    """``model`` with op ``i`` replaced by ``replaced[i]`` (dropped where that is None)."""
    if not replaced:
        return model
    ops = tuple(replaced.get(op.index, op) for op in model.ops)
    return TfliteModel(model.tensors, tuple(op for op in ops if op is not None), model.inputs, model.outputs)


def fold_layout_transposes(model: TfliteModel) -> TfliteModel:
    """``model`` with every ``TRANSPOSE(p) -> QUANTIZE -> TRANSPOSE(p^-1)`` chain replaced by the ``QUANTIZE``
    alone, on the first transpose's input and writing the second one's output.

    The exporter emits that chain when a dense layer reads a pool directly: torch flattens NCHW, so the
    converter transposes the NHWC pool output to NCHW, requantises it there (the dense layer's input has its own
    quantisation parameters, the pool shares its input's) and transposes back before the ``FULLY_CONNECTED``
    (whose weights it has already permuted). A requantisation is element-wise, so moving it across a
    permutation and its inverse gives the same bytes in the same places: no copy, no extra buffer. The
    intermediate tensors must have no other reader and not be model outputs.
    """
    only_reader = _only_reader(model)
    replaced: dict[int, OpQ | None] = {}  # op index -> its replacement (None: dropped)
    for t1 in model.ops:
        if t1.kind != "TRANSPOSE" or t1.index in replaced or len(t1.outputs) != 1:
            continue
        p = _perm(model, t1)
        mid = only_reader(t1.outputs[0])
        if p is None or mid is None or mid.kind not in _ELEMENTWISE_1 or len(mid.outputs) != 1:
            continue
        t2 = only_reader(mid.outputs[0])
        q = _perm(model, t2) if t2 is not None and t2.kind == "TRANSPOSE" else None
        if t2 is None or q is None or len(q) != len(p) or any(p[q[i]] != i for i in range(len(p))):
            continue
        replaced[t1.index] = None
        replaced[t2.index] = None
        replaced[mid.index] = OpQ(mid.index, mid.kind, (t1.inputs[0], *mid.inputs[1:]), t2.outputs,
                                  mid.options)
    return _with_replaced(model, replaced)


#: Kernels that compute each channel from the same channel of their input alone (a pool).
_PER_CHANNEL = frozenset({"AVERAGE_POOL_2D", "MAX_POOL_2D"})


def _same_q(a: TensorQ, b: TensorQ) -> bool:
    return a.scales == b.scales and a.zero_points == b.zero_points


def fold_duplicated_channels(model: TfliteModel) -> TfliteModel:
    """``model`` with every ``CONCATENATION(x, x, ...) -> pool -> SLICE`` chain replaced by the pool alone, on
    ``x`` and writing the ``SLICE``'s output.

    The exporter emits that chain for a padded strided average pool of a 1-channel tensor
    (:class:`tinyevo.deploy.model._TwoChannelPool`: the converter cannot lower the 1-channel pool to an
    ``AVERAGE_POOL_2D``, so it pools two copies and keeps one). A pool computes each channel from that channel
    alone, so a slice of exactly one copy is the pool of ``x``: the same bytes, without the copies. The chain
    folds when the concatenation is along channels of copies of one tensor ``x`` (C channels each), the slice
    keeps all of N, H and W and channels ``[j*C, (j+1)*C)``, the quantisation is the same all along, and the
    intermediate tensors have no other reader and are not model outputs.
    """
    only_reader = _only_reader(model)
    replaced: dict[int, OpQ | None] = {}
    for cat in model.ops:
        if cat.kind != "CONCATENATION" or len(cat.outputs) != 1 or len(set(cat.inputs)) != 1:
            continue
        x, y = model.tensor(cat.inputs[0]), model.tensor(cat.outputs[0])
        rank = len(y.shape)
        if x.constant or rank != 4 or int(cat.options.get("axis", -1)) % rank != 3 or \
                int(cat.options.get("fusedActivationFunction", 0)) != 0 or not _same_q(x, y):
            continue
        pool = only_reader(cat.outputs[0])
        if pool is None or pool.kind not in _PER_CHANNEL or len(pool.outputs) != 1 or pool.inputs[0] != y.index:
            continue
        p = model.tensor(pool.outputs[0])
        sl = only_reader(pool.outputs[0])
        if sl is None or sl.kind != "SLICE" or len(sl.inputs) != 3 or not _same_q(y, p):
            continue
        out = model.tensor(sl.outputs[0])
        b, n = model.tensor(sl.inputs[1]).data, model.tensor(sl.inputs[2]).data
        c = x.shape[3]
        if b is None or n is None or not _same_q(p, out) or len(p.shape) != 4:
            continue
        begin = [int(v) for v in np.asarray(b).reshape(-1)]
        if len(begin) != 4 or begin[:3] != [0, 0, 0] or begin[3] % c or tuple(out.shape) != (*p.shape[:3], c):
            continue
        replaced[cat.index] = None
        replaced[sl.index] = None
        replaced[pool.index] = OpQ(pool.index, pool.kind, (x.index, *pool.inputs[1:]), sl.outputs, pool.options)
    return _with_replaced(model, replaced)


@functools.lru_cache(maxsize=1)
def kernel_source() -> str:
    """The C99 kernels pasted into every generated model."""
    return resources.files("tinyevo.codegen").joinpath("kernels.c").read_text()


def _carray(values: Sequence[int] | np.ndarray, per_line: int = 24) -> str:
    vals = [str(int(v)) for v in np.asarray(values).reshape(-1)]
    lines = [", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line)]
    return "{\n    " + ",\n    ".join(lines) + "\n}" if vals else "{0}"


def _pads(in_size: int, out_size: int, kernel: int, stride: int) -> int:
    """TFLM's ``ComputePadding`` (dilation 1): the leading pad; the extra one of an odd total goes last."""
    return max((out_size - 1) * stride + kernel - in_size, 0) // 2


class _Emitter:
    def __init__(self, model: TfliteModel, layout: NativeLayout, prefix: str, source: str) -> None:
        self.m = model
        self.lay = layout
        self.prefix = prefix
        self.macro = prefix.upper()
        self.source = source
        self.consts: list[str] = []
        self.const_bytes = 0
        self.calls: list[str] = []
        self.records: list[OpRecord] = []
        self.used: set[str] = set()
        self.const_names: set[str] = set()
        self.by_output = {f"t{op.outputs[0]}": op for op in model.ops}

    # --- helpers --------------------------------------------------------------------------------------------
    def use(self, fn: str) -> None:
        if fn not in self.used:
            self.used.add(fn)
            for dep in _KERNEL_DEPS.get(fn, ()):
                self.use(dep)

    def const(self, ctype: str, name: str, values: Sequence[int] | np.ndarray) -> str:
        arr = np.asarray(values).reshape(-1)
        self.consts.append(f"static const {ctype} {name}[{max(len(arr), 1)}] = {_carray(arr)};")
        self.const_bytes += len(arr) * (1 if ctype == "int8_t" else 4)
        return name

    def ptr(self, t: int) -> str:
        tensor = self.m.tensor(t)
        if tensor.constant:  # a constant operand (e.g. the ones map of a padded average pool): flash
            name = f"te_c{t}"
            if name not in self.const_names:
                self.const_names.add(name)
                self.const("int8_t", name, tensor.data)  # type: ignore[arg-type]
            return f"((int8_t *){name})"
        return f"(a + {self.lay.offsets[f't{t}']})"

    def q(self, t: int) -> TensorQ:
        tensor = self.m.tensor(t)
        if tensor.dtype != "int8":
            raise CodegenError(f"tensor {t} is {tensor.dtype}; the native runtime runs int8 activations only")
        if not tensor.scales:
            raise CodegenError(f"tensor {t} has no quantisation parameters")
        return tensor

    @staticmethod
    def nhwc(t: TensorQ) -> tuple[int, int, int]:
        s = t.shape
        if len(s) != 4 or s[0] != 1:
            raise CodegenError(f"expected a batch-1 NHWC tensor, got shape {s}")
        return s[1], s[2], s[3]

    # --- ops ------------------------------------------------------------------------------------------------
    def run(self) -> GeneratedModel:
        for k, name in enumerate(self.lay.order):
            op = self.by_output[name]
            self.emit(k, op)
        tin, tout = self.m.tensor(self.m.inputs[0]), self.m.tensor(self.m.outputs[0])
        for t in (tin, tout):
            self.q(t.index)
        in_off = self.lay.offsets[f"t{tin.index}"]
        out_off = self.lay.offsets[f"t{tout.index}"]
        h = self.header(tin, tout)
        c = self.body(tin, tout, in_off, out_off)
        return GeneratedModel(
            h_source=h, c_source=c, arena_bytes=self.lay.arena_bytes, input_bytes=tin.nbytes,
            output_bytes=tout.nbytes, input_shape=tin.shape, output_shape=tout.shape,
            input_quant=(tin.scale, tin.zero_point), output_quant=(tout.scale, tout.zero_point),
            input_offset=in_off, output_offset=out_off, ops=tuple(self.records),
            weight_bytes=self.const_bytes,
            prefix=self.prefix, layout=self.lay,
        )

    def emit(self, k: int, op: OpQ) -> None:
        out_t = op.outputs[0]
        out_name = f"t{out_t}"
        before = self.const_bytes
        handler = getattr(self, "op_" + op.kind.lower())
        call, macs = handler(k, op)
        acts = self.m.activations(op)
        scratch = self.lay.scratch.get(out_name)
        inplace_of = self.lay.inplace.get(out_name)
        for fn in re.findall(r"\bte_([a-z_]+)\(", call):
            self.use(fn)
        self.calls.append(f"    /* op {k}: {op.kind} -> {out_name}"
                          + (f" (in place over {inplace_of})" if inplace_of else "") + " */\n"
                          f"    TE_OP_BEGIN({k});\n{call}\n    TE_OP_END({k});")
        self.records.append(OpRecord(
            index=k, kind=op.kind, op_class=_op_class(self.m, op), tflite_index=op.index, output=out_name,
            inputs=tuple(f"t{t}" for t in acts), output_shape=self.m.tensor(out_t).shape, macs=macs,
            bytes_in=sum(self.m.tensor(t).nbytes for t in acts), bytes_out=self.m.tensor(out_t).nbytes,
            weight_bytes=self.const_bytes - before,
            input_offsets=tuple(self.lay.offsets[f"t{t}"] for t in acts),
            output_offset=self.lay.offsets[out_name], inplace_of=inplace_of, scratch=scratch,
        ))

    def _act(self, op: OpQ, out: TensorQ) -> tuple[int, int]:
        act = ACTIVATIONS.get(int(op.options.get("fusedActivationFunction", 0) or 0))
        if act is None:
            raise CodegenError(f"{op.kind} has an unsupported fused activation")
        return quant.activation_range(act, out.scale, out.zero_point)

    def _weights(self, k: int, op: OpQ, channels: int) -> tuple[TensorQ, str, str]:
        f = self.m.tensor(op.inputs[1])
        if f.data is None or f.dtype != "int8":
            raise CodegenError(f"{op.kind}: the filter must be a constant int8 tensor")
        if any(z != 0 for z in f.zero_points):
            raise CodegenError(f"{op.kind}: filter zero points must be 0 (symmetric int8 weights)")
        wname = self.const("int8_t", f"te_w{k}", f.data)
        bias = "0"
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            b = self.m.tensor(op.inputs[2])
            if b.data is None or b.dtype != "int32" or b.elements != channels:
                raise CodegenError(f"{op.kind}: the bias must be a constant int32 tensor of {channels} "
                                   "values")
            bias = self.const("int32_t", f"te_b{k}", b.data)
        return f, wname, bias

    def _requant_consts(self, k: int, mult: Sequence[int], shift: Sequence[int]) -> tuple[str, str]:
        return self.const("int32_t", f"te_m{k}", mult), self.const("int32_t", f"te_s{k}", shift)

    def _check_dilation(self, op: OpQ) -> None:
        dilations = (op.options.get("dilationHFactor", 1), op.options.get("dilationWFactor", 1))
        if any(int(d or 1) != 1 for d in dilations):
            raise CodegenError(f"{op.kind} with dilation is not supported")

    def op_conv_2d(self, k: int, op: OpQ) -> tuple[str, int]:
        self._check_dilation(op)
        x, y = self.q(op.inputs[0]), self.q(op.outputs[0])
        ih, iw, ic = self.nhwc(x)
        oh, ow, oc = self.nhwc(y)
        f, wname, bias = self._weights(k, op, oc)
        _o, kh, kw, fic = f.shape
        mult, shift = quant.conv_multipliers(x.scale, f.scales, y.scale, oc)
        m, s = self._requant_consts(k, mult, shift)
        lo, hi = self._act(op, y)
        sh, sw = int(op.options["strideH"]), int(op.options["strideW"])
        ph, pw = _pads(ih, oh, kh, sh), _pads(iw, ow, kw, sw)
        call = (f"    te_conv({self.ptr(x.index)}, {ih}, {iw}, {ic}, {wname}, {bias}, {m}, {s}, "
                f"{self.ptr(y.index)}, {oh}, {ow}, {oc}, {kh}, {kw}, {sh}, {sw}, {ph}, {pw}, {fic}, "
                f"{-x.zero_point}, {y.zero_point}, {lo}, {hi});")
        return call, oh * ow * oc * kh * kw * fic

    def op_depthwise_conv_2d(self, k: int, op: OpQ) -> tuple[str, int]:
        self._check_dilation(op)
        x, y = self.q(op.inputs[0]), self.q(op.outputs[0])
        ih, iw, ic = self.nhwc(x)
        oh, ow, oc = self.nhwc(y)
        f, wname, bias = self._weights(k, op, oc)
        _one, kh, kw, _oc = f.shape
        dm = oc // ic
        mult, shift = quant.conv_multipliers(x.scale, f.scales, y.scale, oc)
        m, s = self._requant_consts(k, mult, shift)
        lo, hi = self._act(op, y)
        sh, sw = int(op.options["strideH"]), int(op.options["strideW"])
        ph, pw = _pads(ih, oh, kh, sh), _pads(iw, ow, kw, sw)
        name = f"t{y.index}"
        tail = f"{kh}, {kw}, {sh}, {sw}, {ph}, {pw}, {-x.zero_point}, {y.zero_point}, {lo}, {hi});"
        if name in self.lay.inplace:
            if dm != 1:
                # the planner never makes such a conv in place
                raise CodegenError("in-place depthwise conv needs depth multiplier 1")
            off, _n = self.lay.scratch[name]
            call = (f"    te_dwconv_inplace({self.ptr(x.index)}, (a + {off}), {ih}, {iw}, {ic}, {wname}, "
                    f"{bias}, {m}, {s}, {oh}, {ow}, " + tail)
        else:
            call = (f"    te_dwconv({self.ptr(x.index)}, {ih}, {iw}, {ic}, {wname}, {bias}, {m}, {s}, "
                    f"{self.ptr(y.index)}, {oh}, {ow}, {dm}, " + tail)
        return call, oh * ow * oc * kh * kw

    def op_fully_connected(self, k: int, op: OpQ) -> tuple[str, int]:
        x, y = self.q(op.inputs[0]), self.q(op.outputs[0])
        f = self.m.tensor(op.inputs[1])
        if len(f.shape) != 2:
            raise CodegenError("FULLY_CONNECTED needs a 2-d filter")
        n_out, n_in = f.shape
        if x.elements != n_in or y.elements != n_out:
            raise CodegenError("FULLY_CONNECTED with a batch larger than 1 is not supported")
        f, wname, bias = self._weights(k, op, n_out)
        if len(f.scales) > 1:
            mult, shift = quant.conv_multipliers(x.scale, f.scales, y.scale, n_out)
        else:
            m0, s0 = quant.dense_per_tensor_multiplier(x.scale, f.scales[0], y.scale)
            mult, shift = [m0] * n_out, [s0] * n_out
        m, s = self._requant_consts(k, mult, shift)
        lo, hi = self._act(op, y)
        call = (f"    te_fc({self.ptr(x.index)}, {n_in}, {wname}, {bias}, {m}, {s}, {self.ptr(y.index)}, "
                f"{n_out}, {-x.zero_point}, {y.zero_point}, {lo}, {hi});")
        return call, n_in * n_out

    def _same_quant(self, op: OpQ, a: TensorQ, b: TensorQ) -> None:
        if a.scale != b.scale or a.zero_point != b.zero_point:
            raise CodegenError(f"{op.kind} with different input and output quantisation is not supported")

    def _pool(self, k: int, op: OpQ, avg: int) -> tuple[str, int]:
        x, y = self.q(op.inputs[0]), self.q(op.outputs[0])
        self._same_quant(op, x, y)
        ih, iw, c = self.nhwc(x)
        oh, ow, _c = self.nhwc(y)
        kh, kw = int(op.options["filterHeight"]), int(op.options["filterWidth"])
        sh, sw = int(op.options["strideH"]), int(op.options["strideW"])
        lo, hi = self._act(op, y)
        call = (f"    te_pool({self.ptr(x.index)}, {ih}, {iw}, {c}, {self.ptr(y.index)}, {oh}, {ow}, {kh}, "
                f"{kw}, {sh}, {sw}, {_pads(ih, oh, kh, sh)}, {_pads(iw, ow, kw, sw)}, {avg}, {lo}, {hi});")
        return call, 0

    def op_average_pool_2d(self, k: int, op: OpQ) -> tuple[str, int]:
        return self._pool(k, op, 1)

    def op_max_pool_2d(self, k: int, op: OpQ) -> tuple[str, int]:
        return self._pool(k, op, 0)

    def _reduce(self, k: int, op: OpQ, mode: int) -> tuple[str, int]:
        x, y = self.q(op.inputs[0]), self.q(op.outputs[0])
        axis_t = self.m.tensor(op.inputs[1])
        if axis_t.data is None:
            raise CodegenError(f"{op.kind} needs constant axes")
        rank = len(x.shape)
        axes = sorted({int(a) % rank for a in np.asarray(axis_t.data).reshape(-1)})
        if not axes or axes != list(range(axes[0], axes[-1] + 1)):
            raise CodegenError(f"{op.kind} over non-contiguous axes {axes} is not supported")
        outer = int(np.prod(x.shape[:axes[0]], dtype=np.int64))
        n = int(np.prod(x.shape[axes[0]:axes[-1] + 1], dtype=np.int64))
        inner = int(np.prod(x.shape[axes[-1] + 1:], dtype=np.int64))
        if mode == 0:
            mult, shift = quant.mean_multiplier(x.scale, y.scale, n)
        elif mode == 1:
            mult, shift = quant.quantize_multiplier(float(x.scale) / float(y.scale))
        else:
            self._same_quant(op, x, y)
            mult, shift = 0, 0
        call = (f"    te_reduce({self.ptr(x.index)}, {outer}, {n}, {inner}, {self.ptr(y.index)}, {mode}, "
                f"{mult}, {shift}, {x.zero_point}, {y.zero_point});")
        return call, 0

    def op_mean(self, k: int, op: OpQ) -> tuple[str, int]:
        return self._reduce(k, op, 0)

    def op_sum(self, k: int, op: OpQ) -> tuple[str, int]:
        return self._reduce(k, op, 1)

    def op_reduce_max(self, k: int, op: OpQ) -> tuple[str, int]:
        return self._reduce(k, op, 2)

    def op_add(self, k: int, op: OpQ) -> tuple[str, int]:
        ta, tb = self.m.activations(op) if len(self.m.activations(op)) == 2 else (None, None)
        if ta is None or tb is None:
            raise CodegenError("ADD with a constant operand is not supported")
        a, b, y = self.q(op.inputs[0]), self.q(op.inputs[1]), self.q(op.outputs[0])
        if a.shape != b.shape or a.shape != y.shape:
            raise CodegenError("ADD with broadcasting is not supported")
        (ma, sa), (mb, sb), (mo, so) = quant.add_params(a.scale, b.scale, y.scale)
        lo, hi = self._act(op, y)
        call = (f"    te_add({self.ptr(a.index)}, {self.ptr(b.index)}, {self.ptr(y.index)}, {y.elements}, "
                f"{-a.zero_point}, {ma}, {sa}, {-b.zero_point}, {mb}, {sb}, {mo}, {so}, {y.zero_point}, "
                f"{lo}, {hi});")
        return call, 0

    def op_div(self, k: int, op: OpQ) -> tuple[str, int]:
        a, b, y = self.q(op.inputs[0]), self.q(op.inputs[1]), self.q(op.outputs[0])
        if a.shape != y.shape or len(b.shape) != len(a.shape) or b.shape[:-1] != a.shape[:-1] or \
                b.shape[-1] not in (1, a.shape[-1]):
            raise CodegenError("DIV is supported for equal shapes or a divisor broadcast over channels")
        m, s = quant.quantize_multiplier(float(quant.f32(a.scale) / (quant.f32(b.scale) * quant.f32(y.scale))))
        lo, hi = self._act(op, y)
        c = a.shape[-1]
        call = (f"    te_div({self.ptr(a.index)}, {self.ptr(b.index)}, {self.ptr(y.index)}, {a.elements // c}, {c}, "
                f"{b.shape[-1]}, {-a.zero_point}, {-b.zero_point}, {y.zero_point}, {m}, {s}, {lo}, {hi});")
        return call, 0

    def op_concatenation(self, k: int, op: OpQ) -> tuple[str, int]:
        y = self.q(op.outputs[0])
        ins = [self.q(t) for t in op.inputs]
        if any(t.constant for t in ins):
            raise CodegenError("CONCATENATION of a constant is not supported")
        for t in ins:
            self._same_quant(op, t, y)
        rank = len(y.shape)
        axis = int(op.options.get("axis", -1)) % rank
        if any(len(t.shape) != rank or t.shape[:axis] != y.shape[:axis] or t.shape[axis + 1:] != y.shape[axis + 1:]
               for t in ins) or sum(t.shape[axis] for t in ins) != y.shape[axis]:
            raise CodegenError("CONCATENATION inputs must match the output outside the concatenation axis")
        lo, hi = self._act(op, y)
        if (lo, hi) != (-128, 127):
            raise CodegenError("CONCATENATION with a fused activation is not supported")
        # [outer][axis][inner]: each input contributes shape[axis] * inner bytes to each of the outer rows
        pixels = int(np.prod(y.shape[:axis], dtype=np.int64))
        inner = int(np.prod(y.shape[axis + 1:], dtype=np.int64))
        ptrs = ", ".join(f"(const int8_t *){self.ptr(t.index)}" for t in ins)
        chans = ", ".join(str(t.shape[axis] * inner) for t in ins)
        call = (f"    {{\n        const int8_t *const ins[{len(ins)}] = {{{ptrs}}};\n"
                f"        static const int ch[{len(ins)}] = {{{chans}}};\n"
                f"        te_concat(ins, ch, {len(ins)}, {self.ptr(y.index)}, {pixels});\n    }}")
        return call, 0

    def _copy(self, x: TensorQ, y: TensorQ) -> str:
        if self.lay.offsets[f"t{x.index}"] == self.lay.offsets[f"t{y.index}"]:
            return "    /* in place: nothing to copy */"
        return f"    memmove({self.ptr(y.index)}, {self.ptr(x.index)}, {y.nbytes});"

    def op_reshape(self, k: int, op: OpQ) -> tuple[str, int]:
        x, y = self.q(op.inputs[0]), self.q(op.outputs[0])
        self._same_quant(op, x, y)
        return self._copy(x, y), 0

    def op_relu(self, k: int, op: OpQ) -> tuple[str, int]:
        x, y = self.q(op.inputs[0]), self.q(op.outputs[0])
        m, s = quant.relu_multiplier(x.scale, y.scale)
        lo = max(-128, y.zero_point)
        call = (f"    te_relu({self.ptr(x.index)}, {self.ptr(y.index)}, {y.elements}, {x.zero_point}, {m}, "
                f"{s}, {y.zero_point}, {lo}, 127);")
        return call, 0

    def op_quantize(self, k: int, op: OpQ) -> tuple[str, int]:
        x, y = self.q(op.inputs[0]), self.q(op.outputs[0])
        if x.elements != y.elements:
            raise CodegenError("QUANTIZE must keep the number of elements")
        m, s = quant.requantize_multiplier(x.scale, y.scale)
        call = (f"    te_quantize({self.ptr(x.index)}, {self.ptr(y.index)}, {y.elements}, {x.zero_point}, {m}, "
                f"{s}, {y.zero_point});")
        return call, 0

    def op_transpose(self, k: int, op: OpQ) -> tuple[str, int]:
        x, y = self.q(op.inputs[0]), self.q(op.outputs[0])
        self._same_quant(op, x, y)
        perm = _perm(self.m, op)
        rank = len(x.shape)
        if perm is None or sorted(perm) != list(range(rank)) or rank > 4:
            raise CodegenError("TRANSPOSE needs a constant permutation of a tensor of rank <= 4")
        pad = 4 - rank
        dims = (1,) * pad + tuple(x.shape)
        perm4 = tuple(range(pad)) + tuple(v + pad for v in perm)
        call = (f"    {{\n        static const int dims[4] = {{{', '.join(map(str, dims))}}};\n"
                f"        static const int perm[4] = {{{', '.join(map(str, perm4))}}};\n"
                f"        te_transpose({self.ptr(x.index)}, dims, perm, {self.ptr(y.index)});\n    }}")
        return call, 0

    def op_slice(self, k: int, op: OpQ) -> tuple[str, int]:
        x, y = self.q(op.inputs[0]), self.q(op.outputs[0])
        self._same_quant(op, x, y)
        begin_t, size_t = self.m.tensor(op.inputs[1]), self.m.tensor(op.inputs[2])
        rank = len(x.shape)
        if begin_t.data is None or size_t.data is None or rank > 4:
            raise CodegenError("SLICE needs constant begin and size on a tensor of rank <= 4")
        begin = [int(v) for v in np.asarray(begin_t.data).reshape(-1)]
        size = [int(v) for v in np.asarray(size_t.data).reshape(-1)]
        if len(begin) != rank or len(size) != rank:
            raise CodegenError("SLICE's begin and size must have one entry per input dimension")
        size = [d - b if n == -1 else n for d, b, n in zip(x.shape, begin, size, strict=True)]  # -1: to the end
        if any(b < 0 or n < 0 or b + n > d for d, b, n in zip(x.shape, begin, size, strict=True)) or \
                tuple(size) != tuple(y.shape):
            raise CodegenError(f"SLICE begin {begin} size {size} does not fit input {x.shape} / output {y.shape}")
        pad = 4 - rank
        dims, begin4, size4 = (1,) * pad + tuple(x.shape), (0,) * pad + tuple(begin), (1,) * pad + tuple(size)
        call = (f"    {{\n        static const int dims[4] = {{{', '.join(map(str, dims))}}};\n"
                f"        static const int begin[4] = {{{', '.join(map(str, begin4))}}};\n"
                f"        static const int size[4] = {{{', '.join(map(str, size4))}}};\n"
                f"        te_slice({self.ptr(x.index)}, dims, begin, size, {self.ptr(y.index)});\n    }}")
        return call, 0

    def op_relu6(self, k: int, op: OpQ) -> tuple[str, int]:
        x, y = self.q(op.inputs[0]), self.q(op.outputs[0])
        lo, hi = quant.relu6_bounds(x.scale, x.zero_point)
        return f"    te_clamp_copy({self.ptr(x.index)}, {self.ptr(y.index)}, {y.elements}, {lo}, {hi});", 0

    def op_zeros_like(self, k: int, op: OpQ) -> tuple[str, int]:
        y = self.m.tensor(op.outputs[0])
        return f"    memset({self.ptr(y.index)}, 0, {y.nbytes});", 0

    def _pad(self, k: int, op: OpQ, value: int) -> tuple[str, int]:
        x, y = self.q(op.inputs[0]), self.q(op.outputs[0])
        p = self.m.tensor(op.inputs[1])
        if p.data is None:
            raise CodegenError(f"{op.kind} needs constant paddings")
        pads = np.asarray(p.data).reshape(-1, 2)
        if pads.shape[0] != 4 or pads[0].any() or pads[3].any():
            raise CodegenError(f"{op.kind} is supported in H and W of an NHWC tensor only")
        ih, iw, c = self.nhwc(x)
        (top, bottom), (left, right) = (int(v) for v in pads[1]), (int(v) for v in pads[2])
        call = (f"    te_pad({self.ptr(x.index)}, {ih}, {iw}, {c}, {self.ptr(y.index)}, {top}, {bottom}, "
                f"{left}, {right}, (int8_t){value});")
        return call, 0

    def op_pad(self, k: int, op: OpQ) -> tuple[str, int]:
        return self._pad(k, op, self.q(op.outputs[0]).zero_point)

    def op_padv2(self, k: int, op: OpQ) -> tuple[str, int]:
        v = self.m.tensor(op.inputs[2])
        if v.data is None:
            raise CodegenError("PADV2 needs a constant pad value")
        return self._pad(k, op, int(np.asarray(v.data).reshape(-1)[0]))

    # --- files ----------------------------------------------------------------------------------------------
    def header(self, tin: TensorQ, tout: TensorQ) -> str:
        p, mac = self.prefix, self.macro
        guard = f"{mac}_H"
        return f"""/* {p}.h: generated by tinyevo (native int8 runtime). {self.source}
 * Input: int8 NHWC {list(tin.shape)}, scale {tin.scale!r}, zero point {tin.zero_point}.
 * Output: int8 {list(tout.shape)}, scale {tout.scale!r}, zero point {tout.zero_point}. */
#ifndef {guard}
#define {guard}

#include <stdint.h>

#define {mac}_ARENA_BYTES   {self.lay.arena_bytes}  /* the whole RAM the model needs: activations + scratch */
#define {mac}_INPUT_BYTES   {tin.nbytes}
#define {mac}_OUTPUT_BYTES  {tout.nbytes}
#define {mac}_NUM_OPS       {len(self.lay.order)}
#define {mac}_INPUT_OFFSET  {self.lay.offsets[f"t{tin.index}"]}  /* where the input lives in the arena */
#define {mac}_OUTPUT_OFFSET {self.lay.offsets[f"t{tout.index}"]}

/* Runs the model: copies `input` into the arena (skipped when it is already there, see {p}_input), runs every
 * kernel and copies the output to `output` (skipped when it is {p}_output). `arena` holds
 * {mac}_ARENA_BYTES bytes, 4-byte aligned. Returns 0 on success. */
int {p}_invoke(const int8_t *input, int8_t *output, uint8_t *arena);
/* The input / output tensors inside the arena (to fill / read them without a copy). */
int8_t *{p}_input(uint8_t *arena);
const int8_t *{p}_output(const uint8_t *arena);

#endif /* {guard} */
"""

    def body(self, tin: TensorQ, tout: TensorQ, in_off: int, out_off: int) -> str:
        p, mac = self.prefix, self.macro
        calls = "\n".join(self.calls)
        consts = "\n".join(self.consts)
        uses = "\n".join(f"#define TE_USE_{fn.upper()} 1" for fn in sorted(self.used))
        return f"""/* {p}.c: generated by tinyevo (native int8 runtime). {self.source}
 * Kernels in execution order on one arena; weights and requantisation constants are static const (flash).
 * Define {mac}_OP_HOOKS to have every kernel call `void {p}_op_hook(int op, int end)` before (end = 0) and
 * after (end = 1) it runs (per-op profiling). */
#include <stdint.h>
#include <string.h>

#include "{p}.h"

#ifdef {mac}_OP_HOOKS
void {p}_op_hook(int op, int end);
#define TE_OP_BEGIN(i) {p}_op_hook((i), 0)
#define TE_OP_END(i) {p}_op_hook((i), 1)
#else
#define TE_OP_BEGIN(i) ((void)0)
#define TE_OP_END(i) ((void)0)
#endif

{uses}
{kernel_source()}
/* ---- constants ---- */
{consts}

/* ---- model ---- */
int8_t *{p}_input(uint8_t *arena)
{{
    return (int8_t *)arena + {in_off};
}}

const int8_t *{p}_output(const uint8_t *arena)
{{
    return (const int8_t *)arena + {out_off};
}}

int {p}_invoke(const int8_t *input, int8_t *output, uint8_t *arena)
{{
    int8_t *const a = (int8_t *)arena;
    if (arena == 0) {{
        return 1;
    }}
    if (input != 0 && input != a + {in_off}) {{
        memmove(a + {in_off}, input, {tin.nbytes});
    }}
{calls}
    if (output != 0 && output != a + {out_off}) {{
        memmove(output, a + {out_off}, {tout.nbytes});
    }}
    return 0;
}}
"""
