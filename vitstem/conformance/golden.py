"""Golden vectors in the ONNX backend-test layout, so any runtime can be checked with standard onnx tooling:

    DIR/model.onnx                       exported with profile="exact" (float64 inside, bit-exact z0)
    DIR/test_data_set_0/input_0.pb       TensorProto: the batch as the graph takes it
    DIR/test_data_set_0/output_0.pb      TensorProto: z0 of the NumPy reference (exact profile)

Everything is a function of (spec, weights, seed), so regenerating gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..files import atomic_write_bytes
from ..spec import init_weights, load_spec, load_weights
from ..spec.presets import PRESETS
from ..spec.vocabulary import Layout
from .matrix import sample_images

_TINY = {"spec_version": 1, "in_channels": 3, "resample": {"policy": "timm"}}

# The committed set (conformance_tests/golden/NAME): small specs that each exercise one feature.
# name -> (spec document, preprocess_in_graph)
GOLDEN_SPECS: dict[str, tuple[dict, bool]] = {
    "vitstem_tiny_test": (PRESETS["vitstem_tiny_test"], False),
    "tiny_no_cls_sincos": ({
        **_TINY, "name": "tiny_no_cls_sincos", "image_size": [8, 12], "patch_size": [4, 4], "embed_dim": 8,
        "prefix": {"class_token": False},
        "position_embedding": {"kind": "sincos2d", "sincos_convention": "big_vision", "covers_prefix": False},
        "input": {"layout": Layout.NCHW, "preprocess": None}}, False),
    "tiny_registers_prenorm": ({
        **_TINY, "name": "tiny_registers_prenorm", "image_size": [8, 8], "patch_size": [4, 4], "embed_dim": 12,
        "patch_bias": False, "prefix": {"class_token": True, "register_tokens": 3},
        "position_embedding": {"kind": "learned", "covers_prefix": False},
        "pre_norm": {"eps": 1e-6}, "input": {"layout": Layout.NCHW, "preprocess": None}}, False),
    "tiny_nhwc_uint8": ({
        **_TINY, "name": "tiny_nhwc_uint8", "image_size": [6, 10], "patch_size": [2, 2], "embed_dim": 4,
        "prefix": {"class_token": True}, "position_embedding": {"kind": "learned", "covers_prefix": True},
        "input": {"layout": Layout.NHWC, "preprocess": {"scale": 1 / 255, "mean": [0.485, 0.456, 0.406],
                                                   "std": [0.229, 0.224, 0.225]}}}, True),
    "tiny_patch_norm_rms_pre": ({
        **_TINY, "name": "tiny_patch_norm_rms_pre", "image_size": [12, 16], "patch_size": [4, 4], "embed_dim": 8,
        "prefix": {"class_token": True, "register_tokens": 1},
        "position_embedding": {"kind": "learned", "covers_prefix": True},
        "patch_norm": {"kind": "layer_norm", "eps": 1e-6}, "pre_norm": {"kind": "rms_norm", "eps": 1e-6},
        "input": {"layout": Layout.NCHW, "preprocess": None}, "dynamic_image_size": True}, False),
    # input.remainder: drop (issue 18): 10x13 pixels, 4x3 patches: the last 2 rows and 1 column are dropped.
    "tiny_remainder_drop": ({
        **_TINY, "name": "tiny_remainder_drop", "image_size": [10, 13], "patch_size": [4, 3], "embed_dim": 8,
        "prefix": {"class_token": True}, "position_embedding": {"kind": "learned", "covers_prefix": False},
        "input": {"layout": Layout.NHWC, "remainder": "drop",
                  "preprocess": {"scale": 1 / 255, "mean": [0.5] * 3, "std": [0.5] * 3}},
        "dynamic_image_size": True}, False),
}


def write_golden(spec, out_dir, *, weights=None, seed: int = 0, batch: int = 2, opset=None,
                 preprocess_in_graph: bool = False) -> Path:
    """Export `spec` (exact profile) and write one test data set into `out_dir`; returns `out_dir`.

    `weights`: a safetensors path or a mapping (default: `init_weights(spec, seed)`).
    """
    import onnx
    from onnx import numpy_helper

    from .. import export_onnx
    from ..backends.numpy import forward

    from ..outputs import output_directory

    spec = load_spec(spec)
    data_set = ("test_data_set_0/input_0.pb", "test_data_set_0/output_0.pb")
    out = output_directory(out_dir, ("model.onnx", *data_set), [None if hasattr(weights, "keys") else weights])
    if weights is None:
        weights = init_weights(spec, seed)
    elif not hasattr(weights, "keys"):
        weights = load_weights(weights, spec)
    (out / "test_data_set_0").mkdir(exist_ok=True)
    model_path = export_onnx(spec, weights, out / "model.onnx", opset=opset, profile="exact",
                             preprocess_in_graph=preprocess_in_graph) or out / "model.onnx"
    graph = onnx.load(str(model_path)).graph
    images = sample_images(spec, batch, spec.image_size, seed)
    z0 = forward(spec, weights, images, profile="exact")
    feed = graph_input(graph.input[0], spec, images)
    for name, array, value in (("input_0.pb", feed, graph.input[0]), ("output_0.pb", z0, graph.output[0])):
        atomic_write_bytes(out / "test_data_set_0" / name,
                           numpy_helper.from_array(array, value.name).SerializeToString())
    return out


def graph_input(value_info, spec, images: np.ndarray) -> np.ndarray:
    """The batch as a graph input wants it: uint8 NHWC frames (preprocess in the graph) or float32 in the spec's layout."""
    from onnx import TensorProto

    if value_info.type.tensor_type.elem_type == TensorProto.UINT8:
        return images if spec.input.layout == Layout.NHWC else np.ascontiguousarray(images.transpose(Layout.NHWC.from_nchw))
    return images.astype(np.float32)


def write_golden_suite(root) -> list[Path]:
    """Regenerate every set of GOLDEN_SPECS under `root` (what conformance_tests/golden holds)."""
    return [write_golden(doc, Path(root) / name, preprocess_in_graph=in_graph)
            for name, (doc, in_graph) in GOLDEN_SPECS.items()]
