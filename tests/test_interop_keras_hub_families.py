"""keras-hub families beyond ViT (issue 13): each backbone built from a tiny config with random
weights; from_keras_hub's z0 against the backbone's own embedding output (what its encoder gets),
fast within the bound on every backend, exact bit-identical across backends, ONNX within the bound.

keras-hub backbones run only at the size they were built for, so "another size" is another
backbone: DINOv2 built at a size other than its position_embedding_shape (its table resampled at
build time), and so400m-like geometries where the image is not a multiple of the patch.
"""

import numpy as np
import pytest

import vitstem
from support.export_cases import run_ort
from support.keras_hub_peers import CASES, TINY
from support.keras_hub_peers import build as _build
from support.keras_hub_peers import peer_z0 as _peer_z0
from support.reference import assert_agrees
from vitstem.backends.numpy.bound import fast_error_bound
from vitstem.export import build_onnx
from vitstem.interop import from_keras_hub

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("case", sorted(CASES))
def test_family_z0_matches_the_backbone_on_every_engine(case):
    family, config = CASES[case]
    backbone = _build(family, **config)
    spec, weights = from_keras_hub(backbone)
    x = np.random.default_rng(1).standard_normal((2, *spec.input_shape(1)[1:])).astype(np.float32)
    assert_agrees(spec, weights, x, _peer_z0(family, backbone, x))
    exact = vitstem.forward(spec, weights, x, profile="exact")
    for backend in ("torch", "tensorflow"):
        assert np.array_equal(vitstem.forward(spec, weights, x, backend=backend, profile="exact"), exact), backend
    fast = run_ort(build_onnx(spec, weights), x)
    assert np.all(np.abs(fast - exact.astype(np.float64)) <= fast_error_bound(spec, weights, x))


def test_facts_read_from_each_family():
    facts = {}
    for case in ("deit", "clip", "siglip_remainder", "dinov2_registers", "dinov3", "vitdet"):
        family, config = CASES[case]
        spec, _ = from_keras_hub(_build(family, **config))
        facts[case] = (spec.prefix_tokens, spec.position_embedding.kind, spec.pre_norm is not None,
                       spec.patch_bias, spec.patch_grid(), spec.input.remainder)
    assert facts == {
        "deit": (("cls_token", "dist_token"), "learned", False, True, (4, 3), "refuse"),
        "clip": (("cls_token",), "learned", True, False, (4, 4), "refuse"),
        "siglip_remainder": ((), "learned", False, True, (5, 5), "drop"),
        "dinov2_registers": (("cls_token", "reg_tokens[0]", "reg_tokens[1]"), "learned", False, True, (4, 4),
                             "refuse"),
        "dinov3": (("cls_token", "reg_tokens[0]", "reg_tokens[1]"), "none", False, True, (4, 4), "refuse"),
        "vitdet": ((), "learned", False, True, (4, 4), "refuse"),
    }


def test_clip_position_ids_are_read_from_the_model():
    import keras_hub

    fresh = keras_hub.models.CLIPVisionEncoder(image_shape=(16, 16, 3), patch_size=8, **TINY)  # ids all zero
    spec, weights = from_keras_hub(fresh)
    table = fresh.embedding.position_embedding.embeddings.numpy()
    assert np.array_equal(weights["pos_embed"][0], np.repeat(table[:1], 5, axis=0))


def test_an_unknown_model_is_refused_with_the_families_named():
    import keras

    with pytest.raises(vitstem.SpecError, match="nor one of CLIPVisionEncoder, .*ViTDetBackbone"):
        from_keras_hub(keras.layers.Dense(3))
