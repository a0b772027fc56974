"""VitStem through torch.export, torch.compile (inductor) and torch.onnx.export(dynamo=True) + ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest
from support.reference import assert_matches_reference
from support.seeded import images_for

import vitstem

pytestmark = pytest.mark.slow

TINY = vitstem.load_spec("vitstem_tiny_test")

# A fixed-size stem with every step: NHWC uint8 pixels, preprocessing, all prefix tokens, LayerNorm.
FIXED = TINY.replace(dynamic_image_size=False, pre_norm={"eps": 0.1},  # eps: float32(0.1) != 0.1
                     input={"layout": "NHWC", "preprocess": {"scale": 1 / 255, "mean": [0.4, 0.5, 0.6],
                                                             "std": [0.2, 0.25, 0.3]}})


def module(spec, profile, seed=11):
    from vitstem.backends.torch import VitStem

    return VitStem.from_weights(spec, vitstem.init_weights(spec, seed=seed), profile).eval()


def batch_dim():
    import torch

    return {0: torch.export.Dim("batch", min=1, max=64)}


@pytest.mark.parametrize("profile", ["fast", "exact"])
def test_torch_export_with_a_dynamic_batch_gives_the_eager_bits(profile):
    import torch

    stem = module(FIXED, profile)
    example = torch.from_numpy(images_for(FIXED, batch=2))
    program = torch.export.export(stem, (example,), dynamic_shapes=(batch_dim(),))
    images = images_for(FIXED, batch=5, seed=3)
    with torch.no_grad():
        out = program.module()(torch.from_numpy(images)).numpy()
        eager = stem(torch.from_numpy(images)).numpy()
    assert np.array_equal(out, eager)
    weights = stem.canonical_weights()
    assert_matches_reference(out, FIXED, weights, images, profile)


def test_torch_export_of_a_dynamic_spec_at_another_size_resamples_the_table():
    import torch

    stem = module(TINY, "exact")
    images = images_for(TINY, hw=(20, 6))
    program = torch.export.export(stem, (torch.from_numpy(images),))
    with torch.no_grad():
        out = program.module()(torch.from_numpy(images)).numpy()
    assert_matches_reference(out, TINY, stem.canonical_weights(), images, "exact")


def test_torch_compile_inductor_fast_and_exact():
    """fullgraph compiles with static shapes; the resampled table is a per-grid constant (one graph per size)."""
    import torch

    for profile, hw in [("fast", (12, 16)), ("exact", (24, 10))]:
        stem = module(TINY, profile)
        compiled = torch.compile(stem, fullgraph=True, dynamic=False)
        images = images_for(TINY, hw=hw, seed=4)
        with torch.no_grad():
            out = compiled(torch.from_numpy(images)).numpy()
        weights = stem.canonical_weights()
        assert_matches_reference(out, TINY, weights, images, profile)


@pytest.mark.parametrize("profile", ["fast", "exact"])
def test_onnx_export_runs_in_onnxruntime_with_a_dynamic_batch(profile, tmp_path):
    import onnxruntime as ort
    import torch

    stem = module(FIXED, profile)
    path = tmp_path / "stem.onnx"
    torch.onnx.export(stem, (torch.from_numpy(images_for(FIXED)),), str(path), dynamo=True,
                      dynamic_shapes=(batch_dim(),), verbose=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = images_for(FIXED, batch=3, seed=6)
    out = session.run(None, {session.get_inputs()[0].name: images})[0]
    weights = stem.canonical_weights()
    assert_matches_reference(out, FIXED, weights, images, profile)
