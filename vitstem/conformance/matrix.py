"""The conformance matrix: which cells (profile, precision, batch, layout, image size) a run covers.

Opset is not part of a cell: it only applies to the ONNX engines, which run once per opset
(LOWEST_OPSET and the exporter's default) inside each cell, so the other engines are not re-run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..spec import Spec
from ..spec.vocabulary import Layout

PROFILES = ("fast", "exact")
PRECISIONS = ("fp32", "fp16", "int8")  # fp16 and int8 run on the ONNX engines, in the fast profile
BATCHES = (1, 3)
LOWEST_OPSET = 13
DEFAULT_OPSET = None  # whatever the exporter picks when not told


@dataclass(frozen=True)
class Cell:
    """One point of the matrix; `layout` may be the spec's own or its twin's."""

    profile: str
    precision: str
    batch: int
    layout: str
    image_size: tuple[int, int]

    def label(self) -> str:
        h, w = self.image_size
        return f"{self.profile}/{self.precision} b{self.batch} {self.layout} {h}x{w}"

    def fields(self) -> dict:
        return {"profile": self.profile, "precision": self.precision, "batch": self.batch,
                "layout": self.layout, "image_size": list(self.image_size)}


def other_layout(layout: str) -> Layout:
    return Layout.NHWC if layout == Layout.NCHW else Layout.NCHW


def with_layout(spec: Spec, layout: str) -> Spec:
    """The spec, or its twin in the other layout (same weights: layout only changes the input)."""
    if spec.input.layout == layout:
        return spec
    return spec.replace(input={**spec.to_dict()["input"], "layout": layout})


def other_image_sizes(spec: Spec) -> list[tuple[int, int]]:
    """Two sizes besides the native one for specs with dynamic_image_size: a larger grid with a
    different aspect ratio (upsampled table) and a smaller non-square one (downsampled); with
    input.remainder: drop, neither a multiple of the patch."""
    if not spec.dynamic_image_size:
        return []
    (gh, gw), (ph, pw) = spec.patch_grid(), spec.patch_size
    grids = [(gh + 2, gw + 1), (max(1, math.ceil(gh * 3 / 4)), max(1, math.ceil(gw / 2)))]
    if grids[1][0] == grids[1][1]:
        grids[1] = (grids[1][0], grids[1][1] + 1)
    # input.remainder: drop keeps the native size's leftover pixels (or one less than a patch) at the other sizes.
    rh, rw = (spec.image_size[0] % ph or ph - 1, spec.image_size[1] % pw or pw - 1) \
        if spec.input.remainder == "drop" else (0, 0)
    sizes = []
    for g in grids:
        size = (g[0] * ph + rh, g[1] * pw + rw)
        if size != spec.image_size and size not in sizes:
            sizes.append(size)
    return sizes


def cells(spec: Spec, *, profiles=PROFILES, precisions=PRECISIONS, full: bool = False) -> list[Cell]:
    """The matrix for `spec`. `full` is the release matrix (every combination); the default is a
    subset that still covers each axis: both batches, both layouts and every size at least once."""
    own, twin = spec.input.layout, other_layout(spec.input.layout)
    native, others = spec.image_size, other_image_sizes(spec)
    out: list[Cell] = []
    for profile in profiles:
        for precision in precisions:
            if precision != "fp32" and profile != "fast":
                continue  # fp16 and int8 have no exact profile
            if full:
                out += [Cell(profile, precision, b, layout, size)
                        for b in BATCHES for layout in (own, twin) for size in (native, *others)]
            elif precision == "fp32":
                out += [Cell(profile, precision, 1, own, native), Cell(profile, precision, 3, own, native),
                        Cell(profile, precision, 3, twin, native)]
                out += [Cell(profile, precision, 3, (own, twin)[i % 2], size) for i, size in enumerate(others)]
            else:
                out.append(Cell(profile, precision, 3, own, native))
    return out


def sample_images(spec: Spec, batch: int, image_size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A seeded batch in the spec's layout: uint8 pixels when the spec preprocesses, else float32
    in [-2, 2). Drawn in NCHW from PCG64's raw stream (fixed by the algorithm, so the same bytes on
    every machine) and transposed for NHWC, so a spec and its layout twin see the same images."""
    h, w = image_size
    shape = (batch, spec.in_channels, h, w)
    bits = np.random.PCG64(np.random.SeedSequence([seed, batch, h, w])).random_raw(int(np.prod(shape)))
    if spec.input.preprocess is not None:
        x = (bits >> np.uint64(56)).astype(np.uint8)
    else:
        x = ((bits >> np.uint64(40)).astype(np.float64) * 2.0**-22 - 2.0).astype(np.float32)
    x = x.reshape(shape)
    return x if spec.input.layout == Layout.NCHW else np.ascontiguousarray(x.transpose(Layout.NHWC.from_nchw))
