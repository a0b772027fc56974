"""Every engine (NumPy, PyTorch, TensorFlow, the ONNX Runtime edge stem) behind one call, for the hostile-input
tests: two small `SPECS`, the `runners` fixture (engine -> callable(spec key, images) -> z0) and `valid_batch`.
A test file imports `runners` into its namespace to use it as a fixture."""

import numpy as np
import pytest

import vitstem
from vitstem.spec import load_spec

SPECS = {
    # NCHW, normalised floats, any size divisible by the (non-square) patch.
    "nchw_dynamic": load_spec("vitstem_tiny_test"),
    # NHWC uint8 pixels, fixed size, pre-norm.
    "nhwc_pixels": load_spec({"spec_version": 1, "image_size": [8, 12], "patch_size": 4, "embed_dim": 8,
                              "input": {"layout": "NHWC", "preprocess": {"mean": [0.5] * 3, "std": [0.25] * 3}},
                              "pre_norm": {}}),
}
ENGINES = ("numpy", "torch", "tensorflow", "runtime")


@pytest.fixture(scope="module")
def runners(tmp_path_factory):
    """name -> (spec key -> callable(images) -> z0) for every engine, each with the spec's seed-0 weights."""
    from vitstem.runtime import load

    weights = {key: vitstem.init_weights(spec) for key, spec in SPECS.items()}
    stems = {}
    for key, spec in SPECS.items():
        path = tmp_path_factory.mktemp("onnx") / f"{key}.onnx"
        vitstem.export_onnx(spec, weights[key], path, image_size="dynamic" if spec.dynamic_image_size else "fixed")
        stems[key] = load(path)

    def backend(name):
        return lambda key, x: vitstem.forward(SPECS[key], weights[key], x, backend=name)

    out = {name: backend(name) for name in ("numpy", "torch", "tensorflow")}
    out["runtime"] = lambda key, x: stems[key](x)
    return out


def valid_batch(spec, rng, batch=2, hw=None):
    shape = spec.input_shape(batch, hw)
    if spec.input.preprocess is not None:
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return rng.standard_normal(shape).astype(np.float32)
