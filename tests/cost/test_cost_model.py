"""Cost model: lowering rules, MACs / params / flash counting, latency and energy, report contract."""

from __future__ import annotations

import math

import pytest

from tinyevo.cost import FlatbufferLayout, MCUCostModel, estimate_cost, lower
from tinyevo.devices import CoreModel, DeviceProfile, get_device
from tinyevo.errors import ConfigError
from tinyevo.ir import (
    Act,
    Add,
    ArchIR,
    Conv2d,
    Dense,
    DepthwiseConv2d,
    GlobalPool,
    GraphBuilder,
    Identity,
    Pool2d,
)

ZERO_LAYOUT = FlatbufferLayout(fixed=0, per_op=0, per_opcode=0, per_tensor=0, per_buffer=0, const_alignment=0,
                               per_quantized_tensor=0, per_channel=0)


def chain3() -> ArchIR:
    b = GraphBuilder((1, 8, 8))
    x = b.add(Conv2d(4, kernel=3), b.input, name="c1")
    x = b.add(Conv2d(8, kernel=3, stride=2), x, name="c2")
    x = b.add(GlobalPool(), x, name="gp")
    return b.build(b.add(Dense(10), x, name="fc"))


def test_chain_macs_params_flash() -> None:
    r = estimate_cost(chain3(), layout=ZERO_LAYOUT)
    # MACs: c1 8*8*4 * 1*9 = 2304; c2 4*4*8 * 4*9 = 4608; fc 8*10 = 80
    assert r.macs == 2304 + 4608 + 80
    # params: weights + folded-BN / dense biases: (36 + 4) + (288 + 8) + (80 + 10)
    assert r.params == 40 + 296 + 90
    assert [o.macs for o in r.ops] == [2304, 4608, 0, 80]
    # int8 flash without metadata: weights 1 B + biases 4 B + MEAN's int32 axis operand (2 x 4 B)
    assert r.flash_bytes == 404 + 22 * 4 + 8
    f32 = estimate_cost(chain3(), precision="float32", layout=ZERO_LAYOUT)
    assert f32.flash_bytes == 404 * 4 + 22 * 4 + 8
    assert f32.macs == r.macs


def test_weight_bytes_are_weights_at_precision_plus_int32_biases() -> None:
    # chain3: 404 weight elements (36 + 288 + 80) and 22 biases (4 + 8 + 10); metadata and quantisation
    # parameters (the default layout's) do not count
    r = estimate_cost(chain3())
    assert r.weight_bytes == 404 * 1 + 22 * 4
    assert r.as_metrics()["weight_bytes"] == 404 + 88 < r.flash_bytes
    assert estimate_cost(chain3(), precision="float32").weight_bytes == 404 * 4 + 22 * 4


def test_flash_metadata_counting() -> None:
    one = FlatbufferLayout(fixed=1000, per_op=100, per_opcode=10, per_tensor=1, per_buffer=0,
                           const_alignment=0, per_quantized_tensor=0, per_channel=0)
    r = estimate_cost(chain3(), layout=one)
    # 4 kernels, 4 kernel types (c1 reads one channel: DEPTHWISE_CONV_2D; CONV_2D, MEAN, FULLY_CONNECTED),
    # 5 activation + 3 weight + 3 bias tensors + MEAN's axis tensor
    assert r.flash.metadata == 1000 + 4 * 100 + 4 * 10 + 12
    quant = FlatbufferLayout(fixed=0, per_op=0, per_opcode=0, per_tensor=0, per_buffer=0, const_alignment=0,
                             per_quantized_tensor=0, per_channel=1)
    q = estimate_cost(chain3(), layout=quant)
    # per-channel scales of conv weights + biases (2 x (4 + 8)), per-channel dense (2 x 10), 5 activations x 1;
    # the int32 axis tensor has none
    assert q.flash.quantization == 2 * 12 + 2 * 10 + 5
    assert estimate_cost(chain3(), precision="float32", layout=quant).flash.quantization == 0
    default = estimate_cost(chain3())
    assert default.flash_bytes == default.flash.total > r.flash.weights + r.flash.biases


