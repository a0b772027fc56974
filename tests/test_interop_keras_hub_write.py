"""to_keras_hub(spec, weights, backbone=...): the stem written into a built keras-hub backbone of every family
from_keras_hub reads. Round trip (from_keras_hub of the written backbone gives the same spec and the same
weights, bit for bit) and the backbone's own embedding output (what its encoder gets) against the reference
z0 within the fast bound; a transformers SigLIP's stem written into keras-hub's SigLIP; refusals name the
field. Tiny random backbones; nothing is downloaded."""

import numpy as np
import pytest

import vitstem
from support.keras_hub_peers import CASES, vit_backbone
from support.keras_hub_peers import build as _build
from support.keras_hub_peers import peer_z0 as _peer_z0
from support.reference import assert_agrees
from vitstem.interop import from_keras_hub, to_keras_hub

pytestmark = pytest.mark.slow


def _without_name(spec):
    doc = spec.to_dict()
    doc.pop("name")
    return doc


def _round_trip(source, target, peer_z0):
    spec, weights = from_keras_hub(source)
    assert to_keras_hub(spec, weights, backbone=target) is target
    back_spec, back = from_keras_hub(target)
    assert _without_name(back_spec) == _without_name(spec)
    assert list(back) == list(weights) and all(np.array_equal(back[k], weights[k]) for k in weights)
    x = np.random.default_rng(1).standard_normal((2, *spec.input_shape(1)[1:])).astype(np.float32)
    assert_agrees(spec, weights, x, peer_z0(target, x))


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_family_round_trips_into_a_fresh_backbone(case):
    family, config = CASES[case]
    source, target = _build(family, seed=0, **config), _build(family, seed=1, **config)
    before = {v.path: v.numpy().copy() for v in target.weights}
    _round_trip(source, target, lambda b, x: _peer_z0(family, b, x))
    changed = {p for v in target.weights if not np.array_equal(before[(p := v.path)], v.numpy())}
    assert changed and all("embed" in p or "token" in p or "pre_layer_norm" in p or "pos" in p for p in changed), changed


def test_vit_backbone_round_trips():
    from keras import ops

    layer = lambda b: b.get_layer("vit_patching_and_embedding")  # noqa: E731
    _round_trip(vit_backbone(seed=0), vit_backbone(seed=1), lambda b, x: ops.convert_to_numpy(layer(b)(x)))


def test_a_transformers_siglip_stem_into_keras_hubs_siglip():
    import torch
    from transformers import SiglipVisionConfig, SiglipVisionModel

    from vitstem.interop import from_hf

    torch.manual_seed(0)
    hf = SiglipVisionModel(SiglipVisionConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1,
                                              num_attention_heads=2, intermediate_size=32)).eval()
    spec, weights = from_hf(hf)  # NCHW, like the peer; keras-hub takes NHWC: same weights, its own layout
    family, config = CASES["siglip_remainder"]
    target = _build(family, seed=1, **{**config, "image_shape": (32, 32, 3), "patch_size": 8})
    to_keras_hub(spec, weights, backbone=target)
    x = np.random.default_rng(2).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        want = hf.embeddings(torch.from_numpy(x)).numpy()
    got = _peer_z0(family, target, x.transpose(0, 2, 3, 1))
    assert_agrees(spec, weights, x, got)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_stems_a_backbone_cannot_hold_are_refused_naming_the_field():
    family, config = CASES["siglip_remainder"]
    siglip = _build(family, **config)
    deit_spec, deit_weights = from_keras_hub(_build(*CASES["deit"][:1], **CASES["deit"][1]))
    with pytest.raises(vitstem.SpecError, match=r"image_size: SigLIPVisionEncoder has \[38, 38\], the spec \[32, 24\]"):
        to_keras_hub(deit_spec, deit_weights, backbone=siglip)
    dinov3 = _build(*CASES["dinov3"][:1], **CASES["dinov3"][1])
    spec, weights = from_keras_hub(_build(*CASES["dinov2_registers"][:1], **CASES["dinov2_registers"][1]))
    with pytest.raises(vitstem.SpecError, match=r"pos_embed: DINOV3Backbone adds no position to table rows \[0, 1, 2"):
        to_keras_hub(spec, weights, backbone=dinov3)
    clip_family, clip_config = CASES["clip"]
    clip_spec, clip_weights = from_keras_hub(_build(clip_family, **clip_config))
    clip_weights = {**clip_weights}
    clip_spec = clip_spec.replace(patch_bias=True)
    clip_weights["patch_embed.bias"] = np.ones(16, np.float32)
    with pytest.raises(vitstem.SpecError, match="patch_bias: CLIPVisionEncoder's patch conv has no bias"):
        to_keras_hub(clip_spec, clip_weights, backbone=_build(clip_family, seed=1, **clip_config))
    vitdet_family, vitdet_config = CASES["vitdet"]
    vitdet_spec, vitdet_weights = from_keras_hub(_build(vitdet_family, **vitdet_config))
    with pytest.raises(vitstem.SpecError, match="input.preprocess: ViTDetBackbone normalises"):
        to_keras_hub(vitdet_spec.replace(input={"layout": "NHWC", "preprocess": None}), vitdet_weights,
                     backbone=_build(vitdet_family, seed=1, **vitdet_config))
