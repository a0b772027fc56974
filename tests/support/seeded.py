"""Seeded test inputs shared by the test files."""

import numpy as np


def images_for(spec, batch=2, hw=None, seed=0):
    """Seeded uint8 pixels for a spec that preprocesses, else standard-normal float32, in the spec's layout."""
    rng = np.random.default_rng(seed)
    shape = spec.input_shape(batch, hw)
    if spec.input.preprocess is not None:
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return rng.standard_normal(shape).astype(np.float32)
