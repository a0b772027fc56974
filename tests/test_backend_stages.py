"""Every backend implements the reference's stages under the reference's names and signatures, and in
float64 each stage gives the reference's bits (tensors in, tensors out), in either layout."""

from __future__ import annotations

import functools
import inspect

import numpy as np
import pytest

import vitstem
from vitstem.backends.numpy import stem as reference
from vitstem.spec.position import position_table
from support.seeded import images_for

STAGES = ("to_nchw", "crop", "preprocess", "patchify", "embed_patches", "prefix_tokens", "add_position",
          "normalize", "stages", "forward")
# NHWC pixels of a size past whole patches (remainder: drop), both norms, every prefix token, a learned
# table resampled to the batch's grid.
SPEC = vitstem.load_spec("vitstem_tiny_test").replace(
    input={"layout": "NHWC", "remainder": "drop",
           "preprocess": {"scale": 1 / 255, "mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3]}},
    patch_norm={"kind": "layer_norm"}, pre_norm={"kind": "rms_norm"})
HW = (14, 11)  # a 3x5 grid of 4x2 patches and 2 + 1 pixels left over


def backend_stem(name):
    if name == "torch":
        from vitstem.backends.torch import stem
    else:
        from vitstem.backends.tensorflow import stem
    return stem


@pytest.mark.parametrize("name", ["torch", "tensorflow"])
def test_stages_have_the_reference_names_and_signatures(name):
    stem = backend_stem(name)
    def positional(fn):  # extras are keyword-only: TensorFlow's forward `mixed`, the reference's `ordered`
        return [p.name for p in inspect.signature(fn).parameters.values() if p.kind != p.KEYWORD_ONLY]

    for stage in STAGES:
        assert positional(getattr(stem, stage)) == positional(getattr(reference, stage)), stage


def assert_float64_bits(name, ours, expected):
    """The reference's float64 bits; after the norms torch's within 2 ulp: its CPU float64 sqrt is not
    correctly rounded (measured: 1.3 % of uniform inputs 1 ulp off on AMD EPYC), so its exact profile
    can differ from the reference only where z0 sits within ulps of a float32 rounding tie."""
    if name == "torch":
        np.testing.assert_array_max_ulp(ours, expected, maxulp=2)
    else:
        assert np.array_equal(ours, expected)


def _tensors(name):
    """(to tensor, to numpy, float64 dtype) for a backend."""
    if name == "torch":
        import torch

        return torch.from_numpy, lambda t: t.detach().numpy(), torch.float64
    import tensorflow as tf

    return tf.constant, lambda t: t.numpy(), tf.float64


@pytest.mark.parametrize("name", ["torch", "tensorflow"])
def test_each_stage_gives_the_reference_float64_bits(name):
    stem = backend_stem(name)
    tensor, array, f64 = _tensors(name)
    weights = vitstem.init_weights(SPEC, seed=5)
    tensors = {k: tensor(v) for k, v in weights.items()}
    images = images_for(SPEC, batch=2, hw=HW, seed=6)

    nchw = reference.to_nchw(SPEC, images)
    assert np.array_equal(array(stem.to_nchw(SPEC, tensor(images))), nchw)
    cropped = reference.crop(SPEC, nchw)
    assert cropped.shape[2:] == (12, 10)
    assert np.array_equal(array(stem.crop(SPEC, tensor(images), "NHWC")), reference.crop(SPEC, images, "NHWC"))
    assert np.array_equal(reference.crop(SPEC, images, "NHWC").transpose(0, 3, 1, 2), cropped)
    x = reference.preprocess(SPEC, cropped, np.float64)
    assert np.array_equal(array(stem.preprocess(SPEC, tensor(np.ascontiguousarray(cropped)), f64)), x)
    in_layout = np.ascontiguousarray(cropped.transpose(0, 2, 3, 1))
    assert np.array_equal(array(stem.preprocess(SPEC, tensor(in_layout), f64, "NHWC")), x.transpose(0, 2, 3, 1))

    patches = reference.patchify(x, SPEC.patch_size)
    assert patches.shape == (2, 15, SPEC.patch_dim)
    assert np.array_equal(reference.patchify(x.transpose(0, 2, 3, 1), SPEC.patch_size, "NHWC"), patches)
    for layout, batch in (("NCHW", x), ("NHWC", np.ascontiguousarray(x.transpose(0, 2, 3, 1)))):
        ours = stem.patchify(tensor(batch), SPEC.patch_size, layout)
        # torch holds them unflattened, (B, gh, gw, C, Ph, Pw): a view of the batch
        assert np.array_equal(array(ours).reshape(patches.shape), patches), layout
    rows = reference.embed_patches(SPEC, weights, patches, np.float64)
    ours = stem.embed_patches(SPEC, tensors, stem.patchify(tensor(x), SPEC.patch_size), f64)
    assert np.array_equal(array(ours), rows)
    normed = reference.normalize(SPEC.patch_norm, weights, "patch_embed.norm", rows)
    assert_float64_bits(name, array(stem.normalize(SPEC.patch_norm, tensors, "patch_embed.norm", tensor(rows))), normed)

    prefix = reference.prefix_tokens(SPEC, weights, 2, np.float64)
    assert np.array_equal(array(stem.prefix_tokens(SPEC, tensors, 2, f64)), prefix)
    grid = SPEC.patch_grid(HW)
    table = position_table(SPEC, weights, grid)
    if name == "torch":
        from vitstem.backends.torch.position import fixed_table, resample_rows
    else:
        from vitstem.backends.tensorflow.position import fixed_table, resample_rows

        resample_rows = functools.partial(resample_rows, ordered=True)
    ours_table = position_table(SPEC, tensors, grid, fixed=fixed_table, resample=resample_rows)
    assert all(np.array_equal(array(o).astype(np.float64), t) for o, t in zip(ours_table, table))
    z = reference.add_position(SPEC, prefix, normed, table, np.float64)
    assert np.array_equal(array(stem.add_position(SPEC, tensor(np.ascontiguousarray(prefix)), tensor(normed), ours_table, f64)), z)
    z = reference.normalize(SPEC.pre_norm, weights, "norm_pre", z)
    assert_float64_bits(name, array(stem.stages(SPEC, tensors, tensor(images), f64)), z)
    exact = array(stem.forward(SPEC, tensors, tensor(images), "exact"))
    assert np.array_equal(exact, z.astype(np.float32))
    assert np.array_equal(exact, vitstem.forward(SPEC, weights, images, profile="exact"))


@pytest.mark.parametrize("name", ["numpy", "torch", "tensorflow"])
def test_a_bad_profile_is_refused_with_the_profiles_named(name):
    weights = vitstem.init_weights(SPEC)
    with pytest.raises(ValueError, match="profile must be one of fast, exact, got 'fp16'"):
        vitstem.forward(SPEC, weights, images_for(SPEC, hw=HW), backend=name, profile="fp16")
