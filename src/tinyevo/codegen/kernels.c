/* tinyevo native int8 kernels (C99). Written for tinyevo; the integer arithmetic follows TFLite-Micro's
 * reference kernels (double-rounding fixed-point requantisation: SaturatingRoundingDoublingHighMul followed by
 * RoundingDivideByPOT), so that outputs are bit-exact with TFLM on the same .tflite.
 * Tensors are NHWC int8, batch 1. Assumes two's complement and an arithmetic right shift of negative
 * integers (gcc, clang and armcc on every supported target). */

#define TE_MIN(a, b) ((a) < (b) ? (a) : (b))
#define TE_MAX(a, b) ((a) > (b) ? (a) : (b))

#ifdef TE_USE_SRDHM
static int32_t te_srdhm(int32_t a, int32_t b)
{
    int64_t ab;
    int32_t nudge;
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    ab = (int64_t)a * (int64_t)b;
    nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}
#endif

#ifdef TE_USE_RDBP
static int32_t te_rdbp(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}
#endif

#ifdef TE_USE_REQUANT
/* x * multiplier * 2^shift, rounded as TFLM's MultiplyByQuantizedMultiplier (shift > 0: left shift first) */
static int32_t te_requant(int32_t x, int32_t multiplier, int32_t shift)
{
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    return te_rdbp(te_srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}
#endif

#ifdef TE_USE_CLAMP
static int8_t te_clamp(int32_t v, int32_t lo, int32_t hi)
{
    return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}
#endif

#if defined(TE_USE_CONV) || defined(TE_USE_FC)
#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>

/* SXTB16 / SXTAB16 of the operand rotated right by 8 (its bytes 1 and 3), one instruction each. */
static uint32_t te_sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

static uint32_t te_sxtab16_ror8(uint32_t a, uint32_t x)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
    return r;
}
#endif

/* sum over i < n of a[i] * (x[i] + x_off) (|x_off| <= 255 keeps x + x_off in 16 bits). On cores with the DSP
 * extension (Cortex-M4 / M7: __ARM_FEATURE_DSP) four bytes at a time: two dual 16-bit multiply-accumulates
 * (SMLAD) of sign-extended pairs, the offset added by SXTAB16; the same integer sum as the plain loop. */
static int32_t te_dot_s8(const int8_t *a, const int8_t *x, int n, int32_t x_off)
{
    int32_t acc = 0;
    int i = 0;
#if defined(__ARM_FEATURE_DSP)
    const uint32_t off2 = ((uint32_t)(uint16_t)x_off << 16) | (uint16_t)x_off;
    for (; i + 4 <= n; i += 4) {
        uint32_t wa, wx;
        memcpy(&wa, a + i, 4);
        memcpy(&wx, x + i, 4);
        acc = __smlad(__sxtb16(wa), __sxtab16(off2, wx), acc);
        acc = __smlad(te_sxtb16_ror8(wa), te_sxtab16_ror8(off2, wx), acc);
    }
#endif
    for (; i < n; ++i) {
        acc += (int32_t)a[i] * ((int32_t)x[i] + x_off);
    }
    return acc;
}
#endif

#ifdef TE_USE_CONV
/* CONV_2D (grouped when fic < ic): filter [oc][kh][kw][fic], per-channel requantisation. */
static void te_conv(const int8_t *in, int ih, int iw, int ic, const int8_t *filter, const int32_t *bias,
                    const int32_t *mult, const int32_t *shift, int8_t *out, int oh, int ow, int oc, int kh,
                    int kw, int sh, int sw, int ph, int pw, int fic, int32_t in_off, int32_t out_off,
                    int32_t act_min, int32_t act_max)
{
    const int per_group = oc / (ic / fic);
    int oy, ox, o, fy, fx;
    for (oy = 0; oy < oh; ++oy) {
        const int y0 = oy * sh - ph;
        for (ox = 0; ox < ow; ++ox) {
            const int x0 = ox * sw - pw;
            for (o = 0; o < oc; ++o) {
                const int cbase = (o / per_group) * fic;
                const int8_t *f = filter + (size_t)o * kh * kw * fic;
                int32_t acc = 0;
                for (fy = 0; fy < kh; ++fy) {
                    const int y = y0 + fy;
                    if (y < 0 || y >= ih) {
                        continue;
                    }
                    for (fx = 0; fx < kw; ++fx) {
                        const int x = x0 + fx;
                        const int8_t *px;
                        const int8_t *fp;
                        if (x < 0 || x >= iw) {
                            continue;
                        }
                        px = in + ((size_t)y * iw + x) * ic + cbase;
                        fp = f + ((size_t)fy * kw + fx) * fic;
                        acc += te_dot_s8(fp, px, fic, in_off);
                    }
                }
                if (bias) {
                    acc += bias[o];
                }
                acc = te_requant(acc, mult[o], shift[o]) + out_off;
                out[((size_t)oy * ow + ox) * oc + o] = te_clamp(acc, act_min, act_max);
            }
        }
    }
}
#endif

