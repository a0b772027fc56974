"""Fitting an image file to the model's size for `vitstem run`, as the peers' eval transforms do.

Resizing and cropping are not part of the stem (the spec holds no input pipeline), so `vitstem run`
does them only when asked, with the same Pillow calls the peers make:

- timm's eval transform (`transforms_imagenet_eval`, crop_mode center): resize the shortest edge
  to floor(size / crop_pct) with the pretrained_cfg's interpolation (bicubic for ViTs), then
  center-crop to the size: `--resize shortest-edge --crop-pct 0.9 --crop center --interpolation bicubic`.
- transformers' ViTImageProcessor: resize to exactly (H, W), bilinear, no crop:
  `--resize exact --interpolation bilinear`.

torchvision and transformers both call `PIL.Image.resize` for PIL inputs, so the pixels are the
same. Center crops start at round((side - crop) / 2), as torchvision's `center_crop`.
"""

from __future__ import annotations

import math

from ..errors import InputError

RESIZE_MODES = ("none", "shortest-edge", "exact")
CROP_MODES = ("none", "center")
INTERPOLATIONS = ("bicubic", "bilinear")


def resized_size(image_hw: tuple[int, int], model_hw: tuple[int, int], mode: str,
                 crop_pct: float = 1.0) -> tuple[int, int]:
    """(H, W) to resize an image of `image_hw` to, before any crop."""
    th, tw = (math.floor(model_hw[0] / crop_pct), math.floor(model_hw[1] / crop_pct))
    if mode == "exact":
        return th, tw
    h, w = image_hw
    if th == tw:  # torchvision Resize(int): the short side becomes th, the long one is truncated
        return (th, int(th * w / h)) if h <= w else (int(th * h / w), th)
    scale = max(th / h, tw / w)  # non-square models: cover (th, tw), keeping the aspect ratio
    return max(th, round(h * scale)), max(tw, round(w * scale))


def center_crop_box(image_hw: tuple[int, int], crop_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a centered crop, as torchvision's center_crop places it."""
    (h, w), (ch, cw) = image_hw, crop_hw
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    return left, top, left + cw, top + ch


def fit_image(image, model_hw: tuple[int, int], *, resize: str = "none", crop: str = "none",
              crop_pct: float = 1.0, interpolation: str = "bicubic"):
    """A PIL image resized and cropped to `model_hw` as asked; unchanged with resize and crop 'none'."""
    from PIL import Image

    if not 0 < crop_pct <= 1:
        raise InputError(f"--crop-pct must be in (0, 1] (timm's crop_pct, e.g. 0.9), got {crop_pct}")
    resample = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}[interpolation]
    if resize != "none":
        h, w = resized_size((image.height, image.width), model_hw, resize, crop_pct)
        if (h, w) != (image.height, image.width):
            image = image.resize((w, h), resample)
    if crop == "center" and (image.height, image.width) != tuple(model_hw):
        if image.height < model_hw[0] or image.width < model_hw[1]:
            return image  # smaller than the model's size: the size check names the problem
        image = image.crop(center_crop_box((image.height, image.width), model_hw))
    return image
