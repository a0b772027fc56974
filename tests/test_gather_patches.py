"""The Gather patchify of one-size fast graphs against the reference's patchify: every value in its place."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from vitstem.backends.numpy.stem import patchify
from vitstem.export import graph as G
from vitstem.export import patches
from vitstem.spec.vocabulary import INPUT_NAME, Layout

CASES = [  # channels, (H, W), patch
    (3, (12, 20), (3, 4)),
    (1, (4, 6), (2, 2)),
    (4, (8, 6), (4, 2)),
    (3, (16, 16), (16, 16)),  # one patch
]


def _gathered(layout: Layout, channels: int, size, patch, images: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    g = G.GraphBuilder(17)
    grid = (size[0] // patch[0], size[1] // patch[1])
    out = patches.gather_patches(g, INPUT_NAME, layout, channels, patch, grid)
    shape = list(layout.shape("B", channels, *size))
    graph = helper.make_graph(g.nodes, "gather", [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {INPUT_NAME: images})[0]


@pytest.mark.parametrize("channels,size,patch", CASES)
def test_nchw_gather_is_the_reference_patchify(channels, size, patch):
    images = np.arange(3 * channels * size[0] * size[1], dtype=np.float32).reshape(3, channels, *size)
    assert np.array_equal(_gathered(Layout.NCHW, channels, size, patch, images), patchify(images, patch))


@pytest.mark.parametrize("channels,size,patch", CASES)
def test_nhwc_gather_is_the_reference_patchify_in_hwc_order(channels, size, patch):
    nchw = np.arange(2 * channels * size[0] * size[1], dtype=np.float32).reshape(2, channels, *size)
    nhwc = np.ascontiguousarray(nchw.transpose(0, 2, 3, 1))
    ref = patchify(nchw, patch)  # (B, N, C*Ph*Pw); NHWC flattens a patch as (Ph, Pw, C)
    hwc = ref.reshape(*ref.shape[:2], channels, *patch).transpose(0, 1, 3, 4, 2).reshape(ref.shape)
    assert np.array_equal(_gathered(Layout.NHWC, channels, size, patch, nhwc), hwc)


def test_index_is_stored_as_first_runs_plus_offsets():
    # ViT-B/16 at 224: 196 first runs and 3 * 16 offsets, summed to the (196, 48) index of 16-pixel runs
    first, offsets = patches.pixel_runs(Layout.NCHW, 3, (16, 16), (14, 14))
    assert first.shape == (196, 1) and offsets.shape == (1, 48) and first.dtype == offsets.dtype == np.int32
    index = first + offsets
    # patch (0, 1) starts at pixel (c=0, y=0, x=16): run 1; its row r=1 of channel 0 is run 14 (one 224-pixel
    # row later); channel 1 starts 224 rows (14 runs each) later
    assert index[1, 0] == 1 and index[1, 1] == 1 + 14 and index[1, 16] == 1 + 224 * 14
    assert index[14, 0] == 16 * 14  # patch (1, 0): pixel row 16
    assert len(np.unique(index)) == index.size == 3 * 224 * 14  # every run once


def test_index_of_an_image_past_int32_runs_is_int64():
    # a 65536 x 32768 image in runs of 16 pixels: 3 channels make 3 * 2**27 runs (int32); 16 channels make
    # 2**31 runs, one past int32's largest index, so the index is int64
    small = patches.pixel_runs(Layout.NCHW, 3, (16, 16), (2**12, 2**11))
    assert small[0].dtype == np.int32
    first, offsets = patches.pixel_runs(Layout.NCHW, 16, (16, 16), (2**12, 2**11))
    assert first.dtype == offsets.dtype == np.int64
    assert int(first.max() + offsets.max()) == 2**31 - 1  # the last run of the last channel