#ifdef TE_USE_DW_ACC
/* One output of a depthwise conv: channel c of a plane with pixel stride `stride` (C for NHWC, 1 for a plane). */
static int32_t te_dw_acc(const int8_t *in, int ih, int iw, int stride, const int8_t *filter, int oc, int o,
                         int y0, int x0, int kh, int kw, int32_t in_off)
{
    int32_t acc = 0;
    int fy, fx;
    for (fy = 0; fy < kh; ++fy) {
        const int y = y0 + fy;
        if (y < 0 || y >= ih) {
            continue;
        }
        for (fx = 0; fx < kw; ++fx) {
            const int x = x0 + fx;
            if (x < 0 || x >= iw) {
                continue;
            }
            acc += (int32_t)filter[((size_t)fy * kw + fx) * oc + o] *
                   ((int32_t)in[((size_t)y * iw + x) * stride] + in_off);
        }
    }
    return acc;
}
#endif

#ifdef TE_USE_DWCONV
/* DEPTHWISE_CONV_2D: filter [1][kh][kw][oc], oc = ic * dm. */
static void te_dwconv(const int8_t *in, int ih, int iw, int ic, const int8_t *filter, const int32_t *bias,
                      const int32_t *mult, const int32_t *shift, int8_t *out, int oh, int ow, int dm, int kh,
                      int kw, int sh, int sw, int ph, int pw, int32_t in_off, int32_t out_off, int32_t act_min,
                      int32_t act_max)
{
    const int oc = ic * dm;
    int oy, ox, c, m;
    for (oy = 0; oy < oh; ++oy) {
        for (ox = 0; ox < ow; ++ox) {
            for (c = 0; c < ic; ++c) {
                for (m = 0; m < dm; ++m) {
                    const int o = c * dm + m;
                    int32_t acc = te_dw_acc(in + c, ih, iw, ic, filter, oc, o, oy * sh - ph, ox * sw - pw, kh, kw,
                                            in_off);
                    if (bias) {
                        acc += bias[o];
                    }
                    acc = te_requant(acc, mult[o], shift[o]) + out_off;
                    out[((size_t)oy * ow + ox) * oc + o] = te_clamp(acc, act_min, act_max);
                }
            }
        }
    }
}
#endif

#ifdef TE_USE_DWCONV_INPLACE
/* DEPTHWISE_CONV_2D (depth multiplier 1) writing its output over its input `buf`, channel by channel: channel c's
 * input plane is first copied to `plane` (ih * iw bytes); the outputs of channel c only overwrite channel c. */
static void te_dwconv_inplace(int8_t *buf, int8_t *plane, int ih, int iw, int c_n, const int8_t *filter,
                              const int32_t *bias, const int32_t *mult, const int32_t *shift, int oh, int ow,
                              int kh, int kw, int sh, int sw, int ph, int pw, int32_t in_off, int32_t out_off,
                              int32_t act_min, int32_t act_max)
{
    int c, p, oy, ox;
    for (c = 0; c < c_n; ++c) {
        for (p = 0; p < ih * iw; ++p) {
            plane[p] = buf[(size_t)p * c_n + c];
        }
        for (oy = 0; oy < oh; ++oy) {
            for (ox = 0; ox < ow; ++ox) {
                int32_t acc = te_dw_acc(plane, ih, iw, 1, filter, c_n, c, oy * sh - ph, ox * sw - pw, kh, kw,
                                        in_off);
                if (bias) {
                    acc += bias[c];
                }
                acc = te_requant(acc, mult[c], shift[c]) + out_off;
                buf[((size_t)oy * ow + ox) * c_n + c] = te_clamp(acc, act_min, act_max);
            }
        }
    }
}
#endif

