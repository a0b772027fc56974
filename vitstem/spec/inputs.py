"""Checks on an input batch against a spec, shared by every backend and the edge runtime.

Limits (documented in the README's "Reliability: limits"): one call takes at most MAX_ELEMENTS
input values and returns at most MAX_ELEMENTS z0 values, checked from the shape before anything is
allocated. One dtype rule (`faithful_array`) for images and weights: other byte orders are converted
(same values); long doubles become float64 only when float64 holds every value; masked arrays with
masked entries are refused (their hidden values would be used).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .model import Spec
from .rules import MAX_TENSOR_ELEMENTS

MAX_ELEMENTS = MAX_TENSOR_ELEMENTS  # per call, for the images and for z0 (2**28: 1 GiB as float32), as the spec's tensors


def image_hw(spec: Spec, shape: tuple[int, ...]) -> tuple[int, int]:
    """(H, W) of a batch shape in the spec's layout."""
    return spec.input.layout.image_hw(shape)


def faithful_array(x: np.ndarray, what: str = "images") -> np.ndarray:
    """`x` as a plain native-byte-order array with the same values; InputError when that cannot be.

    Big-endian (or any non-native) numbers are byte-swapped; long doubles (float96/float128) become
    float64 when every value survives the round trip, else are refused; a masked array is refused
    when any entry is masked. Other dtypes pass through unchanged (the callers' dtype rules name them).
    """
    if isinstance(x, np.ma.MaskedArray):
        masked = int(np.ma.count_masked(x))
        if masked:
            raise InputError(f"{what}: a masked array with {masked} masked values, which would be read as their "
                             "hidden data; fill them first (x.filled(value))")
        x = np.ma.getdata(x)
    x = np.asarray(x)
    if x.dtype.kind in "biufc" and not x.dtype.isnative:
        x = x.astype(x.dtype.newbyteorder("="))
    if x.dtype.kind == "f" and x.dtype.itemsize > 8:
        with np.errstate(over="ignore"):  # values beyond float64 become inf, and are named below
            wide = x.astype(np.float64)
        lost = int(x.size - np.count_nonzero((wide == x) | (np.isnan(wide) & np.isnan(x))))
        if lost:
            raise InputError(f"{what}: dtype {x.dtype} (long double) with {lost} values float64 cannot hold "
                             "exactly; vitstem computes in float32/float64: convert them to float64 first")
        x = wide
    return x


def cast_images(x: np.ndarray, dtype, into: str) -> np.ndarray:
    """The checked (finite) batch `x` in `dtype`; InputError, and no NumPy overflow warning, when a value
    lies beyond a narrower float dtype's range (the cast would make it inf). `into` names what the
    batch is cast for ("this model's float32 input")."""
    dtype = np.dtype(dtype)
    with np.errstate(over="ignore"):
        converted = x.astype(dtype)
    if dtype.kind == "f" and x.dtype.kind == "f" and dtype.itemsize < x.dtype.itemsize \
            and not np.isfinite(converted).all():
        raise InputError(f"images have values beyond {dtype.name}'s range (|x| > {float(np.finfo(dtype).max):.6g}; "
                         f"max |x| = {float(np.abs(x).max()):.6g}), which {into} turns into inf")
    return converted


def check_size(spec: Spec, shape: tuple[int, ...], hw: tuple[int, int]) -> None:
    """InputError, from the shape alone, when the batch or its z0 would exceed MAX_ELEMENTS values."""
    per_image = max(int(np.prod(shape[1:], dtype=object)), spec.num_tokens(hw) * spec.embed_dim)
    if shape[0] * per_image > MAX_ELEMENTS:
        fits = MAX_ELEMENTS // per_image
        advice = (f"pass at most {fits} images of this size per call" if fits else
                  "one image of this size is already over it")
        raise InputError(f"images have shape {tuple(shape)}: the batch and its z0 ({shape[0]} x "
                         f"{spec.num_tokens(hw)} tokens x {spec.embed_dim}) may hold at most {MAX_ELEMENTS} values "
                         f"each per call; {advice}")


def check_images(spec: Spec, images, finite: bool = True) -> tuple[np.ndarray, tuple[int, int]]:
    """The batch as a numpy array and its (H, W); InputError naming what is wrong otherwise.

    `finite=False`: every check but the pass over the values (for engines that check their output).
    """
    try:
        x = images if isinstance(images, np.ndarray) else np.asarray(images)
    except Exception as exc:  # ragged lists and other non-arrays
        raise InputError(f"images cannot be read as an array: {exc}") from None
    layout = spec.input.layout
    if x.ndim != 4:
        raise InputError(f"images have shape {x.shape}; expected rank 4, {layout.axes} ({layout})")
    if x.shape[0] == 0:
        raise InputError(f"images have shape {x.shape}: the batch is empty")
    channels = layout.channels(x.shape)
    if channels != spec.in_channels:
        raise InputError(f"images have shape {x.shape}: {channels} channels at the {layout} channel axis, "
                         f"expected {spec.in_channels} (is the layout right?)")
    hw = image_hw(spec, x.shape)
    try:
        spec.patch_grid(hw)
    except InputError as exc:
        raise InputError(f"images have shape {x.shape}: {exc}") from None
    if hw != spec.image_size and not spec.dynamic_image_size:
        raise InputError(f"images have shape {x.shape}: size {hw[0]}x{hw[1]} differs from the spec's "
                         f"{spec.image_size[0]}x{spec.image_size[1]} and dynamic_image_size is false")
    check_size(spec, x.shape, hw)
    x = faithful_array(x)  # bounded by check_size; dtypes are then named in native byte order
    if spec.input.preprocess is not None:
        if x.dtype != np.uint8 and x.dtype.kind != "f":
            raise InputError(f"images have dtype {x.dtype}; this spec preprocesses pixels: pass uint8 (0-255) or float")
    elif x.dtype.kind != "f":
        raise InputError(f"images have dtype {x.dtype}; this spec takes normalised float images (no preprocess)")
    if finite and x.dtype.kind == "f" and not np.isfinite(x).all():
        raise InputError(f"images contain {int(x.size - np.count_nonzero(np.isfinite(x)))} non-finite values (NaN or Inf)")
    return x, hw


def check_z0(z0, spec: Spec | None = None, images=None, inside: str | None = None):
    """`z0` unchanged when it is finite; InputError otherwise.

    With `images` (when the caller skipped their finiteness pass) non-finite pixels are named first;
    else finite inputs overflowed inside the stem: `inside` names the dtype (default: z0's own).
    """
    z = np.asarray(z0)
    finite = np.isfinite(z)
    if finite.all():
        return z0
    if images is not None:
        check_images(spec, images)
    raise InputError(f"z0 has {int(z.size - np.count_nonzero(finite))} non-finite values although the images are "
                     f"finite: they overflow {inside or z.dtype.name} inside the stem (pixel values, preprocessing "
                     "or weights too large for its precision)")
