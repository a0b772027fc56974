"""The PyTorch backend: `VitStem`, an nn.Module with timm's state_dict keys, and `forward` for the dispatcher.

torch is imported on first use only, so `vitstem.backends.torch.names` stays importable without it.
"""

from __future__ import annotations


def forward(spec, weights, images, profile: str = "fast"):
    """z0 as a NumPy float32 array, computed with PyTorch (see `stem.forward`)."""
    from .stem import forward as torch_forward

    return torch_forward(spec, weights, images, profile=profile)


def __getattr__(name):
    if name == "VitStem":
        from .stem import VitStem

        return VitStem
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["VitStem", "forward"]