#ifdef TE_USE_FC
/* FULLY_CONNECTED: filter [n_out][n_in], per-output requantisation (a per-tensor one is repeated). */
static void te_fc(const int8_t *in, int n_in, const int8_t *filter, const int32_t *bias, const int32_t *mult,
                  const int32_t *shift, int8_t *out, int n_out, int32_t in_off, int32_t out_off, int32_t act_min,
                  int32_t act_max)
{
    int o;
    for (o = 0; o < n_out; ++o) {
        const int8_t *f = filter + (size_t)o * n_in;
        int32_t acc = 0;
        acc += te_dot_s8(f, in, n_in, in_off);
        if (bias) {
            acc += bias[o];
        }
        acc = te_requant(acc, mult[o], shift[o]) + out_off;
        out[o] = te_clamp(acc, act_min, act_max);
    }
}
#endif

#ifdef TE_USE_POOL
/* AVERAGE_POOL_2D (avg = 1) / MAX_POOL_2D (avg = 0) over the in-bounds part of each window. */
static void te_pool(const int8_t *in, int ih, int iw, int c_n, int8_t *out, int oh, int ow, int kh, int kw, int sh,
                    int sw, int ph, int pw, int avg, int32_t act_min, int32_t act_max)
{
    int oy, ox, c, y, x;
    for (oy = 0; oy < oh; ++oy) {
        const int y0 = oy * sh - ph;
        const int ys = TE_MAX(0, -y0), ye = TE_MIN(kh, ih - y0);
        for (ox = 0; ox < ow; ++ox) {
            const int x0 = ox * sw - pw;
            const int xs = TE_MAX(0, -x0), xe = TE_MIN(kw, iw - x0);
            for (c = 0; c < c_n; ++c) {
                int32_t acc = avg ? 0 : -128;
                int count = 0;
                for (y = ys; y < ye; ++y) {
                    const int8_t *row = in + ((size_t)(y0 + y) * iw + x0) * c_n + c;
                    for (x = xs; x < xe; ++x) {
                        const int32_t v = row[(size_t)x * c_n];
                        if (avg) {
                            acc += v;
                        } else if (v > acc) {
                            acc = v;
                        }
                        ++count;
                    }
                }
                if (avg && count > 0) {
                    acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                }
                out[((size_t)oy * ow + ox) * c_n + c] = te_clamp(acc, act_min, act_max);
            }
        }
    }
}
#endif

#ifdef TE_USE_REDUCE
/* MEAN (mode 0), SUM (mode 1) or REDUCE_MAX (mode 2) over the middle axis of an [outer][n][inner] tensor (H x W of
 * NHWC: outer 1, inner C). For MEAN, mult / shift already include TFLM's division by the element count n. */
static void te_reduce(const int8_t *in, int outer, int n, int inner, int8_t *out, int mode, int32_t mult,
                      int32_t shift, int32_t in_zp, int32_t out_zp)
{
    int o, c, p;
    for (o = 0; o < outer; ++o) {
        const int8_t *base = in + (size_t)o * n * inner;
        for (c = 0; c < inner; ++c) {
            int32_t acc = mode == 2 ? -128 : 0;
            for (p = 0; p < n; ++p) {
                const int32_t v = base[(size_t)p * inner + c];
                if (mode == 2) {
                    acc = v > acc ? v : acc;
                } else {
                    acc += v;
                }
            }
            if (mode != 2) {
                acc = te_requant(acc - in_zp * n, mult, shift) + out_zp;
            }
            out[(size_t)o * inner + c] = te_clamp(acc, -128, 127);
        }
    }
}
#endif

#ifdef TE_USE_ADD
/* ADD of two tensors of one shape (TFLM's int8 AddFunc, left shift 20). May run in place (out == a or b). */
static void te_add(const int8_t *a, const int8_t *b, int8_t *out, int n, int32_t a_off, int32_t a_mult,
                   int32_t a_shift, int32_t b_off, int32_t b_mult, int32_t b_shift, int32_t out_mult,
                   int32_t out_shift, int32_t out_off, int32_t act_min, int32_t act_max)
{
    int i;
    for (i = 0; i < n; ++i) {
        const int32_t sa = te_requant((int32_t)((uint32_t)((int32_t)a[i] + a_off) << 20), a_mult, a_shift);
        const int32_t sb = te_requant((int32_t)((uint32_t)((int32_t)b[i] + b_off) << 20), b_mult, b_shift);
        const int32_t r = te_requant(sa + sb, out_mult, out_shift) + out_off;
        out[i] = te_clamp(r, act_min, act_max);
    }
}
#endif

