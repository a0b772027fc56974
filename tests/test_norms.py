"""patch_norm and an RmsNorm pre_norm: the reference against hand-worked numbers and against timm's own
modules (VisionTransformer built from tiny configs with random weights), every engine bit-identical in
the exact profile and within the fast bound, and the bound itself against both kinds of norm."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

import vitstem
from vitstem.backends.numpy.bound import fast_error_bound
from vitstem.backends.torch.names import from_timm_names
from vitstem.spec import check_weights

from support.seeded import images_for

IMAGE = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)


def _spec(**changes):
    doc = {"spec_version": 1, "image_size": 4, "in_channels": 1, "patch_size": 2, "embed_dim": 3,
           "prefix": {"class_token": True}, "input": {"layout": "NCHW", "preprocess": None}}
    return vitstem.load_spec({**doc, **changes})


def test_patch_norm_hand_worked_normalises_patch_rows_before_the_table():
    """Patch rows [a, a+1, a+2] normalise to [-1, 0, 1] * s (LayerNorm) whatever a is; the table is added
    after the norm, and the class token (with its table row) is not normalised."""
    kernel = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [-1, 2, 0, 0]], np.float32).reshape(3, 1, 2, 2)
    g, b = np.array([1, 2, 3], np.float32), np.array([0, 0, 1], np.float32)
    table = np.arange(15, dtype=np.float32).reshape(1, 5, 3) / 8
    cls = np.array([[[5, -7, 9]]], np.float32)
    spec = _spec(patch_bias=False, patch_norm={"kind": "layer_norm", "eps": 1e-5})
    weights = {"patch_embed.weight": kernel, "patch_embed.norm.weight": g, "patch_embed.norm.bias": b,
               "cls_token": cls, "pos_embed": table}
    s = 1 / np.sqrt(2 / 3 + 1e-5)
    rows = np.array([[-s, 0, 3 * s + 1]] * 4)
    expected = (np.concatenate([cls[0].astype(np.float64), rows]) + table[0]).astype(np.float32)
    np.testing.assert_array_equal(vitstem.forward(spec, weights, IMAGE, profile="exact")[0], expected)
    np.testing.assert_allclose(vitstem.forward(spec, weights, IMAGE, profile="fast")[0], expected, rtol=1e-6, atol=1e-6)


def test_rms_norms_hand_worked():
    """RmsNorm: x / sqrt(mean(x^2) + eps) * weight, no centring, no bias; as patch_norm and as pre_norm."""
    kernel = np.array([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], np.float32).reshape(3, 1, 2, 2)
    g = np.array([1, 2, 3], np.float32)
    eps = 1e-6
    # Patch i embeds to [p_i, 0, 0] (p_i its top-left pixel): RmsNorm gives [sqrt(3) * p / sqrt(p^2 + 3 eps), 0, 0].
    spec = _spec(prefix={"class_token": False}, patch_bias=False, position_embedding={"kind": "none"},
                 patch_norm={"kind": "rms_norm", "eps": eps})
    weights = {"patch_embed.weight": kernel, "patch_embed.norm.weight": g}
    p = np.array([0, 2, 8, 10], np.float64)
    expected = np.zeros((4, 3))
    expected[:, 0] = p / np.sqrt(p * p / 3 + eps)
    np.testing.assert_array_equal(vitstem.forward(spec, weights, IMAGE, profile="exact")[0], expected.astype(np.float32))
    # As pre_norm the class token [c, c, c] is normalised too: c / sqrt(c^2 + eps) * g.
    spec = _spec(patch_bias=False, position_embedding={"kind": "none"}, pre_norm={"kind": "rms_norm", "eps": eps})
    weights = {"patch_embed.weight": kernel, "norm_pre.weight": g, "cls_token": np.full((1, 1, 3), 0.5, np.float32)}
    z = vitstem.forward(spec, weights, IMAGE, profile="exact")[0]
    np.testing.assert_array_equal(z[0], (0.5 / np.sqrt(0.25 + eps) * g.astype(np.float64)).astype(np.float32))
    np.testing.assert_array_equal(z[1:], (expected * g).astype(np.float32))


# id: (timm VisionTransformer kwargs, spec changes, input size). img 32, patch 8, D 16, depth 1.
def _timm_cases():
    from timm.layers import LayerNorm, RmsNorm

    return {
        "patch_layer_norm": ({"embed_norm_layer": LayerNorm},
                             {"patch_norm": {"kind": "layer_norm", "eps": 1e-6}}, (32, 32)),
        "patch_rms_pre_rms_registers": (
            {"embed_norm_layer": partial(RmsNorm, eps=1e-5), "pre_norm": True, "norm_layer": RmsNorm,
             "reg_tokens": 2, "no_embed_class": True},
            {"patch_norm": {"kind": "rms_norm", "eps": 1e-5}, "pre_norm": {"kind": "rms_norm", "eps": 1e-6},
             "patch_bias": False, "prefix": {"class_token": True, "register_tokens": 2},
             "position_embedding": {"kind": "learned", "covers_prefix": False}}, (32, 32)),
        "pre_rms_no_class_token": (
            {"pre_norm": True, "norm_layer": RmsNorm, "class_token": False, "global_pool": "avg"},
            {"pre_norm": {"kind": "rms_norm", "eps": 1e-6}, "patch_bias": False, "prefix": {"class_token": False}},
            (32, 32)),
        "patch_layer_norm_dynamic": ({"embed_norm_layer": LayerNorm, "dynamic_img_size": True},
                                     {"patch_norm": {"kind": "layer_norm", "eps": 1e-6}, "dynamic_image_size": True},
                                     (24, 40)),
    }


def _timm_model(kwargs):
    import timm.models.vision_transformer as tv
    import torch

    torch.manual_seed(0)
    model = tv.VisionTransformer(img_size=32, patch_size=8, embed_dim=16, depth=1, num_heads=2, num_classes=0,
                                 **kwargs).eval()
    with torch.no_grad():  # timm initialises norms to ones/zeros: make every weight count
        for name, param in model.named_parameters():
            if "norm" in name or name in ("cls_token", "reg_token"):
                param.add_(torch.randn_like(param) * 0.3)
    return model


def _timm_z0(model, images):
    import torch

    with torch.no_grad():
        x = torch.from_numpy(images)
        return model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x)))).numpy()


@pytest.mark.parametrize("case", ["patch_layer_norm", "patch_rms_pre_rms_registers", "pre_rms_no_class_token",
                                  "patch_layer_norm_dynamic"])
def test_timm_modules_agree_and_every_engine_is_exact(case, tmp_path):
    import onnxruntime as ort

    kwargs, changes, hw = _timm_cases()[case]
    model = _timm_model(kwargs)
    base = {"spec_version": 1, "image_size": 32, "patch_size": 8, "embed_dim": 16,
            "input": {"layout": "NCHW", "preprocess": None}}
    spec = vitstem.load_spec({**base, **changes})
    state = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    weights = check_weights(from_timm_names(state), spec)
    images = images_for(spec, batch=2, hw=hw, seed=3)
    exact = vitstem.forward(spec, weights, images, profile="exact")
    resized = tuple(hw) != spec.image_size
    bound = fast_error_bound(spec, weights, images)
    peer = _timm_z0(model, images)  # resamples its table in float32 at another size, as a graph's Resize
    assert peer.shape == exact.shape
    peer_bound = fast_error_bound(spec, weights, images, resampled_in_float32=resized)
    assert np.all(np.abs(peer - exact) <= peer_bound), float((np.abs(peer - exact) / peer_bound).max())
    # timm's modules really are the norms the spec names (not identities), so the test can fail:
    assert type(model.patch_embed.norm).__name__ == {None: "Identity", "layer_norm": "LayerNorm",
                                                     "rms_norm": "RmsNorm"}[changes.get("patch_norm", {}).get("kind")]
    assert not np.allclose(peer, vitstem.forward(spec.replace(patch_norm=None, pre_norm=None),
                                                 {k: v for k, v in weights.items() if "norm" not in k}, images),
                           atol=1e-2)
    # Every engine: exact bit-identical to the reference, fast within the bound.
    for backend in ("numpy", "torch", "tensorflow"):
        assert np.array_equal(vitstem.forward(spec, weights, images, backend=backend, profile="exact"), exact), backend
        fast = vitstem.forward(spec, weights, images, backend=backend, profile="fast")
        assert np.all(np.abs(fast - exact) <= bound), backend
    for profile in ("exact", "fast"):
        size = "dynamic" if profile == "fast" and spec.dynamic_image_size else [tuple(hw)]  # fast: Resize in the graph
        path = vitstem.export_onnx(spec, weights, tmp_path / f"{profile}.onnx", profile=profile, image_size=size)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (z,) = session.run(None, {"images": images})
        if profile == "exact":
            assert np.array_equal(z, exact)
        else:
            assert np.all(np.abs(z - exact) <= peer_bound)


@pytest.mark.parametrize("rows", ["ordinary", "offset"])
@pytest.mark.parametrize("kind", ["layer_norm", "rms_norm"])
@pytest.mark.parametrize("where", ["patch_norm", "pre_norm"])
def test_fast_engines_stay_within_the_bound(where, kind, rows):
    """Seeded weights ("ordinary": the bound is far below z0's scale) and rows with a large common offset
    and small variations ("offset": LayerNorm's cancellation, where the bound is loose and float32 engines
    really are far off): the float32 engines stay within the bound either way."""
    spec = vitstem.load_spec("vitstem_tiny_test").replace(**{where: {"kind": kind, "eps": 1e-6}})
    weights = vitstem.init_weights(spec, seed=5)
    if rows == "offset":
        weights["patch_embed.weight"] = weights["patch_embed.weight"] * np.float32(1e-3)
        weights["patch_embed.bias"] = weights["patch_embed.bias"] + np.float32(3.0)
    images = images_for(spec, batch=2, seed=5)
    exact = vitstem.forward(spec, weights, images, profile="exact")
    bound = fast_error_bound(spec, weights, images)
    assert np.all(np.isfinite(bound)) and np.all(bound > 0)
    if rows == "ordinary":
        assert bound.max() < 1e-4 * np.abs(exact).max()
    for backend in ("numpy", "torch", "tensorflow"):
        fast = vitstem.forward(spec, weights, images, backend=backend, profile="fast")
        assert np.all(np.abs(fast - exact) <= bound), (backend, float((np.abs(fast - exact) / bound).max()))
