"""Checks on an input batch against a spec, shared by every backend and the edge runtime."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .model import Spec


def image_hw(spec: Spec, shape: tuple[int, ...]) -> tuple[int, int]:
    """(H, W) of a batch shape in the spec's layout."""
    return (shape[2], shape[3]) if spec.input.layout == "NCHW" else (shape[1], shape[2])


def check_images(spec: Spec, images, finite: bool = True) -> tuple[np.ndarray, tuple[int, int]]:
    """The batch as a numpy array and its (H, W); InputError naming what is wrong otherwise.

    `finite=False`: every check but the pass over the values (for engines that check their output).
    """
    try:
        x = np.asarray(images)
    except Exception as exc:  # ragged lists and other non-arrays
        raise InputError(f"images cannot be read as an array: {exc}") from None
    layout = spec.input.layout
    expect = "(B, C, H, W)" if layout == "NCHW" else "(B, H, W, C)"
    if x.ndim != 4:
        raise InputError(f"images have shape {x.shape}; expected rank 4, {expect} ({layout})")
    if x.shape[0] == 0:
        raise InputError(f"images have shape {x.shape}: the batch is empty")
    channels = x.shape[1] if layout == "NCHW" else x.shape[3]
    if channels != spec.in_channels:
        raise InputError(f"images have shape {x.shape}: {channels} channels at the {layout} channel axis, "
                         f"expected {spec.in_channels} (is the layout right?)")
    if spec.input.preprocess is not None:
        if x.dtype != np.uint8 and x.dtype.kind != "f":
            raise InputError(f"images have dtype {x.dtype}; this spec preprocesses pixels: pass uint8 (0-255) or float")
    elif x.dtype.kind != "f":
        raise InputError(f"images have dtype {x.dtype}; this spec takes normalised float images (no preprocess)")
    hw = image_hw(spec, x.shape)
    try:
        spec.patch_grid(hw)
    except InputError as exc:
        raise InputError(f"images have shape {x.shape}: {exc}") from None
    if hw != spec.image_size and not spec.dynamic_image_size:
        raise InputError(f"images have shape {x.shape}: size {hw[0]}x{hw[1]} differs from the spec's "
                         f"{spec.image_size[0]}x{spec.image_size[1]} and dynamic_image_size is false")
    if finite and x.dtype.kind == "f" and not np.isfinite(x).all():
        raise InputError(f"images contain {int(x.size - np.count_nonzero(np.isfinite(x)))} non-finite values (NaN or Inf)")
    return x, hw
