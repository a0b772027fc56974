"""The spec: schema, validation, presets, canonical weights and the weight store (no framework imports)."""

from .loading import load_spec
from .model import Spec
from .presets import DEFAULT_PRESET, PRESETS, preset_names
from .store import load_weights, read_safetensors, save_weights
from .weights import check_weights, init_weights, weight_shapes

__all__ = [
    "DEFAULT_PRESET", "PRESETS", "Spec", "check_weights", "init_weights", "load_spec", "load_weights",
    "preset_names", "read_safetensors", "save_weights", "weight_shapes",
]