def test_bn_fold_relu_fusion_identity_cse() -> None:
    b = GraphBuilder((2, 8, 8))
    c = b.add(Conv2d(4, kernel=3), b.input, name="conv")
    r = b.add(Act("relu"), c, name="relu")  # fuses into the conv
    i = b.add(Identity(), r, name="skip")  # alias, no kernel
    p1 = b.add(Act("relu6"), i, name="r6a")  # same op, same input ...
    p2 = b.add(Act("relu6"), i, name="r6b")  # ... computed once (CSE)
    ir = b.build(b.add(Add(), p1, p2, r, name="sum"))
    g = lower(ir)
    assert [op.tflite for op in g.ops] == ["CONV_2D", "RELU6", "ADD", "ADD"]
    assert g.ops[0].nodes == ("conv", "relu") and g.ops[0].act == "relu" and g.ops[0].biases == 4
    assert g.tensor_of["skip"] == "relu" and g.tensor_of["r6b"] == "r6a"
    # the 3-input add is two binary ADDs with an intermediate tensor
    assert g.ops[2].inputs == ("r6a", "r6a") and g.ops[3].inputs == ("sum#1", "relu")
    assert g.output == "sum"


def test_relu_not_fused_when_producer_is_shared() -> None:
    b = GraphBuilder((2, 8, 8))
    c = b.add(Conv2d(4, kernel=3), b.input, name="conv")
    r = b.add(Act("relu"), c, name="relu")
    ir = b.build(b.add(Add(), r, c, name="sum"))  # conv output read twice: relu cannot fuse
    assert [op.tflite for op in lower(ir).ops] == ["CONV_2D", "RELU", "ADD"]


def test_depthwise_grouped_conv_and_pools() -> None:
    b = GraphBuilder((8, 8, 8))
    x = b.add(Conv2d(8, kernel=3, groups=8), b.input, name="gdw")  # depthwise written as a grouped conv
    x = b.add(DepthwiseConv2d(kernel=5, stride=2), x, name="dw")
    ir = b.build(b.add(Pool2d("max", kernel=2, stride=2), x, name="mp"))
    g = lower(ir)
    assert [op.tflite for op in g.ops] == ["DEPTHWISE_CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D"]
    assert g.ops[0].macs == 8 * 8 * 8 * 9 and g.ops[1].macs == 8 * 4 * 4 * 25
    assert g.ops[2].macs == 0 and g.ops[2].work == 8 * 2 * 2 * 4


def test_unknown_precision() -> None:
    with pytest.raises(ConfigError, match="precision"):
        estimate_cost(chain3(), precision="int4")


def make_device(**coeffs: float) -> DeviceProfile:
    base = dict(conv=0.0, pointwise=0.0, depthwise=0.0, dense=0.0, pool=0.0, elementwise=0.0, memory=0.0,
                op_overhead=0.0, float32=1.0)
    base.update(coeffs)
    core = CoreModel(name="test-core", **base)
    return DeviceProfile(name="test", core=core, clock_mhz=1.0, sram_bytes=1024, flash_bytes=4096,
                         active_power_mw=2.0)


def test_latency_and_energy_formula() -> None:
    ir = chain3()
    # 1 MHz clock: 1000 cycles = 1 ms
    dev = make_device(conv=1.0, dense=2.0)
    r = estimate_cost(ir, device=dev)
    assert r.latency_ms == pytest.approx((2304 + 4608 + 2 * 80) / 1000)
    assert r.energy_mj == pytest.approx(r.latency_ms * 2.0 / 1000)
    over = estimate_cost(ir, device=make_device(op_overhead=500.0, pool=1.0))
    assert over.latency_ms == pytest.approx((4 * 500 + 128) / 1000)  # MEAN reads 8x4x4 elements
    mem = estimate_cost(ir, device=make_device(memory=1.0))
    # bytes moved: activations in + out, weights, 4-byte biases
    moved = (64 + 256 + 36 + 16) + (256 + 128 + 288 + 32) + (128 + 8) + (8 + 10 + 80 + 40)
    assert mem.latency_ms == pytest.approx(moved / 1000)
    f32 = estimate_cost(ir, device=make_device(conv=1.0, float32=3.0), precision="float32")
    assert f32.latency_ms == pytest.approx(3 * (2304 + 4608) / 1000)
    assert sum(o.latency_ms for o in r.ops if o.latency_ms) == pytest.approx(r.latency_ms)


