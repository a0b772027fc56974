"""Separable resampling of a position-embedding grid, as one weight matrix per axis.

Resampling a table ``T`` of shape (h, w, D) to (H, W) is

    out[i, j, :] = sum_{k, l} Mh[i, k] * Mw[j, l] * T[k, l, :]

with ``Mh = resample_matrix(h, H, ...)`` and ``Mw = resample_matrix(w, W, ...)``. Every
backend builds these matrices here, so they are the single definition of "resize the table".

Row ``i`` of a matrix is built in four steps (input pixel ``k`` sits at coordinate ``k``):

1. Sample position ``c`` of output ``i`` in input coordinates:
   ``half_pixel``: ``c = (i + 0.5) * in / out - 0.5``;
   ``align_corners``: ``c = i * (in - 1) / (out - 1)`` (``c = 0`` when ``out == 1``).
2. Kernel ``K`` (Keys cubic with ``cubic_coeff_a``, or the triangle) stretched by
   ``s = in / out`` when ``antialias`` and downsampling, else ``s = 1``;
   tap ``k`` gets ``K((k - c) / s)`` for every ``k`` with ``|k - c| < support * s``.
3. Taps outside ``[0, in)``: weight 0 with ``exclude_outside``, else their index is clamped
   to the border (the edge pixel is replicated and collects their weight).
4. The row is divided by its sum. For the unstretched kernels on a unit grid the weights
   already sum to 1 (a no-op up to rounding); otherwise this is the PIL / TF normalisation.

Peers, as flags (see tests/test_resampling.py, which checks each against the library):

======================================  ========  =====  =============  =========  ===============  ===========
peer                                    mode      a      coordinates    antialias  exclude_outside  phase_steps
======================================  ========  =====  =============  =========  ===============  ===========
timm ``resample_abs_pos_embed``         bicubic   -0.5   half_pixel     True       True             None
HF ViT (PyTorch), MAE fine-tuning       bicubic   -0.75  half_pixel     False      False            None
HF ViT (TF): ``tf.image.resize`` cubic  bicubic   -0.5   half_pixel     False      True             1024
``tf.image.resize`` default (bilinear)  bilinear  --     half_pixel     False      any              None
``tf.image.resize(antialias=True)``     either    -0.5   half_pixel     True       True             None
big_vision (scipy zoom order=1)         bilinear  --     align_corners  False      any              None
======================================  ========  =====  =============  =========  ===============  ===========

For bilinear, ``exclude_outside`` changes nothing unless the kernel is stretched (antialias
while downsampling): an unstretched tap can only fall outside when the single in-range tap
then takes all the weight either way. HF's TF ViT called ``tf.image.resize(method="bicubic")``
(transformers 4.x; the TF models are gone from transformers 5).

ONNX ``Resize`` has the same four knobs: mode "cubic"/"linear", ``cubic_coeff_a``,
``exclude_outside`` and ``antialias`` (opset 18+), with ``coordinate_transformation_mode``
"half_pixel" or "align_corners". Prefer "half_pixel" to "pytorch_half_pixel": the latter puts
a size-1 output at coordinate 0 where PyTorch (and this spec) put it at the centre. ONNX cannot
express ``phase_steps``, so TF's non-antialiased bicubic has no exact ONNX equivalent.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .exact import sum_in_order

MODES = ("bicubic", "bilinear")
COORDINATES = ("half_pixel", "align_corners")

# Half-width of each kernel in input pixels before any antialias stretch.
_SUPPORT = {"bicubic": 2.0, "bilinear": 1.0}


def _keys_cubic(x: np.ndarray, a: float) -> np.ndarray:
    """Keys (1981) cubic convolution kernel with parameter ``a``.

    Written in factored form, (|x|-1)((a+2)x^2-|x|-1) and a(|x|-1)(|x|-2)^2, so it is exactly
    zero at |x| = 1 and 2 for any ``a``: equal sizes then give exactly the identity.
    """
    x = np.abs(x)
    inner = (x - 1.0) * ((a + 2.0) * x * x - x - 1.0)
    outer = a * (x - 1.0) * (x - 2.0) ** 2
    return np.where(x < 1.0, inner, np.where(x < 2.0, outer, 0.0))


def _triangle(x: np.ndarray) -> np.ndarray:
    """Linear-interpolation (tent) kernel."""
    return np.maximum(0.0, 1.0 - np.abs(x))


def _check_size(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _check_bool(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def resample_matrix(in_size: int, out_size: int, *, mode: str, cubic_coeff_a: float, antialias: bool,
                    coordinates: str, exclude_outside: bool, phase_steps: int | None = None) -> np.ndarray:
    """(out_size, in_size) float64 matrix; row i holds the weights output i takes from each input.

    ``cubic_coeff_a`` is ignored for bilinear. ``antialias`` stretches the kernel by in/out when
    downsampling (PIL / PyTorch antialias / TF scale_and_translate); it requires half_pixel.
    ``phase_steps`` (extra flag, default None = exact): round the fractional part of the sample
    position to the nearest 1/phase_steps (ties to even), as TF's ResizeBicubic does with its
    1024-entry coefficient table; only defined without antialias.
    """
    in_size = _check_size("in_size", in_size)
    out_size = _check_size("out_size", out_size)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if coordinates not in COORDINATES:
        raise ValueError(f"coordinates must be one of {COORDINATES}, got {coordinates!r}")
    antialias = _check_bool("antialias", antialias)
    exclude_outside = _check_bool("exclude_outside", exclude_outside)
    if isinstance(cubic_coeff_a, bool) or not isinstance(cubic_coeff_a, numbers.Real) \
            or not math.isfinite(cubic_coeff_a):
        raise ValueError(f"cubic_coeff_a must be a finite real number, got {cubic_coeff_a!r}")
    if antialias and coordinates != "half_pixel":
        # PyTorch accepts this but then centres the kernel at (i + 0.5) * (in-1)/(out-1), which is
        # neither mapping; no peer uses it, so it is not part of the spec.
        raise ValueError("antialias=True is only defined for coordinates='half_pixel'")
    if phase_steps is not None:
        phase_steps = _check_size("phase_steps", phase_steps)
        if antialias:
            raise ValueError("phase_steps is only defined with antialias=False")

    i = np.arange(out_size, dtype=np.float64)
    if coordinates == "half_pixel":
        centre = (i + 0.5) * (in_size / out_size) - 0.5
    else:
        centre = i * ((in_size - 1) / (out_size - 1)) if out_size > 1 else np.zeros(out_size)
    if phase_steps is not None:
        # TF rounds a float32 position; exact positions stay >= 1/(2048 * out) away from a tie,
        # so both round alike at table sizes (checked against TF up to 500 -> 1024).
        whole = np.floor(centre)
        centre = whole + np.round((centre - whole) * phase_steps) / phase_steps  # np.round: ties to even

    stretch = in_size / out_size if (antialias and out_size < in_size) else 1.0
    reach = _SUPPORT[mode] * stretch
    n_taps = 2 * math.ceil(reach) + 2  # covers floor(c - reach) .. floor(c + reach) + 1
    taps = np.floor(centre - reach)[:, None] + np.arange(n_taps)[None, :]
    x = (taps - centre[:, None]) / stretch
    weights = _keys_cubic(x, float(cubic_coeff_a)) if mode == "bicubic" else _triangle(x)

    inside = (taps >= 0) & (taps <= in_size - 1)
    if exclude_outside:
        weights = np.where(inside, weights, 0.0)
    index = np.clip(taps, 0, in_size - 1).astype(np.int64)

    matrix = np.zeros((out_size, in_size), dtype=np.float64)
    np.add.at(matrix, (np.repeat(np.arange(out_size), n_taps), index.ravel()), weights.ravel())
    total = matrix.sum(axis=1, keepdims=True)
    if np.any(total == 0.0):  # only reachable with an exotic cubic_coeff_a (K(0.5) = (4 - a) / 8)
        raise ValueError(f"cubic_coeff_a={cubic_coeff_a!r} leaves an output row with zero total weight")
    return matrix / total


def resample_grid(grid: np.ndarray, out_hw: tuple[int, int], *, mode: str, cubic_coeff_a: float,
                  antialias: bool, coordinates: str, exclude_outside: bool,
                  phase_steps: int | None = None) -> np.ndarray:
    """grid (h, w, D) -> (H, W, D) in grid.dtype, along y then along x.

    The matrices are built in float64 and cast to grid.dtype. float32 applies them with two
    matmuls; float64 sums the taps in input-index order (k = 0..h-1, then l = 0..w-1), the fixed
    order that lets every engine reproduce the exact profile's table bit for bit.
    """
    grid = np.asarray(grid)
    if grid.ndim != 3:
        raise ValueError(f"grid must have shape (h, w, D), got shape {grid.shape}")
    if not np.issubdtype(grid.dtype, np.floating):
        raise ValueError(f"grid must have a floating dtype, got {grid.dtype}")
    if len(out_hw) != 2:
        raise ValueError(f"out_hw must be (H, W), got {out_hw!r}")
    h, w, d = grid.shape
    out_h, out_w = (_check_size(name, v) for name, v in zip(("out_hw[0]", "out_hw[1]"), out_hw))
    flags = dict(mode=mode, cubic_coeff_a=cubic_coeff_a, antialias=antialias, coordinates=coordinates,
                 exclude_outside=exclude_outside, phase_steps=phase_steps)
    m_h = resample_matrix(h, out_h, **flags).astype(grid.dtype)
    m_w = resample_matrix(w, out_w, **flags).astype(grid.dtype)
    if grid.dtype == np.float64:
        rows = sum_in_order(m_h[:, k, None, None] * grid[k] for k in range(h))  # (H, w, D), along y
        return sum_in_order(m_w[None, :, l, None] * rows[:, l, None, :] for l in range(w))  # along x
    rows = (m_h @ grid.reshape(h, w * d)).reshape(out_h, w, d)  # resample along y
    return np.matmul(m_w, rows)  # (W, w) @ (H, w, D) -> (H, W, D): resample along x

