"""transformers ViT / DeiT from small configs (random weights, no downloads) -> from_hf -> same z0.

The peer's z0 is the output of its embeddings module (`model.embeddings(pixel_values, ...)`), the
hidden states the first encoder layer receives, in eval mode. The spec takes the processor's
output (normalised floats, preprocess None) unless a test passes `image_processor`, where we get
uint8 pixels and the peer gets ViTImageProcessor's own rescale + normalise.
"""

import numpy as np
import pytest

import vitstem
from support.hf_peers import hf_z0, tiny_config as _config, tiny_model as _model
from support.reference import assert_agrees
from vitstem.interop import from_hf


def _images(shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("kind,extra", [("vit", {}), ("deit", {}), ("vit", {"image_size": (24, 40), "patch_size": (8, 4)}),
                                        ("vit", {"qkv_bias": False, "patch_size": 4})])
def test_from_hf_matches_the_embeddings_output(kind, extra):
    model = _model(kind, **extra)
    spec, weights = from_hf(model)
    assert spec.prefix.dist_token == (kind == "deit") and spec.position_embedding.covers_prefix
    assert not spec.dynamic_image_size and spec.input.preprocess is None
    x = _images(spec.input_shape(2))
    assert_agrees(spec, weights, x, hf_z0(model, x))


def test_embeddings_module_and_classifier_wrapper_give_the_same_spec():
    import torch
    from transformers import ViTForImageClassification

    torch.manual_seed(0)
    classifier = ViTForImageClassification(_config("vit", num_labels=3)).eval()
    spec, weights = from_hf(classifier)
    spec2, weights2 = from_hf(classifier.vit.embeddings)
    assert spec == spec2.replace(name=spec.name) and all(np.array_equal(weights[k], weights2[k]) for k in weights)


@pytest.mark.parametrize("kind", ["vit", "deit"])
@pytest.mark.parametrize("size", [(48, 48), (32, 32), (24, 56), (16, 16)])
def test_interpolate_pos_encoding_matches_hf(kind, size):
    model = _model(kind)
    spec, weights = from_hf(model, interpolate_pos_encoding=True)
    assert spec.dynamic_image_size and spec.resample.policy == "hf_pytorch"
    x = _images((2, 3, *size))
    assert_agrees(spec, weights, x, hf_z0(model, x, interpolate=True), resampled_in_float32=size != (32, 32))


def test_same_patch_count_non_square_input_is_still_resampled():
    # HF skips interpolation only when the patch count matches AND the input is square; 16x64 at
    # patch 8 has the native 16 patches in a 2x8 grid, which HF (and the spec) resample from 4x4.
    import torch

    model = _model("vit")
    spec, weights = from_hf(model, interpolate_pos_encoding=True)
    x = _images((1, 3, 16, 64))
    peer = hf_z0(model, x, interpolate=True)
    with torch.no_grad():
        added = peer[0, 1:] - model.embeddings.patch_embeddings(torch.from_numpy(x))[0].numpy()
        native = model.embeddings.position_embeddings[0, 1:].numpy()
    assert np.abs(added - native).max() > 0.1  # HF did resample 4x4 -> 2x8
    assert_agrees(spec, weights, x, peer, resampled_in_float32=True)


def test_image_processor_becomes_the_spec_preprocessing():
    import torch
    from transformers import ViTImageProcessor

    processor = ViTImageProcessor(image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    model = _model("vit")
    spec, weights = from_hf(model, image_processor=processor)
    pre = spec.input.preprocess
    assert pre.scale == processor.rescale_factor and pre.mean == (0.485, 0.456, 0.406)
    pixels = np.random.default_rng(3).integers(0, 256, spec.input_shape(2), dtype=np.uint8)
    # The processor's own rescale + normalise (no resize: the images already have the model's size).
    normalised = processor(images=list(torch.from_numpy(pixels)), do_resize=False, return_tensors="pt")["pixel_values"]
    assert_agrees(spec, weights, pixels, hf_z0(model, normalised.numpy()))


def test_refusals_name_the_problem():
    with pytest.raises(vitstem.SpecError, match="square table grid"):
        from_hf(_model("vit", image_size=(24, 40), patch_size=8), interpolate_pos_encoding=True)
    with pytest.raises(vitstem.SpecError, match="object holds no transformers vision embeddings"):
        from_hf(object())