#ifdef TE_USE_RELU
/* RELU (TFLM's ReluQuantized: rescale, then clamp). May run in place. */
static void te_relu(const int8_t *in, int8_t *out, int n, int32_t in_zp, int32_t mult, int32_t shift,
                    int32_t out_zp, int32_t act_min, int32_t act_max)
{
    int i;
    for (i = 0; i < n; ++i) {
        out[i] = te_clamp(out_zp + te_requant((int32_t)in[i] - in_zp, mult, shift), act_min, act_max);
    }
}
#endif

#ifdef TE_USE_CLAMP_COPY
/* RELU6 (TFLM's Relu6Quantized: clamp to the input's quantised 0 and 6) and other plain clamps. May run in place. */
static void te_clamp_copy(const int8_t *in, int8_t *out, int n, int32_t lo, int32_t hi)
{
    int i;
    for (i = 0; i < n; ++i) {
        out[i] = te_clamp(in[i], lo, hi);
    }
}
#endif

#ifdef TE_USE_CONCAT
/* CONCATENATION along any axis of int8 tensors of one quantisation (TFLM requires it and copies bytes): the
 * output is `pixels` rows (the product of the dimensions before the axis), each the inputs' rows one after the
 * other, input k contributing `channels[k]` bytes (its size along the axis times the product of the dimensions
 * after it). Along channels: one row per pixel. */
static void te_concat(const int8_t *const *ins, const int *channels, int n_in, int8_t *out, int pixels)
{
    int p, k, total = 0;
    for (k = 0; k < n_in; ++k) {
        total += channels[k];
    }
    for (p = 0; p < pixels; ++p) {
        int8_t *dst = out + (size_t)p * total;
        for (k = 0; k < n_in; ++k) {
            memcpy(dst, ins[k] + (size_t)p * channels[k], (size_t)channels[k]);
            dst += channels[k];
        }
    }
}
#endif

#ifdef TE_USE_SLICE
/* SLICE of a rank-4 int8 tensor (shorter ranks padded with leading 1s), TFLM's reference Slice: out[i] =
 * in[begin + i] for every index i of the output (`size`: the output's dimensions). Not in place. */
static void te_slice(const int8_t *in, const int *dims, const int *begin, const int *size, int8_t *out)
{
    int i0, i1, i2;
    for (i0 = 0; i0 < size[0]; ++i0) {
        for (i1 = 0; i1 < size[1]; ++i1) {
            for (i2 = 0; i2 < size[2]; ++i2) {
                const size_t row = (((size_t)(begin[0] + i0) * dims[1] + (begin[1] + i1)) * dims[2] +
                                    (begin[2] + i2)) * dims[3] + begin[3];
                memcpy(out, in + row, (size_t)size[3]);
                out += size[3];
            }
        }
    }
}
#endif

#ifdef TE_USE_PAD
/* PAD / PADV2 of an NHWC tensor in H and W with `value`. */
static void te_pad(const int8_t *in, int ih, int iw, int c_n, int8_t *out, int top, int bottom, int left, int right,
                   int8_t value)
{
    const int ow = iw + left + right, oh = ih + top + bottom;
    int y;
    memset(out, value, (size_t)oh * ow * c_n);
    for (y = 0; y < ih; ++y) {
        memcpy(out + (((size_t)(y + top) * ow) + left) * c_n, in + (size_t)y * iw * c_n, (size_t)iw * c_n);
    }
}
#endif

#ifdef TE_USE_RECIPROCAL
/* gemmlowp's fixed-point 1 / (1 + x) for x in [0, 1) (Q0.31 in, Q0.31 out: three Newton-Raphson steps in Q2.29),
 * as TFLM's GetReciprocal uses it. */
static int32_t te_sat_shl(int32_t x, int s)
{
    const int32_t hi = INT32_MAX >> s, lo = INT32_MIN >> s;
    return x > hi ? INT32_MAX : (x < lo ? INT32_MIN : (int32_t)((uint32_t)x << s));
}

