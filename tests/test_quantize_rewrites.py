"""The exact rewrites of the quantized graph: quantize_before_pad (Q(Pad(x, 0)) as Pad(Q(x), zero point)) and
drop_lossless_quantize (Q(Cast(x)) of uint8 x with scale 1, zero point 0, as x) give the same bytes in ONNX
Runtime and by hand; what they cannot rewrite is left alone."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from vitstem.export.quantize import drop_lossless_quantize, quantize_before_pad

PADS = [0, 2, 0, 0, 1, 0]  # ONNX order (begins, then ends): two rows in front on axis 1, one behind it


def padded_then_quantized(scale, zero_point, *, value=None, mode=None, extra_reader=False):
    """x (2, 3, 4) -> Pad -> QuantizeLinear -> DequantizeLinear -> y; `extra_reader` adds a second output
    reading the Pad's float result."""
    zp_type = TensorProto.UINT8 if np.asarray(zero_point).dtype == np.uint8 else TensorProto.INT8
    inits = [numpy_helper.from_array(np.array(PADS, np.int64), "pads"),
             numpy_helper.from_array(np.asarray(scale, np.float32), "scale"),
             numpy_helper.from_array(np.asarray(zero_point), "zp")]
    pad_inputs = ["x", "pads"]
    if value is not None:
        inits.append(numpy_helper.from_array(np.array(value, np.float32), "value"))
        pad_inputs.append("value")
    per_channel = {"axis": 2} if np.ndim(scale) else {}
    nodes = [helper.make_node("Pad", pad_inputs, ["padded"], **({"mode": mode} if mode else {})),
             helper.make_node("QuantizeLinear", ["padded", "scale", "zp"], ["q"], **per_channel),
             helper.make_node("DequantizeLinear", ["q", "scale", "zp"], ["y"], **per_channel)]
    outputs = [helper.make_tensor_value_info("q", zp_type, None),
               helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if extra_reader:
        nodes.append(helper.make_node("Identity", ["padded"], ["padded_copy"]))
        outputs.append(helper.make_tensor_value_info("padded_copy", TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])], outputs,
                              initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)


def run(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


def copy(model):
    return onnx.ModelProto.FromString(model.SerializeToString())


@pytest.mark.parametrize("scale, zero_point", [(0.5, np.uint8(0)), (0.03, np.uint8(37)), (2.0, np.uint8(255)),
                                               (0.1, np.int8(-5))])
def test_the_moved_quantize_gives_the_same_bytes(scale, zero_point):
    x = np.random.default_rng(0).normal(0, 4, (2, 3, 4)).astype(np.float32)
    x[0, 0, :2] = [1000.0, -1000.0]  # saturates either way
    model = padded_then_quantized(scale, zero_point)
    rewritten = quantize_before_pad(copy(model))
    assert [n.op_type for n in rewritten.graph.node] == ["QuantizeLinear", "Pad", "DequantizeLinear"]
    before, after = run(model, x), run(rewritten, x)
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(before, after))
    # by hand: round half to even, add the zero point, saturate; the padded cells hold the zero point
    info = np.iinfo(zero_point.dtype)
    q = np.clip(np.round(x / np.float32(scale)) + int(zero_point), info.min, info.max).astype(zero_point.dtype)
    expected = np.pad(q, [(0, 0), (2, 1), (0, 0)], constant_values=zero_point)
    assert np.array_equal(after[0], expected)


@pytest.mark.parametrize("case", ["non-zero pad value", "reflect", "pad read twice", "per-channel quantize"])
def test_pads_it_cannot_move_through_are_left_alone(case):
    kwargs = {"non-zero pad value": dict(value=1.0), "reflect": dict(mode="reflect"),
              "pad read twice": dict(extra_reader=True), "per-channel quantize": {}}[case]
    scale = np.array([0.5, 0.25, 0.125, 1.0], np.float32) if case == "per-channel quantize" else 0.5
    zero_point = np.full(4, 3, np.uint8) if case == "per-channel quantize" else np.uint8(3)
    model = padded_then_quantized(scale, zero_point, **kwargs)
    run(model, np.ones((2, 3, 4), np.float32))  # a valid graph
    assert quantize_before_pad(copy(model)) == model


def cast_then_quantized(scale, zero_point, source=TensorProto.UINT8, extra_reader=False):
    """x (2, 128) of `source` -> Cast(float) -> QuantizeLinear -> DequantizeLinear -> y; `extra_reader`: the
    cast floats are an output too."""
    inits = [numpy_helper.from_array(np.asarray(scale, np.float32), "scale"),
             numpy_helper.from_array(np.asarray(zero_point), "zp")]
    nodes = [helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
             helper.make_node("QuantizeLinear", ["xf", "scale", "zp"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "scale", "zp"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if extra_reader:
        outputs.append(helper.make_tensor_value_info("xf", TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", source, [2, 128])], outputs,
                              initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)


@pytest.mark.parametrize("extra_reader", [False, True])
def test_a_lossless_quantize_of_uint8_pixels_is_dropped(extra_reader):
    x = np.arange(256, dtype=np.uint8).reshape(2, 128)  # every byte value
    model = cast_then_quantized(1.0, np.uint8(0), extra_reader=extra_reader)
    rewritten = drop_lossless_quantize(copy(model))
    # the Cast stays only while something else reads its floats
    expected = ["Cast", "DequantizeLinear"] if extra_reader else ["DequantizeLinear"]
    assert [n.op_type for n in rewritten.graph.node] == expected
    assert rewritten.graph.node[-1].input[0] == "x"
    before, after = run(model, x), run(rewritten, x)
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    assert np.array_equal(after[0], x.astype(np.float32))


@pytest.mark.parametrize("case", ["scale 0.5", "zero point 3", "int8 pixels"])
def test_quantizes_that_change_values_are_kept(case):
    scale = 0.5 if case == "scale 0.5" else 1.0
    zero_point = np.uint8(3 if case == "zero point 3" else 0)
    source = TensorProto.INT8 if case == "int8 pixels" else TensorProto.UINT8  # -5 would saturate to 0
    model = cast_then_quantized(scale, zero_point, source)
    assert drop_lossless_quantize(copy(model)) == model
