"""Tiny random transformers ViT / DeiT models and their own z0 (nothing is downloaded)."""

import numpy as np


def tiny_config(kind, **kwargs):
    """A ViT or DeiT config at 32x32, patch 8, D 16, one layer; `kwargs` on top."""
    from transformers import DeiTConfig, ViTConfig

    args = dict(image_size=32, patch_size=8, num_channels=3, hidden_size=16, num_hidden_layers=1,
                num_attention_heads=2, intermediate_size=32)
    args.update(kwargs)
    return (DeiTConfig if kind == "deit" else ViTConfig)(**args)


def tiny_model(kind, seed=0, **kwargs):
    """A ViTModel or DeiTModel ("vit" / "deit") of `tiny_config`, eval mode, with O(1) random embeddings."""
    import torch
    from transformers import DeiTModel, ViTModel

    torch.manual_seed(seed)
    model = (DeiTModel if kind == "deit" else ViTModel)(tiny_config(kind, **kwargs)).eval()
    with torch.no_grad():  # DeiT initialises its tokens and table to zeros: make them count
        for name, p in model.embeddings.named_parameters():
            p.copy_(torch.randn(p.shape) * (0.3 if "projection.weight" in name else 1.0))
    return model


def hf_z0(model, x: np.ndarray, interpolate: bool = False) -> np.ndarray:
    """The peer's z0: its embeddings module's output, what the first encoder layer receives."""
    import torch

    with torch.no_grad():
        return model.embeddings(torch.from_numpy(x), interpolate_pos_encoding=interpolate).numpy()