def test_as_metrics_keys() -> None:
    ir = chain3()
    plain = estimate_cost(ir).as_metrics()
    assert set(plain) == {"macs", "params", "weight_bytes", "flash_bytes", "peak_sram_bytes"}
    full = estimate_cost(ir, device="stm32f746").as_metrics()
    assert set(full) == {"macs", "params", "weight_bytes", "flash_bytes", "peak_sram_bytes", "latency_ms",
                         "energy_mj"}
    assert all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in full.values())


def test_faster_device_is_faster() -> None:
    ir = chain3()
    slow = estimate_cost(ir, device="rp2040").latency_ms
    fast = estimate_cost(ir, device="stm32h743").latency_ms
    assert slow is not None and fast is not None and fast < slow


def test_cost_model_object_matches_function() -> None:
    ir = chain3()
    model = MCUCostModel(device=get_device("stm32f412"), planner="tflm")
    assert model.estimate(ir) == estimate_cost(ir, device="stm32f412", planner="tflm")


def test_converter_rewrites_are_lowered() -> None:
    g = lower(chain3())
    # a conv reading one channel runs as DEPTHWISE_CONV_2D (depth multiplier 4)
    assert [op.tflite for op in g.ops] == ["DEPTHWISE_CONV_2D", "CONV_2D", "MEAN", "FULLY_CONNECTED"]
    b = GraphBuilder((4, 6, 6))
    x = b.add(Conv2d(8, kernel=3, stride=6), b.input, name="c")  # -> 8x1x1
    x = b.add(GlobalPool(), x, name="gp")
    assert [op.tflite for op in lower(b.build(x)).ops] == ["CONV_2D", "SUM"]  # mean over 1x1 = SUM


def test_relu_after_pool_fuses() -> None:
    b = GraphBuilder((4, 8, 8))
    x = b.add(Pool2d(mode="avg", kernel=3, stride=2), b.input, name="p")
    x = b.add(Act(), x, name="r")
    g = lower(b.build(b.add(Conv2d(4, kernel=1), x, name="c")))
    assert [(op.tflite, op.act) for op in g.ops] == [("AVERAGE_POOL_2D", "relu"), ("CONV_2D", "none")]


def test_even_stride1_same_pools_export_padded() -> None:
    b = GraphBuilder((4, 8, 8))
    x = b.add(Pool2d(mode="avg", kernel=2, stride=1, padding="same"), b.input, name="a1")
    x = b.add(Pool2d(mode="max", kernel=2, stride=1, padding="same"), x, name="m")
    x = b.add(Pool2d(mode="avg", kernel=2, stride=1, padding="same"), x, name="a2")
    x = b.add(Pool2d(mode="avg", kernel=3, stride=1, padding="same"), x, name="a3")  # symmetric: one kernel
    g = lower(b.build(x))
    assert [op.tflite for op in g.ops] == [
        "PAD", "AVERAGE_POOL_2D", "AVERAGE_POOL_2D", "DIV",  # pad, window sums, window counts, divide
        "PADV2", "MAX_POOL_2D",
        "PAD", "AVERAGE_POOL_2D", "DIV",  # the window-count map of the same shape is shared
        "AVERAGE_POOL_2D",
    ]
    assert g.tensors["a1#pad"].shape == (4, 9, 9)
    assert g.ops[3].inputs == ("a1#sum", "a1#count") and g.ops[8].inputs == ("a2#sum", "a1#count")
    assert g.output == "a3" and g.tensors["a1#count"].shape == (1, 8, 8)
    # constants: one shared int32 paddings tensor (32 B), the PADV2 value (1 B), one 9x9 int8 ones map
    assert estimate_cost(b.build(x), layout=ZERO_LAYOUT).flash_bytes == 32 + 1 + 81


def test_global_pool_on_a_one_channel_input_reads_a_reshape() -> None:
    b = GraphBuilder((1, 8, 8))
    g = lower(b.build(b.add(Dense(4), b.add(GlobalPool(), b.input, name="gp"), name="fc")))
    assert [op.tflite for op in g.ops] == ["RESHAPE", "MEAN", "FULLY_CONNECTED"]
    assert g.ops[1].inputs == ("gp#reshape",) and g.tensors["gp#reshape"].nbytes == 64
    b3 = GraphBuilder((3, 8, 8))
    g3 = lower(b3.build(b3.add(GlobalPool(), b3.input, name="gp")))
    assert [op.tflite for op in g3.ops] == ["MEAN"]
