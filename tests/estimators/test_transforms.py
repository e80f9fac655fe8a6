from __future__ import annotations

import pytest
from estimator_helpers import conv_net

from tinyevo.errors import ConfigError, IRValidationError
from tinyevo.estimators import scale_width, with_input_shape
from tinyevo.estimators.transforms import classifier_nodes
from tinyevo.ir import Add, Conv2d, Dense, DepthwiseConv2d, GlobalPool, GraphBuilder, Pool2d
from tinyevo.nn import build_model


def _residual_net() -> object:
    b = GraphBuilder((3, 8, 8))
    x = b.add(Conv2d(8, kernel=3, act="relu"), b.input, name="stem")
    y = b.add(DepthwiseConv2d(kernel=3, act="relu"), x, name="dw")
    y = b.add(Conv2d(8, kernel=3, groups=8), y, name="grouped")
    y = b.add(Conv2d(8, kernel=1, groups=2), y, name="g2")
    x = b.add(Add(act="relu"), x, y, name="add")
    x = b.add(GlobalPool(), x, name="gap")
    x = b.add(Dense(32, act="relu"), x, name="hidden")
    return b.build(b.add(Dense(10), x, name="fc"))


def test_scale_width_keeps_classifier_and_names() -> None:
    ir = _residual_net()
    half = scale_width(ir, 0.5)
    assert [n.name for n in half] == [n.name for n in ir]
    assert half.shapes["stem"][0] == 4 and half.shapes["hidden"][0] == 16 and half.output_shape == (10, 1, 1)
    assert half.node("grouped").op.groups == 4  # one group per input channel is kept
    assert half.shapes["add"] == half.shapes["stem"]
    double = scale_width(ir, 2.0)
    assert double.shapes["stem"][0] == 16 and double.output_shape == (10, 1, 1)
    assert scale_width(ir, 1.0) is ir
    build_model(half)  # a valid, buildable network


def test_scale_width_min_channels_and_divisor() -> None:
    ir = conv_net(width=3)
    tiny = scale_width(ir, 0.1)
    assert tiny.shapes["conv1"][0] == 1
    assert scale_width(ir, 1.5, divisor=4).shapes["conv1"][0] == 4
    with pytest.raises(ConfigError):
        scale_width(ir, 0.0)


def test_classifier_through_pooling_and_conv_head() -> None:
    b = GraphBuilder((1, 8, 8))
    x = b.add(Conv2d(8, kernel=3), b.input, name="body")
    x = b.add(Conv2d(5, kernel=1), x, name="head")
    ir = b.build(b.add(GlobalPool(), x, name="gap"))
    assert classifier_nodes(ir) == {"head"}
    assert scale_width(ir, 0.5).output_shape == (5, 1, 1)


def test_with_input_shape() -> None:
    ir = conv_net(size=8)
    small = with_input_shape(ir, (1, 4, 4))
    assert small.input_shape == (1, 4, 4) and small.shapes["conv2"] == (16, 2, 2)
    assert with_input_shape(ir, (1, 8, 8)) is ir
    b = GraphBuilder((1, 8, 8))
    x = b.add(Pool2d(kernel=4, stride=4), b.input)
    x = b.add(Pool2d(kernel=2, stride=2), x)
    valid = b.build(b.add(Dense(2), x))
    with pytest.raises(IRValidationError):
        with_input_shape(valid, (1, 4, 4))
