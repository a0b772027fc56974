"""Our graph against the PyTorch backend exported by torch.onnx.export(dynamo=True), both run in ORT."""

from __future__ import annotations

import numpy as np
import pytest

import vitstem
from support.export_cases import TINY, assert_exact, images, run_ort, spec_and_weights
from vitstem.backends.numpy.bound import fast_error_bound
from vitstem.export import build_onnx

pytestmark = pytest.mark.slow


def torch_onnx(spec, weights, profile, example):
    import warnings

    import torch

    from vitstem.backends.torch import VitStem

    module = VitStem.from_weights(spec, weights, profile=profile).eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, (torch.from_numpy(example),), dynamo=True, dynamic_shapes=({0: batch},),
                                    verbose=False)
    return program.model_proto


@pytest.mark.parametrize("name", [TINY, "vit_base_patch16_clip_224"])
def test_torch_dynamo_export_agrees_with_ours(name):
    spec, weights = spec_and_weights(name)
    x = images(spec, batch=2)
    bound = fast_error_bound(spec, weights, x)
    ours = run_ort(build_onnx(spec, weights), x)
    theirs = run_ort(torch_onnx(spec, weights, "fast", x[:1]), x)  # exported at batch 1, run at 2
    assert np.all(np.abs(ours.astype(np.float64) - theirs) <= 2 * bound)  # two fast engines: twice the bound
    exact = vitstem.forward(spec, weights, x, profile="exact")
    assert np.all(np.abs(theirs.astype(np.float64) - exact) <= bound)
    ours_exact = run_ort(build_onnx(spec, weights, profile="exact"), x)
    assert_exact(ours_exact, spec, weights, x)
    if spec.patch_dim <= 64:
        # torch's exact export unrolls the ordered sums (about K + 2D nodes): minutes to trace at
        # K = 768, so only small kernels here (the conformance suite's --full matrix runs the rest).
        theirs_exact = run_ort(torch_onnx(spec, weights, "exact", x[:1]), x)
        np.testing.assert_array_equal(theirs_exact, ours_exact)
