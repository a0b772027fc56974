"""Tiny whole peers (timm, transformers) and their inputs for the vitstem.deploy tests (nothing is downloaded)."""

import numpy as np
import torch


def timm_vit(seed=0, **kwargs):
    """timm's `arch` (default vit_tiny_patch16_224) at 32x32, patch 8, D 32, two blocks, 5 classes; `kwargs` on top."""
    import timm

    torch.manual_seed(seed)
    arch = kwargs.pop("arch", "vit_tiny_patch16_224")
    args = dict(pretrained=False, img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=5)
    args.update(kwargs)
    return timm.create_model(arch, **args).eval()


def hf_vit(kind="vit", seed=0, **kwargs):
    """A transformers ViTModel / DeiTModel / ViTForImageClassification ("vit", "deit", "vit_cls"), D 32, two layers."""
    from transformers import DeiTConfig, DeiTModel, ViTConfig, ViTForImageClassification, ViTModel

    torch.manual_seed(seed)
    args = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=64)
    args.update(kwargs)
    cls = {"vit": ViTModel, "deit": DeiTModel, "vit_cls": ViTForImageClassification}[kind]
    return cls((DeiTConfig if kind == "deit" else ViTConfig)(**args)).eval()


def pixels(hw, batch=2, seed=1):
    """Seeded uint8 NCHW pixels of size `hw`."""
    return np.random.default_rng(seed).integers(0, 256, (batch, 3, *hw), dtype=np.uint8)


def normalised(p, mean=(0.5,) * 3, std=(0.5,) * 3):
    """Pixels as a peer's pipeline normalises them: p / 255, then mean and std per channel."""
    m, s = (np.asarray(v, np.float32).reshape(1, -1, 1, 1) for v in (mean, std))
    return ((p.astype(np.float32) / np.float32(255) - m) / s).astype(np.float32)
