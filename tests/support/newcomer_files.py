"""What a new user starts from: a tiny timm checkpoint saved as safetensors, a tiny transformers
save_pretrained directory, and a photo that is not the model's size. Built from small random
configs; nothing is downloaded. Also `typed`, which runs a command line as a user types it."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

ARCH = "vit_base_patch16_224"  # timm's name: its default pretrained_cfg gives mean/std 0.5, crop_pct 0.9, bicubic
PHOTO_HW = (260, 300)  # not the model's 224x224, not square


def typed(line: str, cwd) -> subprocess.CompletedProcess:
    """Run `line` (starting with `vitstem`) as a shell would split it, with this checkout's vitstem."""
    argv = shlex.split(line)
    assert argv[0] == "vitstem", line
    return subprocess.run([sys.executable, "-m", "vitstem", *argv[1:]], capture_output=True, text=True, cwd=cwd)


def tiny_timm_model():
    """timm's vit_base_patch16_224 architecture (its pretrained_cfg included) at embed_dim 32, depth 1."""
    import timm
    import torch

    torch.manual_seed(0)
    return timm.create_model(ARCH, pretrained=False, embed_dim=32, depth=1, num_heads=2).eval()


def save_timm_checkpoint(model, path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def tiny_hf_dir(path: Path):
    """`model.save_pretrained(path)` and `processor.save_pretrained(path)` for a tiny random ViT."""
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(0)
    config = ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                       image_size=224, patch_size=16)
    model = ViTModel(config, add_pooling_layer=False).eval()
    processor = ViTImageProcessor()
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return model, processor


def photo(path: Path, hw=PHOTO_HW) -> Path:
    """A smooth colour image (resampling is tested on gradients, not only on noise) with some noise."""
    from PIL import Image

    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(0)
    pixels = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) % 256], -1) + rng.normal(0, 20, (h, w, 3))
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=95)
    return path
