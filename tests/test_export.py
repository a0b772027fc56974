"""The framework-free ONNX export: every preset at the lowest and default opset, every opset, graph
quality, determinism, sizes, in-graph preprocessing and refusals, each against the NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest

import vitstem
from support.export_cases import TINY, assert_exact, images, run_ort, run_reference_evaluator, small_spec, spec_and_weights
from vitstem.backends.numpy.bound import fast_error_bound
from vitstem.errors import ExportError
from vitstem.export import build_onnx, export_onnx
from vitstem.export.options import DEFAULT_OPSET, MIN_OPSET, newest_opset
from vitstem.spec import preset_names
from vitstem.spec.vocabulary import FP16_MIN_COSINE as FP16_COSINE
from vitstem.spec.vocabulary import FP16_RELATIVE, INT8_RELATIVE
from vitstem.spec.vocabulary import INT8_MIN_COSINE as INT8_COSINE


def assert_within_bound(z, spec, weights, x, **bound_kwargs):
    exact = vitstem.forward(spec, weights, x, profile="exact")
    bound = fast_error_bound(spec, weights, x, **bound_kwargs)
    excess = np.abs(z.astype(np.float64) - exact) - bound
    assert z.shape == exact.shape and excess.max() <= 0, f"exceeds the bound by {excess.max():.3g}"


@pytest.mark.slow
@pytest.mark.parametrize("name", preset_names())
def test_every_preset_at_lowest_and_default_opset_in_onnxruntime(name):
    spec, weights = spec_and_weights(name)
    x = images(spec, batch=1)
    exact = vitstem.forward(spec, weights, x, profile="exact")
    bound = fast_error_bound(spec, weights, x)
    for opset in (MIN_OPSET, None):
        fast = run_ort(build_onnx(spec, weights, opset=opset), x)
        assert np.all(np.abs(fast.astype(np.float64) - exact) <= bound), (name, opset)
        if opset is not None and max(spec.image_size) > 224:
            continue  # the exact Scan graph is the same at every opset (swept below on small specs): save time
        assert_exact(run_ort(build_onnx(spec, weights, opset=opset, profile="exact"), x), spec, weights, x)


@pytest.mark.slow
@pytest.mark.parametrize("name", [TINY, "vit_small_patch32_224", "vit_base_patch16_clip_224",
                                  "big_vision_vit_s16_sincos_224"])
def test_reference_evaluator_agrees(name):
    """onnx's own evaluator (numpy kernels, not ORT's) on the same files: a second runtime."""
    spec, weights = spec_and_weights(name)
    x = images(spec, batch=1)
    for opset in (MIN_OPSET, None):
        assert_within_bound(run_reference_evaluator(build_onnx(spec, weights, opset=opset), x), spec, weights, x)
        assert_exact(run_reference_evaluator(build_onnx(spec, weights, opset=opset, profile="exact"), x),
                     spec, weights, x)


SWEEP_SPECS = {
    "tiny": lambda: vitstem.load_spec(TINY),
    "pre_norm_nhwc": lambda: small_spec(input={"layout": "NHWC", "preprocess": {"scale": 1 / 255, "mean": [0.5] * 3,
                                                                                 "std": [0.5] * 3}},
                                        pre_norm={"eps": 1e-6}, patch_bias=False),
}


@pytest.mark.parametrize("opset", range(MIN_OPSET, newest_opset() + 1))
def test_every_opset_runs_in_onnxruntime(opset):
    import onnx

    for make in SWEEP_SPECS.values():
        spec, weights = spec_and_weights(make())
        x = images(spec)
        fast = build_onnx(spec, weights, opset=opset)
        assert fast.opset_import[0].version == opset
        assert fast.ir_version == onnx.helper.find_min_ir_version_for(list(fast.opset_import))
        assert ("LayerNormalization" in {n.op_type for n in fast.graph.node}) == (spec.pre_norm is not None and opset >= 17)
        assert_within_bound(run_ort(fast, x), spec, weights, x)
        assert_exact(run_ort(build_onnx(spec, weights, opset=opset, profile="exact"), x), spec, weights, x)


def test_vit_b16_graph_is_the_minimal_one():
    import onnx

    spec, weights = spec_and_weights("vit_base_patch16_224")
    model = build_onnx(spec, weights)
    # One size: the patches gathered from the image's pixel runs (the index a constant Add that ORT folds),
    # one MatMul, one patch-table Add, then the constant prefix rows broadcast over the batch and
    # concatenated in front.
    assert [n.op_type for n in model.graph.node] == ["Add", "Reshape", "Gather", "Reshape", "MatMul", "Add",
                                                     "Shape", "Concat", "Expand", "Concat"]
    # Folded: the kernel (preprocessing inside), the (N, D) patch table (bias inside) and the (1, P, D)
    # prefix rows (cls + its position row); the index as (N, 1) first runs + (1, C*Ph) offsets; the rest
    # are 1-D shape constants.
    big = sorted(tuple(i.dims) for i in model.graph.initializer if len(i.dims) > 1)
    assert big == [(1, 1, 768), (1, 48), (196, 1), (196, 768), (768, 768)]
    # the same graph for a static batch; several sizes keep the Conv (it takes any size; the index is bound to one)
    assert [n.op_type for n in build_onnx(spec, weights, batch=8).graph.node][:5] == ["Add", "Reshape", "Gather",
                                                                                     "Reshape", "MatMul"]
    sized = spec.replace(dynamic_image_size=True)
    for sizes in ([(224, 224), (256, 256)], "dynamic"):
        ops = {n.op_type for n in build_onnx(sized, weights, image_size=sizes).graph.node}
        assert "Conv" in ops and "MatMul" not in ops, sizes
    # int8: the gathered patches quantized, then the prefix rows padded in front as bytes (the zero point:
    # they dequantize to 0), the MatMul's int32 sums scaled straight to float (no Q/DQ after it) and the
    # full table added: no Concat of float rows
    int8_model = build_onnx(spec, weights, precision="int8")
    int8 = [n.op_type for n in int8_model.graph.node]
    assert int8[int8.index("Gather"):] == ["Gather", "Reshape", "QuantizeLinear", "Pad", "DequantizeLinear", "MatMul",
                                           "Add"]
    q, pad = (next(n for n in int8_model.graph.node if n.op_type == op) for op in ("QuantizeLinear", "Pad"))
    assert pad.input[0] == q.output[0] and pad.input[2] == q.input[2]
    # int8 on uint8 frames: the bytes gathered and padded go to the integer product as they are (the calibrated
    # scale is 1 and the zero point 0: no Cast, no QuantizeLinear)
    frames = [n.op_type for n in build_onnx(spec, weights, precision="int8", preprocess_in_graph=True).graph.node]
    assert frames[frames.index("Gather"):] == ["Gather", "Reshape", "Pad", "DequantizeLinear", "MatMul", "Add"]
    # uint8 frames: gathered as bytes (runs of Pw * C), cast just before the MatMul
    nhwc = build_onnx(spec, weights, preprocess_in_graph=True)
    assert [n.op_type for n in nhwc.graph.node] == ["Add", "Reshape", "Gather", "Reshape", "Cast", "MatMul", "Add",
                                                    "Shape", "Concat", "Expand", "Concat"]
    # the prefix rows' batch size is read from the rows they join, not from the images
    assert next(n for n in model.graph.node if n.op_type == "Shape").input[0] == "position/Add"
    assert model.producer_name == "vitstem" and model.ir_version == 8 and model.opset_import[0].version == DEFAULT_OPSET
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    dims = [d.dim_param or d.dim_value for d in inferred.graph.output[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 197, 768]
    fixed = build_onnx(spec, weights, batch=8)
    out = onnx.shape_inference.infer_shapes(fixed, strict_mode=True).graph.output[0]
    assert [d.dim_value for d in out.type.tensor_type.shape.dim] == [8, 197, 768]
    # Exact keeps the reference's operations (no folding of mean/std) and its order, in float64:
    # the patch projection is a Scan over k (ordered sum) started from -0.0 shaped like the output.
    exact = [n.op_type for n in build_onnx(spec, weights, profile="exact").graph.node]
    assert exact == ["Cast", "Mul", "Sub", "Div", "Reshape", "Transpose", "Reshape",
                     "Shape", "Slice", "Concat", "ConstantOfShape", "Transpose", "Scan", "Add", "Pad", "Add", "Cast"]


def test_file_is_weights_plus_a_few_kilobytes_and_byte_identical(tmp_path):
    spec, weights = spec_and_weights("vit_base_patch16_224")
    a = export_onnx(spec, weights, tmp_path / "a.onnx")
    b = export_onnx(spec, dict(reversed(list(weights.items()))), tmp_path / "b.onnx")
    assert a.read_bytes() == b.read_bytes()
    weight_bytes = sum(w.nbytes for w in weights.values())
    assert a.stat().st_size < weight_bytes + 16_384
    for kwargs in ({"profile": "exact"}, {"precision": "fp16"}, {"image_size": "dynamic"}, {"precision": "int8"}):
        small, small_w = spec_and_weights(small_spec())
        one = export_onnx(small, small_w, tmp_path / "one.onnx", **kwargs).read_bytes()
        assert export_onnx(small, small_w, tmp_path / "two.onnx", **kwargs).read_bytes() == one, kwargs


def test_metadata_describes_the_model():
    import json

    from vitstem.spec.exported import read_metadata as read
    from vitstem.spec.digest import weights_digest

    spec, weights = spec_and_weights(TINY)
    meta = read(build_onnx(spec, weights, profile="exact", batch=3).metadata_props)
    assert vitstem.load_spec(json.loads(meta["spec"])) == spec and meta["spec_digest"] == spec.digest()
    assert meta["weights_digest"] == weights_digest(weights) and meta["version"] == vitstem.__version__
    options = json.loads(meta["export_options"])
    assert options["profile"] == "exact" and options["batch"] == 3 and options["sizes"] == [[12, 16]]


def test_fast_prefix_rows_are_the_reference_bits():
    """The class/dist/register rows are precomputed exactly as the reference's float32 sum."""
    spec, weights = spec_and_weights("deit_base_distilled_patch16_224")
    x = images(spec, batch=1)
    z = run_ort(build_onnx(spec, weights), x)
    np.testing.assert_array_equal(z[:, :2], vitstem.forward(spec, weights, x)[:, :2])


