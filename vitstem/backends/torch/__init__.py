"""The PyTorch backend: the reference's stages on tensors (stem.py), `VitStem`, an nn.Module with timm's
state_dict keys (module.py), and `forward` for the dispatcher.

torch is imported on first use only, so `vitstem.backends.torch.names` stays importable without it.
"""

from __future__ import annotations


def forward(spec, weights, images, profile: str = "fast"):
    """z0 as a NumPy float32 array (B, prefix + N, D) from NumPy weights and images, as
    `vitstem.forward(..., backend="torch")`: checked once here, then `stem.stages` on tensors."""
    import numpy as np
    import torch

    from ...spec import check_weights, load_spec
    from ...spec.inputs import check_images, check_z0
    from ...spec.vocabulary import Profile
    from . import stem

    spec, profile = load_spec(spec), Profile.parse(profile, "profile")
    weights = check_weights(weights, spec)
    images, _ = check_images(spec, images)
    tensors = {name: torch.tensor(value) for name, value in weights.items()}  # copies: read-only arrays are fine
    dtype = stem.compute_dtype(profile, tensors)
    with torch.no_grad():
        z = stem.stages(spec, tensors, torch.from_numpy(np.ascontiguousarray(images)), dtype)
    return check_z0(z.to(torch.float32).numpy())


def __getattr__(name):
    if name == "VitStem":
        from .module import VitStem

        return VitStem
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["VitStem", "forward"]
