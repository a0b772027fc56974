"""`VitStemLayer`: the stem's `forward` as a Keras 3 layer (TensorFlow backend) holding the canonical weights."""

from __future__ import annotations

from typing import Mapping

import keras
import numpy as np
import tensorflow as tf

from ...errors import VitstemError
from ...spec import Spec, check_weights, init_weights, load_spec
from ...spec.inputs import faithful_array
from ...spec.vocabulary import Profile
from . import stem

if keras.backend.backend() != "tensorflow":
    raise VitstemError(f"vitstem's TensorFlow backend needs Keras on the TensorFlow backend, not "
                       f"{keras.backend.backend()!r} (set KERAS_BACKEND=tensorflow before importing keras)")


@keras.saving.register_keras_serializable(package="vitstem")
class VitStemLayer(keras.layers.Layer):
    """z0 = pre_norm([prefix tokens; patch_norm(patches E + b)] + E_pos) for a batch in the spec's layout (NHWC native).

    Variables carry the canonical names and shapes (vitstem.spec.weights), float32, initialised
    from `weights` or else `init_weights(spec)`. The config holds the spec and profile only:
    weights travel separately (a .keras file, or set_canonical_weights). The exact profile runs
    eagerly even inside a tf.function (a tf.py_function, still differentiable): such a graph is
    not XLA-compilable, and a SavedModel of it runs only in the Python process that saved it.
    """

    def __init__(self, spec: Spec | Mapping | str, profile: str = "fast", *,
                 weights: Mapping[str, np.ndarray] | None = None, **kwargs):
        # autocast=False: Keras would otherwise round float64 pixels to float32 before "exact" sees them.
        super().__init__(autocast=False, **kwargs)
        self.spec = load_spec(spec)
        self.profile = Profile.parse(profile, "profile").value
        initial = init_weights(self.spec) if weights is None else check_weights(weights, self.spec)
        # Created here, not in build(): the shapes come from the spec alone.
        self.stem_variables = {
            name: self.add_weight(shape=value.shape, dtype="float32", name=name,
                                  initializer=lambda shape, dtype=None, value=value: tf.constant(value, dtype))
            for name, value in initial.items()
        }
        self.built = True

    @classmethod
    def from_weights(cls, spec, weights: Mapping[str, np.ndarray], profile: str = "fast", **kwargs) -> "VitStemLayer":
        """A layer holding `weights` (canonical names, shapes and float32, checked against the spec)."""
        return cls(spec, profile, weights=weights, **kwargs)

    def set_canonical_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Assign canonical weights; WeightsError lists every missing, extra or mis-shaped one."""
        weights = check_weights(weights, self.spec)
        for name, variable in self.stem_variables.items():
            variable.assign(weights[name])

    def canonical_weights(self) -> dict[str, np.ndarray]:
        """The weights under their canonical names, as float32 numpy arrays."""
        return {name: np.array(variable.numpy(), np.float32) for name, variable in self.stem_variables.items()}

    def __call__(self, *args, **kwargs):
        # Keras converts a NumPy batch with TensorFlow's rules before `call` (long double: TF's own error;
        # a masked array: its hidden values); the one dtype rule of every engine comes first instead.
        if args and isinstance(args[0], np.ndarray):
            args = (faithful_array(args[0]), *args[1:])
        elif isinstance(kwargs.get("images"), np.ndarray):
            kwargs["images"] = faithful_array(kwargs["images"])
        return super().__call__(*args, **kwargs)

    def call(self, images):
        mixed = self.compute_dtype if self.compute_dtype in ("float16", "bfloat16") else None
        return stem.forward(self.spec, self.stem_variables, images, self.profile, mixed=mixed)

    def compute_output_shape(self, input_shape):
        return stem.output_shape(self.spec, input_shape)

    def get_config(self) -> dict:
        return {**super().get_config(), "spec": self.spec.to_dict(), "profile": self.profile}