def test_fixed_size_other_than_the_table_grid_is_resampled_at_export():
    base = vitstem.load_spec("vit_small_patch16_224")
    _, weights = spec_and_weights(base)
    spec = base.replace(image_size=[160, 256], position_embedding={"kind": "learned", "covers_prefix": True,
                                                                     "grid": [14, 14]})
    x = images(spec, batch=1)
    model = build_onnx(spec, weights)
    assert "Resize" not in {n.op_type for n in model.graph.node}
    assert_within_bound(run_ort(model, x), spec, weights, x)
    assert_exact(run_ort(build_onnx(spec, weights, profile="exact"), x), spec, weights, x)


DYNAMIC_SPECS = {
    "timm_antialias": lambda: small_spec(),
    "hf_pytorch": lambda: small_spec(resample={"policy": "hf_pytorch"}),
    "tf_like_nhwc": lambda: small_spec(resample={"policy": "custom", "mode": "bicubic", "cubic_coeff_a": -0.5,
                                                 "antialias": False, "coordinates": "half_pixel",
                                                 "exclude_outside": True, "phase_steps": None},
                                       input={"layout": "NHWC", "preprocess": None}),
    "big_vision_bilinear": lambda: small_spec(resample={"policy": "big_vision"}, patch_bias=False,
                                              pre_norm={"eps": 1e-6}),
    "tiny": lambda: vitstem.load_spec(TINY),
    "mae_sincos": lambda: vitstem.load_spec("mae_vit_base_patch16_224").replace(dynamic_image_size=True),
    "big_vision_sincos": lambda: vitstem.load_spec("big_vision_vit_s16_sincos_224").replace(dynamic_image_size=True),
    "none": lambda: small_spec(position_embedding={"kind": "none"}),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", DYNAMIC_SPECS)
def test_dynamic_size_graph_at_several_sizes(case):
    spec, weights = spec_and_weights(DYNAMIC_SPECS[case]())
    ph, pw = spec.patch_size
    model = build_onnx(spec, weights, image_size="dynamic")
    learned = spec.position_embedding.kind == "learned"
    assert ("Resize" in {n.op_type for n in model.graph.node}) == learned
    exact_model = None if learned else build_onnx(spec, weights, image_size="dynamic", profile="exact")
    for gh, gw in [spec.patch_grid(), (3, 5), (7, 2), (spec.pos_grid[0] + 2, spec.pos_grid[1] - 1)]:
        x = images(spec, hw=(gh * ph, gw * pw))
        assert_within_bound(run_ort(model, x), spec, weights, x, resampled_in_float32=True)
        if exact_model is not None:  # sin-cos and constant tables are computed in float64 in the graph
            assert_exact(run_ort(exact_model, x), spec, weights, x)


def test_list_of_sizes_selects_each_table_and_rejects_others():
    spec, weights = spec_and_weights(small_spec())
    sizes = [(16, 24), (8, 24), (24, 8), (12, 12)]  # 8x24 and 24x8 have the same number of patches
    model = build_onnx(spec, weights, image_size=sizes)
    exact = build_onnx(spec, weights, image_size=sizes, profile="exact")
    assert "Resize" not in {n.op_type for n in model.graph.node}
    for hw in sizes:
        x = images(spec, hw=hw)
        assert_within_bound(run_ort(model, x), spec, weights, x)
        assert_exact(run_ort(exact, x), spec, weights, x)
    with pytest.raises(Exception, match="(?i)broadcast|shape|dimension"):  # 16x8: 4x2 grid, unlisted
        run_ort(model, images(spec, hw=(16, 8)))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vit_small_patch16_224", "big_vision_vit_s16_sincos_224"])
def test_preprocess_in_graph_takes_uint8_frames(name):
    import onnx

    spec, weights = spec_and_weights(name)
    frames = np.random.default_rng(5).integers(0, 256, size=(2, *spec.image_size, 3), dtype=np.uint8)
    as_spec = frames if spec.input.layout == "NHWC" else frames.transpose(0, 3, 1, 2)
    model = build_onnx(spec, weights, preprocess_in_graph=True)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert_within_bound(run_ort(model, frames), spec, weights, as_spec)
    assert_exact(run_ort(build_onnx(spec, weights, preprocess_in_graph=True, profile="exact"), frames), spec, weights,
                 as_spec)


# fp16: unit roundoff u16 = 2^-11 ~ 4.9e-4 on the kernel, the table and the output, with float32
# accumulation in ORT's CPU kernels: |z16 - z| <= 8 u16 max|z| = 4e-3 max|z| is the documented bound
# (measured <= 1.2e-3 max|z|), and every token's cosine similarity with z is >= 0.999.
# int8 (QDQ, per-channel int8 kernel, uint8 activations, MinMax calibration): |z8 - z| <= 0.1 max|z|
# and per-token cosine >= 0.99 (measured worst: 0.057 max|z| and 0.988... on the tiny N(0,1)-input spec,
# 0.04 max|z| and 0.9997 on the presets, whose pixels quantize losslessly).
# (The bounds live in vitstem.spec.vocabulary; this pins the documented values.)


def test_the_documented_fp16_and_int8_bounds():
    assert (FP16_RELATIVE, FP16_COSINE, INT8_RELATIVE, INT8_COSINE) == (4e-3, 0.999, 0.1, 0.98)


@pytest.mark.slow
@pytest.mark.parametrize("name", [TINY, "vit_base_patch16_clip_224", "vit_base_patch14_reg4_dinov2",
                                  "big_vision_vit_s16_sincos_224"])
def test_fp16_within_documented_bound(name):
    from support.export_cases import cosine_per_token

    spec, weights = spec_and_weights(name)
    x = images(spec)
    exact = vitstem.forward(spec, weights, x, profile="exact")
    for io in ("float32", "float16"):
        z = run_ort(build_onnx(spec, weights, precision="fp16", io_dtype=io), x.astype(io))
        assert z.dtype == np.dtype(io)
        assert np.abs(z.astype(np.float64) - exact).max() <= FP16_RELATIVE * np.abs(exact).max()
        assert cosine_per_token(z, exact).min() >= FP16_COSINE


@pytest.mark.slow
@pytest.mark.parametrize("name", [TINY, "vit_small_patch16_224", "vit_base_patch16_clip_224"])
def test_int8_within_documented_bound(name):
    from support.export_cases import cosine_per_token

    spec, weights = spec_and_weights(name)
    x = images(spec, seed=9)
    exact = vitstem.forward(spec, weights, x, profile="exact")
    model = build_onnx(spec, weights, precision="int8")
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in model.graph.node}
    # uint8 weights: ORT's u8*s8 kernel saturates on x86 without VNNI (22 % of max|z| off on an AVX2 EPYC).
    import onnx

    weight = next(i for i in model.graph.initializer if i.name.endswith("_quantized"))
    assert weight.data_type == onnx.TensorProto.UINT8, weight.name
    # the images are quantized once, and their dequantized copy feeds the projection only (a Shape reading
    # it made ORT keep a second, full float32 DequantizeLinear of the images)
    dequantized = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    assert not [n.name for n in model.graph.node if n.op_type == "Shape" and n.input[0] in dequantized]
    z = run_ort(model, x)
    assert np.abs(z - exact).max() <= INT8_RELATIVE * np.abs(exact).max()
    cosine = cosine_per_token(z, exact).min()
    assert cosine >= INT8_COSINE
    if spec.input.preprocess is not None:
        assert cosine >= 0.999
    calibrated = build_onnx(spec, weights, precision="int8", calibration=images(spec, batch=4, seed=3))
    assert cosine_per_token(run_ort(calibrated, x), exact).min() >= INT8_COSINE