static int32_t te_one_over_one_plus_x(int32_t a)
{
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half_den = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    const int32_t one_q2 = 1 << 29;
    int32_t x = 1515870810 + te_srdhm(half_den, -1010580540);
    int i;
    for (i = 0; i < 3; ++i) {
        const int32_t hdx = te_srdhm(half_den, x);
        const int32_t one_minus = one_q2 - hdx;
        x = x + te_sat_shl(te_srdhm(x, one_minus), 2);
    }
    return te_sat_shl(x, 1);
}

static int te_clz32(uint32_t x)
{
    int n = 0;
    if (x == 0) {
        return 32;
    }
    while (!(x & 0x80000000u)) {
        x <<= 1;
        ++n;
    }
    return n;
}

/* TFLM's GetReciprocal(x, 31, &shift) for x > 0 */
static int32_t te_reciprocal(int32_t x, int *num_bits_over_unit)
{
    const int headroom_plus_one = te_clz32((uint32_t)x);
    const int32_t shifted_minus_one = (int32_t)(((uint32_t)x << headroom_plus_one) - ((uint32_t)1 << 31));
    *num_bits_over_unit = 31 - headroom_plus_one;
    return te_one_over_one_plus_x(shifted_minus_one);
}
#endif

#ifdef TE_USE_DIV
/* DIV of a [pixels][c] tensor by a [pixels][cb] one (cb = c, or 1: broadcast over channels), TFLM's int8
 * DivElementwise. */
static void te_div(const int8_t *a, const int8_t *b, int8_t *out, int pixels, int c, int cb, int32_t a_off,
                   int32_t b_off, int32_t out_off, int32_t mult, int32_t shift, int32_t act_min, int32_t act_max)
{
    int p, k;
    for (p = 0; p < pixels; ++p) {
        for (k = 0; k < c; ++k) {
            int32_t x = a_off + a[(size_t)p * c + k];
            int32_t y = b_off + b[(size_t)p * cb + (cb == 1 ? 0 : k)];
            int recip_shift, headroom, total;
            int32_t inv, q;
            if (y < 0) {
                x = -x;
                y = -y;
            }
            inv = te_reciprocal(y, &recip_shift);
            headroom = x >= 0 ? te_clz32((uint32_t)x) - 1 : te_clz32(2u * (uint32_t)(-x) - 1u);
            q = te_srdhm((int32_t)((uint32_t)x << headroom), inv);
            total = shift - recip_shift - headroom;
            q = te_rdbp(te_srdhm(q, mult), -total) + out_off;
            out[(size_t)p * c + k] = te_clamp(q, act_min, act_max);
        }
    }
}
#endif

#ifdef TE_USE_QUANTIZE
/* QUANTIZE int8 -> int8 (TFLM's reference Requantize): (x - in_zp) * multiplier * 2^shift + out_zp, saturated
 * to int8. Element-wise: may run in place. */
static void te_quantize(const int8_t *in, int8_t *out, int n, int32_t in_zp, int32_t mult, int32_t shift,
                        int32_t out_zp)
{
    int i;
    for (i = 0; i < n; ++i) {
        out[i] = te_clamp(te_requant((int32_t)in[i] - in_zp, mult, shift) + out_zp, -128, 127);
    }
}
#endif

#ifdef TE_USE_TRANSPOSE
/* TRANSPOSE of a rank-4 int8 tensor (shorter ranks padded with leading 1s): out[i0][i1][i2][i3] =
 * in[...] with out axis k = in axis perm[k]. `dims`: the input's dimensions. Not in place. */
static void te_transpose(const int8_t *in, const int *dims, const int *perm, int8_t *out)
{
    int stride[4], s[4], i0, i1, i2, i3;
    int k;
    stride[3] = 1;
    for (k = 2; k >= 0; --k) {
        stride[k] = stride[k + 1] * dims[k + 1];
    }
    for (k = 0; k < 4; ++k) {
        s[k] = stride[perm[k]];
    }
    for (i0 = 0; i0 < dims[perm[0]]; ++i0) {
        for (i1 = 0; i1 < dims[perm[1]]; ++i1) {
            for (i2 = 0; i2 < dims[perm[2]]; ++i2) {
                const int8_t *p = in + (size_t)i0 * s[0] + (size_t)i1 * s[1] + (size_t)i2 * s[2];
                for (i3 = 0; i3 < dims[perm[3]]; ++i3) {
                    *out++ = p[(size_t)i3 * s[3]];
                }
            }
        }
    }
}
#endif
