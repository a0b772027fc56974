"""Seeded test inputs shared by the test files."""

import numpy as np


def images_for(spec, batch=2, hw=None, seed=0):
    """Seeded uint8 pixels for a spec that preprocesses, else standard-normal float32, in the spec's layout."""
    rng = np.random.default_rng(seed)
    shape = spec.input_shape(batch, hw)
    if spec.input.preprocess is not None:
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return rng.standard_normal(shape).astype(np.float32)


def tiny_case(weight_seed=0, image_seed=0, batch=2):
    """(spec, weights, images) of the `vitstem_tiny_test` preset, seeded: the smallest full case."""
    import vitstem

    spec = vitstem.load_spec("vitstem_tiny_test")
    return spec, vitstem.init_weights(spec, seed=weight_seed), images_for(spec, batch=batch, seed=image_seed)
