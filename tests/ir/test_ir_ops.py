"""Op records: argument checks and shape inference (TF SAME / VALID)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyevo.errors import IRValidationError
from tinyevo.ir import (
    Act,
    Add,
    Concat,
    Conv2d,
    Dense,
    DepthwiseConv2d,
    GlobalPool,
    Identity,
    Pool2d,
    Zero,
    same_pads,
    spatial_out,
)

# TF's documented SAME padding, worked out by hand: (size, kernel, stride) -> (pad_before, pad_after)
TF_SAME_CASES = {
    (8, 3, 2): (0, 1),
    (7, 3, 2): (1, 1),
    (8, 3, 1): (1, 1),
    (5, 4, 1): (1, 2),
    (6, 1, 2): (0, 0),
    (32, 5, 2): (1, 2),
    (2, 5, 1): (2, 2),
    (1, 3, 2): (1, 1),
}


@pytest.mark.parametrize(("size", "kernel", "stride"), sorted(TF_SAME_CASES))
def test_same_pads_match_tf(size: int, kernel: int, stride: int) -> None:
    assert same_pads(size, kernel, stride) == TF_SAME_CASES[(size, kernel, stride)]
    assert spatial_out(size, kernel, stride, "same") == math.ceil(size / stride)


@settings(max_examples=25, deadline=None)
@given(size=st.integers(1, 64), kernel=st.integers(1, 7), stride=st.integers(1, 4))
def test_same_padding_covers_exactly_the_output(size: int, kernel: int, stride: int) -> None:
    before, after = same_pads(size, kernel, stride)
    out = spatial_out(size, kernel, stride, "same")
    assert 0 <= after - before <= 1
    # the last window ends inside the padded input, and one more stride would not fit
    assert (out - 1) * stride + kernel <= size + before + after < out * stride + kernel


@settings(max_examples=25, deadline=None)
@given(size=st.integers(1, 64), kernel=st.integers(1, 7), stride=st.integers(1, 4))
def test_valid_padding(size: int, kernel: int, stride: int) -> None:
    if size < kernel:
        with pytest.raises(IRValidationError, match="larger than the input"):
            spatial_out(size, kernel, stride, "valid")
    else:
        out = spatial_out(size, kernel, stride, "valid")
        assert (out - 1) * stride + kernel <= size < out * stride + kernel


def test_shape_rules() -> None:
    x = ((6, 9, 7),)
    assert Conv2d(4, kernel=3, stride=2).infer_shape(x) == (4, 5, 4)
    assert Conv2d(4, kernel=3, stride=2, padding="valid").infer_shape(x) == (4, 4, 3)
    assert Conv2d(4, kernel=1, groups=2).infer_shape(x) == (4, 9, 7)
    assert DepthwiseConv2d(5, stride=3).infer_shape(x) == (6, 3, 3)
    assert Pool2d("max", kernel=2, stride=2).infer_shape(x) == (6, 4, 3)
    assert Pool2d("avg", kernel=3, stride=2, padding="same").infer_shape(x) == (6, 5, 4)
    assert GlobalPool("max").infer_shape(x) == (6, 1, 1)
    assert Dense(11).infer_shape(x) == (11, 1, 1)
    assert Add().infer_shape(x * 3) == (6, 9, 7)
    assert Concat().infer_shape(((6, 9, 7), (2, 9, 7), (1, 9, 7))) == (9, 9, 7)
    for op in (Identity(), Zero(), Act("relu6")):
        assert op.infer_shape(x) == (6, 9, 7)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Conv2d(0), "out_channels must be a positive integer"),
        (lambda: Conv2d(4, kernel=0), "kernel"),
        (lambda: Conv2d(4, stride=-1), "stride"),
        (lambda: Conv2d(4, padding="full"), "unknown padding"),
        (lambda: Conv2d(4, act="gelu"), "unknown activation"),
        (lambda: DepthwiseConv2d(kernel=0), "kernel"),
        (lambda: Pool2d("min"), "pool mode"),
        (lambda: GlobalPool("sum"), "pool mode"),
        (lambda: Dense(0), "out_features"),
        (lambda: Act("none"), "standalone activation"),
        (lambda: Add(act="tanh"), "unknown activation"),
    ],
)
def test_bad_op_arguments_raise(make, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IRValidationError, match=match):
        make()


def test_describe_labels() -> None:
    assert Conv2d(32, kernel=3, stride=2, act="relu").describe() == "conv3x3/2 c32 relu"
    assert Conv2d(16, kernel=1).describe() == "pw c16"
    assert Conv2d(16, kernel=3, groups=4).describe() == "conv3x3 c16 g4"
    assert DepthwiseConv2d(5, stride=2, act="relu6").describe() == "dw5x5/2 relu6"
    assert Pool2d("avg", kernel=3, stride=1).describe() == "avgpool3x3"
    assert Dense(10).describe() == "dense 10"


def test_ops_are_frozen_and_hashable() -> None:
    op = Conv2d(8, kernel=3)
    assert hash(op) == hash(Conv2d(8, kernel=3)) and op == Conv2d(8, kernel=3) and op != Conv2d(8, kernel=5)
    with pytest.raises(AttributeError):
        op.kernel = 5  # type: ignore[misc]
