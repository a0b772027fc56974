"""Random valid specs across every engine: PyTorch, TensorFlow and ONNX Runtime give the NumPy
reference's exact z0 bit for bit in the exact profile, and stay within fast_error_bound in the
fast one. Sampled: a few specs per run (VITSTEM_FUZZ_EXAMPLES for a campaign)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.fuzz import fuzz, images_for, valid_docs

import vitstem
from vitstem.spec import load_spec
from vitstem.spec.inputs import image_hw

pytestmark = pytest.mark.slow


def _onnx_stem(spec, weights, profile, hw, directory):
    """An edge stem for images of size `hw` (None: the spec's): the fast graph resizes the table
    itself (dynamic sizes); the exact one, which ONNX Runtime cannot resize in float64, takes `hw` as a listed size."""
    from vitstem.runtime import load

    path = directory / f"{profile}.onnx"
    in_graph = profile == "fast" and spec.resample.phase_steps is None  # ONNX Resize has no phase_steps
    image_size = "fixed" if hw is None else "dynamic" if in_graph else [hw]
    vitstem.export_onnx(spec, weights, path, profile=profile, image_size=image_size)
    return load(path)


@fuzz(5)
@given(doc=valid_docs(max_side=4), seed=st.integers(0, 2**32 - 1), other_grid=st.booleans())
def test_every_engine_agrees_with_the_reference_on_random_specs(tmp_path_factory, doc, seed, other_grid):
    from vitstem.backends.numpy.bound import fast_error_bound

    doc["name"] = "fuzz"  # names are test_hostile_onnx.py's business (an empty one breaks export)
    spec = load_spec(doc)
    grid = None
    if other_grid and spec.dynamic_image_size:
        grid = (spec.patch_grid()[0] % 3 + 1, spec.patch_grid()[1] % 2 + 2)
    weights = vitstem.init_weights(spec, seed=seed % 997)
    images = images_for(spec, seed, grid)
    exact = vitstem.forward(spec, weights, images, profile="exact")
    resampled = grid is not None and tuple(grid) != spec.pos_grid and spec.position_embedding.kind == "learned"
    directory = tmp_path_factory.mktemp("engines")
    for profile in ("exact", "fast"):
        z0 = {backend: vitstem.forward(spec, weights, images, backend=backend, profile=profile)
              for backend in ("numpy", "torch", "tensorflow")}
        hw = None if grid is None else image_hw(spec, images.shape)
        z0["onnxruntime"] = _onnx_stem(spec, weights, profile, hw, directory)(images)
        for engine, z in z0.items():
            assert z.shape == exact.shape and z.dtype == np.float32, engine
            if profile == "exact":
                np.testing.assert_array_equal(z, exact, err_msg=f"{engine} exact differs from the reference")
            else:
                in_graph = engine == "onnxruntime" and resampled and spec.resample.phase_steps is None
                bound = fast_error_bound(spec, weights, images, resampled_in_float32=in_graph)
                excess = np.abs(z.astype(np.float64) - exact) - bound
                assert excess.max() <= 0, f"{engine} fast exceeds the bound by {excess.max()}"
