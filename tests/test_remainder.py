"""input.remainder (issue 18): images that are not a multiple of the patch.

`drop` must be a strided conv's semantics, checked against an independent computation (the
refuse spec on the hand-cropped image), every engine (exact bit-identical, fast within the
bound), ONNX Runtime (fixed, list and dynamic sizes; uint8 in graph, NHWC), the edge runtime,
and the peers: timm's so400m/14 at 384 and a transformers ViTModel whose image_size is 384 at
patch 14 (small widths, random weights, nothing downloaded).
"""

from __future__ import annotations

import numpy as np
import pytest

import vitstem
from support.export_cases import images, run_ort, small_spec
from support.reference import assert_agrees
from vitstem.backends.numpy.bound import fast_error_bound
from vitstem.errors import ExportError, InputError, SpecError
from vitstem.export import build_onnx, export_onnx
from vitstem.interop import from_hf, from_timm

PIXELS = {"scale": 1 / 255, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def drop_spec(layout="NCHW", preprocess=None, **changes):
    """18x27 pixels, 4x4 patches: 2 rows and 3 columns past the last whole patch."""
    return small_spec(image_size=[18, 27], input={"layout": layout, "preprocess": preprocess, "remainder": "drop"},
                      **changes)


def cropped(spec, x, hw):
    """The image cut by hand to its whole patches, in the spec's layout."""
    (gh, gw), (ph, pw) = spec.patch_grid(hw), spec.patch_size
    cut = x[:, :, :gh * ph, :gw * pw] if spec.input.layout == "NCHW" else x[:, :gh * ph, :gw * pw]
    return np.ascontiguousarray(cut)


def as_refuse(spec, hw):
    """The same stem under refuse at the cropped size (the only one v1 could express)."""
    (gh, gw), (ph, pw) = spec.patch_grid(hw), spec.patch_size
    return spec.replace(image_size=[gh * ph, gw * pw], input={**spec.to_dict()["input"], "remainder": "refuse"},
                        position_embedding={**spec.to_dict()["position_embedding"], "grid": list(spec.pos_grid)})


# -- the spec ----------------------------------------------------------------------------------
def test_refuse_names_the_size_the_patch_what_peers_do_and_the_field():
    doc = {**vitstem.load_spec("vit_so400m_patch14_siglip_384").to_dict(), "input": {"layout": "NCHW"}}
    with pytest.raises(SpecError) as info:
        vitstem.load_spec(doc)
    assert info.value.problems == [
        (f"image_size[{i}]", f"384 is not divisible by patch_size[{i}] = 14; timm and transformers silently drop "
                             f"the trailing 6 pixel {lines} (a strided conv ignores them); set input.remainder: drop "
                             "to do the same") for i, lines in ((0, "rows"), (1, "columns"))]
    refuse = small_spec()
    with pytest.raises(InputError, match=r"image size 18x27 is not a positive multiple of the patch size 4x4; "
                                         r"timm and transformers silently drop the trailing 2 pixel rows .*"
                                         r"set input.remainder: drop"):
        vitstem.forward(refuse, vitstem.init_weights(refuse), images(refuse, hw=(18, 27)))


def test_drop_rounds_the_grid_down_and_needs_one_whole_patch():
    spec = vitstem.load_spec("vit_so400m_patch14_siglip_384")
    assert spec.input.remainder == "drop" and spec.patch_grid() == (27, 27) and spec.num_tokens() == 729
    assert drop_spec().patch_grid((7, 31)) == (1, 7)
    with pytest.raises(InputError, match="image size 3x31 is smaller than the patch size 4x4"):
        drop_spec().patch_grid((3, 31))
    with pytest.raises(SpecError, match=r"image_size\[1\]: 3 is smaller than patch_size\[1\] = 4"):
        drop_spec().replace(image_size=[8, 3])
    with pytest.raises(SpecError, match=r"input.remainder: \"pad\" is not one of \"refuse\", \"drop\""):
        small_spec(input={"remainder": "pad"})


def test_refuse_is_the_v1_default_and_leaves_the_digest_unchanged():
    spec = small_spec()
    explicit = small_spec(input={**spec.to_dict()["input"], "remainder": "refuse"})
    assert spec.input.remainder == "refuse" and explicit == spec and explicit.digest() == spec.digest()
    assert "remainder" not in spec.to_json() and '"remainder":"drop"' in drop_spec().to_json()
    assert vitstem.load_spec("vit_base_patch16_224").digest() == \
        "sha256:c3a170f1003b7ed75125644fbe7fb29675f213463440e68e74437462234496d8"  # the digest before the field


# -- engines -----------------------------------------------------------------------------------
@pytest.mark.parametrize("layout,preprocess", [("NCHW", None), ("NHWC", PIXELS)])
def test_drop_is_the_refuse_stem_on_the_cropped_image_on_every_engine(layout, preprocess):
    spec = drop_spec(layout, preprocess, pre_norm={"eps": 1e-6}, patch_bias=False)
    weights = vitstem.init_weights(spec, seed=3)
    for hw in [(18, 27), (19, 22)]:  # native (no resampling) and another grid (resampled table)
        x = images(spec, 2, hw)
        exact = vitstem.forward(spec, weights, x, profile="exact")
        assert exact.shape == (2, spec.num_tokens(hw), spec.embed_dim)
        assert np.array_equal(exact, vitstem.forward(as_refuse(spec, hw), weights, cropped(spec, x, hw),
                                                     profile="exact"))
        bound = fast_error_bound(spec, weights, x)
        for backend in ("numpy", "torch", "tensorflow"):
            assert np.array_equal(vitstem.forward(spec, weights, x, backend=backend, profile="exact"), exact), backend
            fast = vitstem.forward(spec, weights, x, backend=backend, profile="fast")
            assert np.all(np.abs(fast - exact.astype(np.float64)) <= bound), backend


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_onnx_crops_in_graph_for_fixed_list_and_dynamic_sizes(layout):
    spec = drop_spec(layout, PIXELS, pre_norm={"eps": 1e-6})
    weights = vitstem.init_weights(spec, seed=5)
    sizes = [(18, 27), (19, 22), (16, 24)]  # 19x22 and 16x24: another grid; 18x27 and 16x24: the same one
    for hw in sizes:
        x = images(spec, 2, hw)
        exact = vitstem.forward(spec, weights, x, profile="exact")
        frames = np.ascontiguousarray((x if layout == "NHWC" else x.transpose(0, 2, 3, 1)).astype(np.uint8))
        for mode in (["fixed"] if hw == sizes[0] else []) + [sizes, "dynamic"]:
            bound = fast_error_bound(spec, weights, x, resampled_in_float32=mode == "dynamic")
            for in_graph in (False, True):
                feed = frames if in_graph else x
                fast = run_ort(build_onnx(spec, weights, image_size=mode, preprocess_in_graph=in_graph), feed)
                assert np.all(np.abs(fast - exact.astype(np.float64)) <= bound), (hw, mode, in_graph)
                if mode != "dynamic":  # a dynamic learned table needs Resize in float32: fast only
                    z = run_ort(build_onnx(spec, weights, image_size=mode, profile="exact", preprocess_in_graph=in_graph),
                                feed)
                    assert np.array_equal(z, exact), (hw, mode, in_graph)


def test_the_export_and_the_runtime_check_sizes_with_the_spec_rule(tmp_path):
    from vitstem.runtime import load

    spec = drop_spec()
    weights = vitstem.init_weights(spec)
    with pytest.raises(ExportError, match="image size 3x24 is smaller than the patch size 4x4"):
        build_onnx(spec, weights, image_size=[(3, 24)])
    with pytest.raises(ExportError, match=r"image size 18x26 is not a positive multiple .* input.remainder: drop"):
        build_onnx(small_spec(), vitstem.init_weights(small_spec()), image_size=[(18, 26)])
    path = export_onnx(spec, weights, tmp_path / "drop.onnx", image_size="dynamic") or tmp_path / "drop.onnx"
    stem = load(path)
    x = images(spec, 1, (21, 17))
    assert stem(x).shape == (1, spec.num_tokens((21, 17)), spec.embed_dim) == (1, 2 + 5 * 4, 16)
    with pytest.raises(InputError, match="image size 21x3 is smaller than the patch size 4x4"):
        stem(images(spec, 1, (21, 3)))


# -- peers -------------------------------------------------------------------------------------
def _timm_so400m(image: int, **kwargs):
    """timm's so400m/14 SigLIP from its registered config, 16 wide and one block deep."""
    import timm
    import torch

    from support.timm_peers import random_stem as _random_stem

    torch.manual_seed(0)
    return _random_stem(timm.create_model(f"vit_so400m_patch14_siglip_{image}", pretrained=False, num_classes=0,
                                          embed_dim=16, depth=1, num_heads=2, **kwargs))


@pytest.mark.slow
def test_timm_so400m_384_matches_timm_on_every_engine_and_in_onnx():
    from support.timm_peers import timm_z0

    model = _timm_so400m(384)
    spec, weights = from_timm(model)
    # The preset's facts, but 16 wide: no class token, table of 27x27 patches, mean = std = 0.5, drop.
    assert spec.to_dict() == vitstem.load_spec("vit_so400m_patch14_siglip_384").replace(
        name=spec.name, embed_dim=16).to_dict()
    pixels = np.random.default_rng(2).integers(0, 256, (2, 3, 384, 384)).astype(np.uint8)
    z_timm = timm_z0(model, ((pixels / 255 - 0.5) / 0.5).astype(np.float32))
    assert z_timm.shape == (2, 729, 16)
    assert_agrees(spec, weights, pixels, z_timm)
    exact = vitstem.forward(spec, weights, pixels, profile="exact")
    for backend in ("torch", "tensorflow"):
        assert np.array_equal(vitstem.forward(spec, weights, pixels, backend=backend, profile="exact"), exact)
    frames = np.ascontiguousarray(pixels.transpose(0, 2, 3, 1))
    assert np.array_equal(run_ort(build_onnx(spec, weights, profile="exact", preprocess_in_graph=True), frames), exact)
    fast = run_ort(build_onnx(spec, weights, preprocess_in_graph=True), frames)
    assert np.all(np.abs(fast - exact.astype(np.float64)) <= fast_error_bound(spec, weights, pixels))
    assert vitstem.load_spec("vit_so400m_patch14_siglip_224") == from_timm(_timm_so400m(224))[0].replace(
        name="vit_so400m_patch14_siglip_224", embed_dim=1152)


def test_timm_padding_is_refused_and_harmless_padding_is_not():
    from timm.models.vision_transformer import VisionTransformer

    args = dict(patch_size=8, embed_dim=16, depth=1, num_heads=2, num_classes=0, dynamic_img_pad=True)
    with pytest.raises(SpecError, match="dynamic_img_pad zero-pads images that are not a multiple of the patch size"):
        from_timm(VisionTransformer(img_size=36, **args).eval())
    with pytest.raises(SpecError, match="can refuse or drop those pixels, not pad them"):
        from_timm(VisionTransformer(img_size=32, dynamic_img_size=True, **args).eval())
    spec, _ = from_timm(VisionTransformer(img_size=32, **args).eval())  # strict at a multiple: never pads
    assert spec.input.remainder == "refuse" and spec.patch_grid() == (4, 4)


@pytest.mark.parametrize("interpolate,size", [(False, (384, 384)), (True, (200, 150))])
def test_hf_vit_with_image_size_not_a_multiple_of_the_patch_matches(interpolate, size):
    from support.hf_peers import hf_z0, tiny_model as _model

    model = _model("vit", image_size=384, patch_size=14)
    spec, weights = from_hf(model, interpolate_pos_encoding=interpolate)
    assert spec.input.remainder == "drop" and spec.patch_grid() == (27, 27)
    x = np.random.default_rng(4).standard_normal((1, 3, *size)).astype(np.float32)
    assert_agrees(spec, weights, x, hf_z0(model, x, interpolate), resampled_in_float32=interpolate)
    exact = vitstem.forward(spec, weights, x, profile="exact")
    assert np.array_equal(vitstem.forward(spec, weights, x, backend="torch", profile="exact"), exact)
