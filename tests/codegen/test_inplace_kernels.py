"""The in-place kernels of the native runtime do not corrupt what they still read: the in-place depthwise conv
(output written over its input, one channel plane of scratch) equals the out-of-place one on random tensors,
and element-wise kernels run in place equal their out-of-place runs. Needs a C compiler only."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyevo.codegen.generate import kernel_source
from tinyevo.codegen.host import CFLAGS, find_cc

CC = find_cc()
pytestmark = pytest.mark.skipif(CC is None, reason="needs a C compiler (cc / gcc / clang) on the PATH")

_HARNESS = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define TE_USE_SRDHM 1
#define TE_USE_RDBP 1
#define TE_USE_REQUANT 1
#define TE_USE_CLAMP 1
#define TE_USE_DW_ACC 1
#define TE_USE_DWCONV 1
#define TE_USE_DWCONV_INPLACE 1
#define TE_USE_ADD 1
#define TE_USE_RELU 1
@KERNELS@
static uint32_t state = 1u;
static int32_t rnd(int32_t lo, int32_t hi)
{
    state = state * 1664525u + 1013904223u;
    return lo + (int32_t)((state >> 8) % (uint32_t)(hi - lo + 1));
}
int main(int argc, char **argv)
{
    int ih, iw, c, kh, sh, ph, oh, ow, i, n;
    int8_t *in, *ref, *buf, *plane, *filter, *b2, *sum_ref;
    int32_t *bias, *mult, *shift;
    if (argc != 6) return 9;
    ih = atoi(argv[1]); iw = atoi(argv[2]); c = atoi(argv[3]); kh = atoi(argv[4]); sh = atoi(argv[5]);
    state = (uint32_t)(ih * 7919 + iw * 104729 + c * 31 + kh * 17 + sh);
    oh = (ih + sh - 1) / sh; ow = (iw + sh - 1) / sh;  /* SAME */
    ph = ((oh - 1) * sh + kh - ih) > 0 ? ((oh - 1) * sh + kh - ih) / 2 : 0;
    n = ih * iw * c;
    in = malloc((size_t)n); ref = malloc((size_t)n); buf = malloc((size_t)n);
    plane = malloc((size_t)(ih * iw));
    filter = malloc((size_t)(kh * kh * c)); bias = malloc(sizeof(int32_t) * (size_t)c);
    mult = malloc(sizeof(int32_t) * (size_t)c); shift = malloc(sizeof(int32_t) * (size_t)c);
    b2 = malloc((size_t)n); sum_ref = malloc((size_t)n);
    for (i = 0; i < n; ++i) { in[i] = (int8_t)rnd(-128, 127); b2[i] = (int8_t)rnd(-128, 127); }
    for (i = 0; i < kh * kh * c; ++i) filter[i] = (int8_t)rnd(-127, 127);
    for (i = 0; i < c; ++i) {
        bias[i] = rnd(-5000, 5000); mult[i] = rnd(1 << 30, 0x7fffffff); shift[i] = rnd(-10, -5);
    }
    te_dwconv(in, ih, iw, c, filter, bias, mult, shift, ref, oh, ow, 1, kh, kh, sh, sh, ph, ph, 3, -2, -128,
              127);
    memcpy(buf, in, (size_t)n);
    te_dwconv_inplace(buf, plane, ih, iw, c, filter, bias, mult, shift, oh, ow, kh, kh, sh, sh, ph, ph, 3, -2,
                      -128, 127);
    if (memcmp(buf, ref, (size_t)(oh * ow * c)) != 0) { puts("dwconv differs"); return 1; }
    te_add(in, b2, sum_ref, n, 3, 1518500250, -1, -7, 1318500250, -2, 1173741824, -17, 5, -100, 120);
    memcpy(buf, in, (size_t)n);
    te_add(buf, b2, buf, n, 3, 1518500250, -1, -7, 1318500250, -2, 1173741824, -17, 5, -100, 120);
    if (memcmp(buf, sum_ref, (size_t)n) != 0) { puts("add (over a) differs"); return 1; }
    memcpy(buf, b2, (size_t)n);
    te_add(in, buf, buf, n, 3, 1518500250, -1, -7, 1318500250, -2, 1173741824, -17, 5, -100, 120);
    if (memcmp(buf, sum_ref, (size_t)n) != 0) { puts("add (over b) differs"); return 1; }
    te_relu(in, ref, n, 4, 1273741824, 1, -3, -3, 127);
    memcpy(buf, in, (size_t)n);
    te_relu(buf, buf, n, 4, 1273741824, 1, -3, -3, 127);
    if (memcmp(buf, ref, (size_t)n) != 0) { puts("relu differs"); return 1; }
    puts("ok");
    return 0;
}
"""


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("inplace")
    src = work / "h.c"
    src.write_text(_HARNESS.replace("@KERNELS@", kernel_source()))
    exe = work / "h"
    proc = subprocess.run([CC, *CFLAGS, "-Wno-overlength-strings", "-o", str(exe), str(src)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return exe


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.integers(1, 9), st.sampled_from([1, 3, 5]),
       st.sampled_from([1, 2]))
def test_inplace_kernels_equal_out_of_place(harness: Path, ih: int, iw: int, c: int, k: int, s: int) -> None:
    proc = subprocess.run([str(harness), str(ih), str(iw), str(c), str(k), str(s)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout
