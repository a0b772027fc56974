"""Input checks for image tensors: the shared `vitstem.spec.inputs.check_images`, applied to a tensor."""

from __future__ import annotations

import functools

import numpy as np
import torch

from ...errors import InputError
from ...spec import Spec
from ...spec.inputs import check_images, check_z0, image_hw


def tracing() -> bool:
    """True while torch.compile or torch.export traces: value checks and in-place forms are eager-only."""
    return torch.compiler.is_compiling() or torch.compiler.is_exporting()


def check_image_tensor(spec: Spec, images, finite: bool = True) -> tuple[int, int]:
    """(H, W) of a batch tensor; InputError (rank, dtype, channels, size, finiteness) as every engine raises.

    `finite=False` leaves out the finiteness check (one pass over the batch), for a caller that
    checks its own output instead (`check_output_finite`). While torch.compile or torch.export
    traces, only the shape is read: the checks need values, and the traced graph's own shape
    guards stand in for them.
    """
    if not isinstance(images, torch.Tensor):
        raise InputError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if tracing():
        return image_hw(spec, images.shape)
    if not finite:
        return _checked_shape(spec, tuple(images.shape), images.dtype)
    return check_images(spec, _as_array(images), finite=True)[1]


@functools.lru_cache(maxsize=256)
def _checked_shape(spec: Spec, shape: tuple, dtype: torch.dtype) -> tuple[int, int]:
    """(H, W) after every check that reads no values: those depend on the shape and dtype alone, so each
    (spec, shape, dtype) is checked once, on a zero-strided array (they took ~30 us per call, 2 % of a
    batch-1 ViT-B/16 stem). An InputError is not cached: a bad shape is refused every time."""
    return check_images(spec, np.broadcast_to(_as_array(torch.zeros((), dtype=dtype)), shape), finite=False)[1]


def check_output_finite(spec: Spec, images: torch.Tensor, z: torch.Tensor) -> None:
    """InputError naming the non-finite pixels when z0 is not finite because they were.

    Any NaN or Inf pixel makes every output of its patch NaN or Inf (x * 0 is NaN for x = Inf), so
    a finite z0 proves finite pixels; z0 was just written, so this pass reads warm memory where
    checking the batch first read it cold (measured ~5 % of a batch-1 ViT-B/16 forward). A
    non-finite z0 from finite pixels (an overflow) is refused too, by the shared `check_z0`.
    """
    if tracing():
        return
    values = _as_array(z)
    if not np.isfinite(values).all():
        check_z0(values, spec, _as_array(images), inside=str(z.dtype).removeprefix("torch."))


def _as_array(x: torch.Tensor) -> np.ndarray:
    x = x.detach()
    try:
        return x.cpu().numpy()  # zero-copy for CPU tensors
    except TypeError:  # bfloat16 and other dtypes NumPy lacks: their float32 values have the same faults
        return x.cpu().float().numpy()
