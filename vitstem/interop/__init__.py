"""Converters between peer models / checkpoints and (spec, canonical weights).

One module per peer. None imports a framework at import time: each converter reads the model
object it is given, and imports its peer library only inside the function that builds one.
"""

from .big_vision import from_big_vision
from .checkpoint import import_checkpoint, write_import
from .hf import from_hf
from .hf_checkpoint import to_hf_state_dict
from .keras_hub import from_keras_hub, to_keras_hub
from .timm import from_timm, timm_model_args, to_timm_state_dict

__all__ = ["from_big_vision", "from_hf", "from_keras_hub", "from_timm", "import_checkpoint", "timm_model_args",
           "to_hf_state_dict", "to_keras_hub", "to_timm_state_dict", "write_import"]
