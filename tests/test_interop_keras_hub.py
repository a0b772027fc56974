"""keras-hub ViT (small configs, random weights) <-> our spec: the same z0 both ways, within the bound.

The peer's z0 is the output of the backbone's `vit_patching_and_embedding` layer (the input of
its encoder), called on the same normalised float images (the spec's preprocess is None: the
backbone takes what its ViTImageConverter produces).
"""

import numpy as np
import pytest

import vitstem
from support.keras_hub_peers import vit_backbone as _backbone
from support.reference import assert_agrees
from vitstem.interop import from_keras_hub, to_keras_hub


def keras_z0(layer, x: np.ndarray) -> np.ndarray:
    from keras import ops

    return ops.convert_to_numpy(layer(x))


def _images(shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


CONFIGS = {
    "cls": {},
    "no_class_token": dict(use_class_token=False),
    "no_patch_bias": dict(use_patch_bias=False),
    "non_square": dict(image_shape=(24, 40, 3), patch_size=(8, 4)),
    "channels_first": dict(image_shape=(3, 16, 24), patch_size=4, data_format="channels_first"),
}


@pytest.mark.slow
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_from_keras_hub_matches_the_embedding_layer(config):
    backbone = _backbone(**CONFIGS[config])
    spec, weights = from_keras_hub(backbone)
    layer = backbone.get_layer("vit_patching_and_embedding")
    assert spec.input.layout == ("NCHW" if layer.data_format == "channels_first" else "NHWC")
    x = _images(spec.input_shape(2))
    assert_agrees(spec, weights, x, keras_z0(layer, x))
    spec2, _ = from_keras_hub(layer)  # the layer itself works too
    assert spec2.replace(name=spec.name) == spec


ROUND_TRIP = {
    "learned_cls": {},
    "no_position_for_cls": dict(position_embedding={"kind": "learned", "covers_prefix": False}),
    "no_prefix_nhwc": dict(prefix={"class_token": False}, input={"layout": "NHWC", "preprocess": None}),
    "big_vision_sincos": dict(embed_dim=16, position_embedding={"kind": "sincos2d", "sincos_convention": "big_vision",
                                                  "covers_prefix": False}),
    "no_table_no_bias": dict(patch_bias=False, position_embedding={"kind": "none"}),
}


@pytest.mark.parametrize("case", sorted(ROUND_TRIP))
def test_to_keras_hub_layer_reproduces_our_z0(case):
    base = dict(dynamic_image_size=False, prefix={"class_token": True}, image_size=[12, 20])  # grid 3x10, D 8
    spec = vitstem.load_spec("vitstem_tiny_test").replace(**{**base, **ROUND_TRIP[case]})
    weights = vitstem.init_weights(spec, seed=4)
    layer = to_keras_hub(spec, weights)
    x = _images(spec.input_shape(2))
    assert_agrees(spec, weights, x, keras_z0(layer, x))


def test_to_keras_hub_refuses_what_keras_hub_cannot_express():
    tiny = vitstem.load_spec("vitstem_tiny_test")  # dist token, registers, dynamic size
    with pytest.raises(vitstem.SpecError) as info:
        to_keras_hub(tiny, vitstem.init_weights(tiny))
    assert "distillation" in str(info.value) and "dynamic_image_size" in str(info.value)
    clip = vitstem.load_spec("vit_base_patch16_clip_224")
    with pytest.raises(vitstem.SpecError, match="pre_norm"):
        to_keras_hub(clip, vitstem.init_weights(clip))
    patch_norm = clip.replace(pre_norm=None, patch_norm={"kind": "layer_norm"})
    with pytest.raises(vitstem.SpecError, match="patch_norm: keras-hub ViT has no norm after the patch projection"):
        to_keras_hub(patch_norm, vitstem.init_weights(patch_norm))


@pytest.mark.slow
def test_keras_channels_first_bias_bug_is_caught_not_silently_wrong():
    """keras.ops.add on TF treats a (1, D, 1, 1) bias as NHWC when the last axis is also D long."""
    import keras

    conv = keras.layers.Conv2D(8, 4, strides=4, data_format="channels_first")
    conv.build((None, 3, 12, 32))  # output (B, 8, 3, 8): width 8 == filters 8
    conv.bias.assign(np.arange(8, dtype=np.float32))
    out = keras.ops.convert_to_numpy(conv(np.zeros((1, 3, 12, 32), np.float32)))
    assert np.array_equal(out[0, 0, 0], np.arange(8)) and not np.array_equal(out[0, :, 0, 0], np.arange(8))
    spec = vitstem.load_spec("vitstem_tiny_test").replace(dynamic_image_size=False, prefix={"class_token": True})
    assert spec.patch_grid()[1] == spec.embed_dim and spec.input.layout == "NCHW"
    with pytest.raises(vitstem.SpecError, match="use NHWC"):
        to_keras_hub(spec, vitstem.init_weights(spec))
    with pytest.raises(vitstem.SpecError, match="use NHWC"):
        from_keras_hub(_backbone(image_shape=(3, 12, 32), patch_size=4, hidden_dim=8, data_format="channels_first"))


@pytest.mark.slow
@pytest.mark.parametrize("scale,offset", [(1 / 127.5, -1.0),  # ViT's value range (-1, 1)
                                          ([1 / (255 * s) for s in (0.229, 0.224, 0.225)],
                                           [-m / s for m, s in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])])
def test_image_converter_becomes_the_spec_preprocessing(scale, offset):
    from keras import ops
    from keras_hub.layers import ViTImageConverter

    converter = ViTImageConverter(scale=scale, offset=offset)  # no image_size: no resizing
    backbone = _backbone()
    spec, weights = from_keras_hub(backbone, image_converter=converter)
    pixels = np.random.default_rng(5).integers(0, 256, spec.input_shape(2), dtype=np.uint8)
    normalised = ops.convert_to_numpy(converter(pixels))
    assert_agrees(spec, weights, pixels, keras_z0(backbone.get_layer("vit_patching_and_embedding"), normalised))
