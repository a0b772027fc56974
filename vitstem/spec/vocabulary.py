"""The words every engine shares: layouts, profiles, precisions, the graph's contract, tolerances, and
the geometry of one batch. Defined once here; backends, exporter, runtime and conformance import them.

Plain data (no framework); the enums are `str` subclasses, so `Layout.NCHW == "NCHW"` and JSON/YAML
written from them is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class _Word(str, Enum):
    """A str-valued enum whose str() and format() are its value (as Python 3.11's StrEnum)."""

    __str__ = str.__str__
    __format__ = str.__format__

    @classmethod
    def choices(cls) -> tuple[str, ...]:
        return tuple(m.value for m in cls)

    @classmethod
    def parse(cls, value, what: str) -> "_Word":
        """The member named by `value`; ValueError naming `what` and the choices otherwise."""
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"{what} must be one of {', '.join(cls.choices())}, got {value!r}") from None


class Layout(_Word):
    """Axis order of an image batch. Owns its axes (as timm's layers/format.py `Format`)."""

    NCHW = "NCHW"
    NHWC = "NHWC"

    @property
    def channel_axis(self) -> int:
        return 1 if self is Layout.NCHW else 3

    @property
    def spatial_axes(self) -> tuple[int, int]:
        return (2, 3) if self is Layout.NCHW else (1, 2)

    @property
    def to_nchw(self) -> tuple[int, int, int, int]:
        """The transpose permutation that turns a batch in this layout into (B, C, H, W)."""
        return (0, 1, 2, 3) if self is Layout.NCHW else (0, 3, 1, 2)

    @property
    def from_nchw(self) -> tuple[int, int, int, int]:
        """The transpose permutation that turns (B, C, H, W) into this layout."""
        return (0, 1, 2, 3) if self is Layout.NCHW else (0, 2, 3, 1)

    @property
    def axes(self) -> str:
        """How shapes in this layout are written in messages, e.g. '(B, C, H, W)'."""
        return "(B, C, H, W)" if self is Layout.NCHW else "(B, H, W, C)"

    def shape(self, batch, channels, height, width) -> tuple:
        """A rank-4 shape in this layout (entries may be symbols such as "batch")."""
        return (batch, channels, height, width) if self is Layout.NCHW else (batch, height, width, channels)

    def image_hw(self, shape) -> tuple:
        """(H, W) of a rank-4 shape in this layout, as the shape holds them (ints, or None/symbols when traced)."""
        return shape[self.spatial_axes[0]], shape[self.spatial_axes[1]]

    def channels(self, shape):
        return shape[self.channel_axis]


class Profile(_Word):
    """How z0 is computed: fast (float32, any order) or exact (float64 in a fixed order, rounded once)."""

    FAST = "fast"
    EXACT = "exact"

    @property
    def compute_dtype(self) -> str:
        return "float32" if self is Profile.FAST else "float64"


class Precision(_Word):
    """What an exported graph stores and computes in (the stem's numbers, not its I/O)."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"

    @property
    def compute_dtype(self) -> str:
        return "float16" if self is Precision.FP16 else "float32"  # int8: quantized MatMul, float32 around it


# -- the exported graph's contract --------------------------------------------------------------------
IO_DTYPES = ("float32", "float16")
INPUT_NAME = "images"
OUTPUT_NAME = "z0"
# With preprocessing in the graph, the input is a camera frame: uint8, channels last, whatever the spec's layout.
CAMERA_LAYOUT = Layout.NHWC
CAMERA_DTYPE = "uint8"


def graph_input(spec, preprocess_in_graph: bool, io_dtype: str) -> tuple[Layout, str]:
    """(layout, dtype) of an exported graph's input: camera frames with preprocessing in the graph,
    otherwise the spec's layout in the I/O dtype. Shared by the builder, the check and the runtime."""
    if preprocess_in_graph:
        return CAMERA_LAYOUT, CAMERA_DTYPE
    return Layout(spec.input.layout), io_dtype


# -- tolerances ------------------------------------------------------------------------------------
# exact: bit-identical. fast: the float32 error bound (vitstem.backends.numpy.bound), 1x against the exact
# reference and 2x between two fast engines (each within 1x of the reference).
FAST_BOUND_BETWEEN_ENGINES = 2.0
# fp16: kernel, table and output rounded to u16 = 2^-11 (ORT accumulates in float32): 8 u16 of the
# output's scale, as documented by the exporter (measured <= 1.2e-3 max|z| on the presets).
FP16_RELATIVE = 4e-3
FP16_MIN_COSINE = 0.999
# int8 (QDQ, per-channel uint8 weights, uint8 activations): a quantisation error, not a rounding one.
INT8_RELATIVE = 0.1
INT8_MIN_COSINE = 0.98


# -- the geometry of one batch ---------------------------------------------------------------------
@dataclass(frozen=True)
class Geometry:
    """Everything shape-like about running `spec` on one input shape, resolved once.

    `image_hw` is the input's size; `used_hw` the part whole patches cover (smaller only with
    input.remainder: drop); z0 has `tokens` = `prefix_rows` + gh * gw rows of `embed_dim`."""

    layout: Layout
    batch: int
    channels: int
    image_hw: tuple[int, int]
    used_hw: tuple[int, int]
    patch_size: tuple[int, int]
    grid: tuple[int, int]
    prefix_rows: int
    embed_dim: int

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def tokens(self) -> int:
        return self.prefix_rows + self.num_patches

    @property
    def patch_dim(self) -> int:
        return self.channels * self.patch_size[0] * self.patch_size[1]

    @property
    def z0_shape(self) -> tuple[int, int, int]:
        return (self.batch, self.tokens, self.embed_dim)

    @classmethod
    def of(cls, spec, input_shape=None, layout: Layout | str | None = None) -> "Geometry":
        """The geometry of a rank-4 `input_shape` in `layout` (default: the spec's; a batch of 1 at the
        spec's image size when no shape is given). Sizes follow the spec's rule (InputError otherwise);
        callers check rank and channels first (spec.inputs.check_images)."""
        layout = Layout(layout or spec.input.layout)
        if input_shape is None:
            input_shape = layout.shape(1, spec.in_channels, *spec.image_size)
        hw = tuple(int(s) for s in layout.image_hw(input_shape))
        grid = spec.patch_grid(hw)
        ph, pw = spec.patch_size
        return cls(layout=layout, batch=int(input_shape[0]), channels=int(layout.channels(input_shape)), image_hw=hw,
                   used_hw=(grid[0] * ph, grid[1] * pw), patch_size=(ph, pw), grid=grid,
                   prefix_rows=spec.num_prefix_tokens, embed_dim=spec.embed_dim)