@pytest.mark.parametrize("batch", [1, 3])
def test_int8_exports_at_a_static_batch(batch):
    """Calibration and the post-quantization check feed a static-batch graph runs of exactly its batch
    (8 synthetic images, 5 of the user's: neither a multiple of 3)."""
    from support.export_cases import cosine_per_token

    spec, weights = spec_and_weights(TINY)
    x = images(spec, batch=batch, seed=9)
    exact = vitstem.forward(spec, weights, x, profile="exact")
    for calibration in (None, images(spec, batch=5, seed=3)):
        model = build_onnx(spec, weights, precision="int8", batch=batch, calibration=calibration)
        assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == batch
        z = run_ort(model, x)
        assert np.abs(z - exact).max() <= INT8_RELATIVE * np.abs(exact).max()
        assert cosine_per_token(z, exact).min() >= INT8_COSINE


@pytest.mark.parametrize("kwargs, message", [
    (dict(precision="fp16", profile="exact"), "profile 'fast'"),
    (dict(precision="bf16"), "precision must be one of"),
    (dict(io_dtype="float16"), "needs precision 'fp16'"),
    (dict(opset=12), "opset must be an int from 13"),
    (dict(opset=10_000), "opset must be an int from 13"),
    (dict(batch=0), "batch must be"),
    (dict(image_size=[(15, 24)]), "not a positive multiple of the patch size 4x4"),
    (dict(image_size="dynamic", profile="exact"), "a fixed size or a list of sizes"),
    (dict(image_size="dynamic", opset=17), "opset >= 18, a fixed size, a list of sizes"),
    (dict(calibration=np.zeros((1, 3, 16, 24), np.float32)), "only used with precision 'int8'"),
    (dict(precision="int8", calibration=np.zeros((1, 16, 24, 3), np.float32)), "calibration images have shape"),
])
def test_refusals_name_the_alternatives(kwargs, message):
    spec, weights = spec_and_weights(small_spec())
    with pytest.raises(ExportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_onnx(spec, weights, **kwargs)


def test_refusals_that_depend_on_the_spec(tmp_path):
    spec, weights = spec_and_weights("vit_tiny_patch16_224")  # dynamic_image_size: false
    with pytest.raises(ExportError, match="dynamic_image_size: false"):
        build_onnx(spec, weights, image_size=[(224, 224), (384, 384)])
    tf, tf_w = spec_and_weights(small_spec(resample={"policy": "hf_tensorflow"}))
    with pytest.raises(ExportError, match="phase_steps.*a fixed size or a list of sizes"):
        build_onnx(tf, tf_w, image_size="dynamic")
    tiny, tiny_w = spec_and_weights(TINY)  # no preprocess
    with pytest.raises(ExportError, match="needs the spec's input.preprocess"):
        build_onnx(tiny, tiny_w, preprocess_in_graph=True)
    with pytest.raises(vitstem.errors.OutputError, match="does not exist"):
        export_onnx(tiny, tiny_w, tmp_path / "missing" / "m.onnx")
    with pytest.raises(vitstem.WeightsError, match="patch_embed.weight"):
        build_onnx(tiny, {k: v for k, v in tiny_w.items() if k != "patch_embed.weight"})


def test_interrupted_export_leaves_no_partial_file(tmp_path, monkeypatch):
    import os

    import vitstem.files

    spec, weights = spec_and_weights(TINY)
    target = tmp_path / "m.onnx"
    target.write_bytes(b"previous model")

    def killed(fd):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(vitstem.files.os, "fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(spec, weights, target)
    monkeypatch.setattr(vitstem.files.os, "fsync", os.fsync)
    assert target.read_bytes() == b"previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_ort_format_file_runs_the_same(tmp_path):
    import vitstem.runtime

    spec, weights = spec_and_weights(small_spec())
    path = export_onnx(spec, weights, tmp_path / "m.onnx", ort_format=True)
    x = images(spec)
    ort_file = tmp_path / "m.ort"
    assert ort_file.read_bytes()[4:8] == b"ORTM"
    # The .ort file is optimized without ORT's x86-only NCHWc layout (as convert_onnx_models_to_ort
    # does, for portability), so its Conv sums in another order: each within the bound, not equal.
    for model in (ort_file, path):
        assert_within_bound(vitstem.runtime.load(model)(x), spec, weights, x)


def test_export_imports_neither_torch_nor_tensorflow(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys, vitstem\n"
        "spec = vitstem.load_spec('vit_base_patch16_224')\n"
        f"vitstem.export_onnx(spec, vitstem.init_weights(spec), {str(tmp_path / 'm.onnx')!r})\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorflow', 'keras', 'jax'))\n"
        "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_dynamic_size_below_opset_18_without_antialias():
    """Before opset 18 Resize has no antialias attribute: policies without it still export and agree."""
    spec, weights = spec_and_weights(small_spec(resample={"policy": "hf_pytorch"}))
    model = build_onnx(spec, weights, image_size="dynamic", opset=MIN_OPSET)
    for hw in [(16, 24), (28, 12), (8, 36)]:
        x = images(spec, hw=hw)
        assert_within_bound(run_ort(model, x), spec, weights, x, resampled_in_float32=True)
        assert_within_bound(run_reference_evaluator(model, x), spec, weights, x, resampled_in_float32=True)
