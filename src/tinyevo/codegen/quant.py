"""TFLite-Micro's quantisation parameters, computed as its kernels' ``Prepare`` computes them (double /
float32
arithmetic as in C++), for the generated C's constants."""

from __future__ import annotations

import math

import numpy as np


def round_half_away(x: float) -> int:
    """``std::round``: halves away from zero."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLM's ``QuantizeMultiplier`` (double-rounding build): ``real = m * 2^(shift - 31)``, ``m`` in Q31."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_half_away(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return int(q_fixed), int(shift)


def f32(x: float) -> np.float32:
    return np.float32(x)


def quantize_value(value: float, scale: float, zero_point: int) -> int:
    """TFLM's ``Quantize`` in ``CalculateActivationRangeQuantized``: ``zp + round(f / scale)`` in float32."""
    return int(zero_point) + round_half_away(float(f32(value) / f32(scale)))


def activation_range(act: str, scale: float, zero_point: int) -> tuple[int, int]:
    """The int8 clamp of a fused activation (``CalculateActivationRangeQuantized``)."""
    lo, hi = -128, 127
    if act == "relu":
        return max(lo, quantize_value(0.0, scale, zero_point)), hi
    if act == "relu6":
        return (max(lo, quantize_value(0.0, scale, zero_point)),
                min(hi, quantize_value(6.0, scale, zero_point)))
    if act == "relu_n1_to_1":
        return (max(lo, quantize_value(-1.0, scale, zero_point)),
                min(hi, quantize_value(1.0, scale, zero_point)))
    return lo, hi


def conv_multipliers(input_scale: float, filter_scales: tuple[float, ...], output_scale: float,
                     channels: int) -> tuple[list[int], list[int]]:
    """Per-channel (m, shift) of a conv / depthwise conv / per-channel dense layer
    (``PopulateConvolutionQuantizationParams``: a per-tensor filter scale is broadcast)."""
    mult, shift = [], []
    for i in range(channels):
        s = filter_scales[i] if len(filter_scales) > 1 else filter_scales[0]
        m, sh = quantize_multiplier(float(input_scale) * float(s) / float(output_scale))
        mult.append(m)
        shift.append(sh)
    return mult, shift


def dense_per_tensor_multiplier(input_scale: float, filter_scale: float,
                                output_scale: float) -> tuple[int, int]:
    """A per-tensor dense layer's (m, shift) (``GetQuantizedConvolutionMultipler``: a float32 product)."""
    return quantize_multiplier(float(f32(input_scale) * f32(filter_scale)) / float(output_scale))


def mean_multiplier(input_scale: float, output_scale: float, count: int) -> tuple[int, int]:
    """(m, shift) of an int8 MEAN over ``count`` elements: TFLM's multiplier with its division by the count
    folded in (``QuantizedMeanOrSum``)."""
    m, shift = quantize_multiplier(float(input_scale) / float(output_scale))
    s = min(count.bit_length() - 1, 32, 31 + shift)
    return int((m << s) // count), shift - s


def add_params(scale_a: float, scale_b: float, scale_out: float) -> tuple[tuple[int, int], ...]:
    """((m, shift) of input a, of input b, of the output) of an int8 ADD (``CalculateOpDataAdd``)."""
    twice_max = 2.0 * float(max(f32(scale_a), f32(scale_b)))
    ra = float(scale_a) / twice_max
    rb = float(scale_b) / twice_max
    ro = twice_max / ((1 << 20) * float(scale_out))
    return quantize_multiplier(ra), quantize_multiplier(rb), quantize_multiplier(ro)


def relu_multiplier(input_scale: float, output_scale: float) -> tuple[int, int]:
    """(m, shift) of an int8 RELU (``CalculateReluOpData``: a float32 quotient)."""
    return quantize_multiplier(float(f32(input_scale) / f32(output_scale)))


def requantize_multiplier(input_scale: float, output_scale: float) -> tuple[int, int]:
    """(m, shift) of an int8 -> int8 QUANTIZE (``PrepareQuantizeReference``: a double quotient of the two
    float32 scales)."""
    return quantize_multiplier(float(input_scale) / float(output_scale))


def relu6_bounds(scale: float, zero_point: int) -> tuple[int, int]:
    """RELU6's int8 clamp: the input's quantised 0 and 6 (``Relu6Prepare``)."""
    six = int(zero_point) + round_half_away(float(f32(6.0) / f32(scale)))
    return int(zero_point), max(-128, min(127, six))
