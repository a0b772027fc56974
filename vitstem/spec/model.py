"""`Spec`: the immutable, validated description of one ViT input layer, its derived shapes and its
canonical JSON.

Structure comes from schema.json (see schema.py), the rules that span fields from rules.py, and
building from a mapping, file or preset from loading.py (`load_spec`). The shapes other modules
need are derived here (or, for one input batch, by vocabulary.Geometry), never re-typed elsewhere.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from .policies import POLICY_FIELDS
from .remainder import whole_patches
from .vocabulary import Layout

SPEC_VERSION = 1
# Fields added after spec v1 shipped, with the value that means "as before". The canonical JSON leaves
# them out at that value, so the digest (and every golden vector) of a spec that does not use them stays
# byte-identical to what earlier releases wrote. Paths are keys into `Spec.to_dict()`.
POST_V1_DEFAULTS: dict[tuple[str, ...], Any] = {
    ("patch_norm",): None,  # no norm after the patch projection
    ("pre_norm", "kind"): "layer_norm",  # pre_norm was a LayerNorm
    ("input", "remainder"): "refuse",  # sizes not a multiple of the patch were refused
}


@dataclass(frozen=True)
class Prefix:
    class_token: bool
    dist_token: bool
    register_tokens: int


@dataclass(frozen=True)
class PositionEmbedding:
    kind: str  # "learned" | "sincos2d" | "none"
    covers_prefix: bool
    grid: tuple[int, int] | None
    sincos_convention: str | None
    temperature: float


@dataclass(frozen=True)
class Norm:
    """A norm over each row of D values: layer_norm (weight and bias) or rms_norm (weight only)."""
    eps: float
    kind: str = "layer_norm"  # "layer_norm" | "rms_norm"


@dataclass(frozen=True)
class Preprocess:
    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class InputFormat:
    layout: Layout
    preprocess: Preprocess | None
    remainder: str = "refuse"  # "refuse" | "drop": pixels past the last whole patch (see remainder.py)


@dataclass(frozen=True)
class ResamplePolicy:
    policy: str
    mode: str
    cubic_coeff_a: float
    antialias: bool
    coordinates: str
    exclude_outside: bool
    phase_steps: int | None  # TF's ResizeBicubic rounds sub-pixel positions to 1/1024

    def kwargs(self) -> dict:
        """The keyword arguments of `vitstem.spec.resampling.resample_grid`."""
        return {f: getattr(self, f) for f in POLICY_FIELDS}


@dataclass(frozen=True)
class Spec:
    spec_version: int
    name: str
    image_size: tuple[int, int]
    in_channels: int
    patch_size: tuple[int, int]
    embed_dim: int
    patch_bias: bool
    prefix: Prefix
    position_embedding: PositionEmbedding
    pre_norm: Norm | None
    input: InputFormat
    resample: ResamplePolicy
    dynamic_image_size: bool
    patch_norm: Norm | None = None  # after the patch projection, before the prefix tokens and the table

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Every field explicit, JSON-ready; `load_spec(spec.to_dict()) == spec`."""

        def plain(value):
            if isinstance(value, tuple):
                return [plain(v) for v in value]
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, Layout):
                return value.value
            return value

        return plain(asdict(self))

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no whitespace; the digest is taken over these bytes.

        Post-v1 fields at their "as before" value are left out (see POST_V1_DEFAULTS)."""
        data = self.to_dict()
        for path, default in POST_V1_DEFAULTS.items():
            *parents, leaf = path
            node = data
            for key in parents:
                node = node.get(key) if isinstance(node, dict) else None
            if isinstance(node, dict) and leaf in node and node[leaf] == default:
                del node[leaf]
        return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)

    def digest(self) -> str:
        """A stable SHA-256 of the canonical JSON, e.g. 'sha256:3f1c...'."""
        return "sha256:" + hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()

    def replace(self, **changes) -> "Spec":
        """A new validated spec with top-level fields changed (nested ones as dicts)."""
        from .loading import load_spec

        data = self.to_dict()
        data.update(changes)
        return load_spec(data)

    # -- derived shapes ------------------------------------------------------------------
    @property
    def input_layout(self) -> Layout:
        return self.input.layout

    @property
    def patch_dim(self) -> int:
        """K = C * Ph * Pw, the length of one flattened patch (channel-major, as OIHW)."""
        return self.in_channels * self.patch_size[0] * self.patch_size[1]

    @property
    def prefix_tokens(self) -> tuple[str, ...]:
        """Canonical names of the prefix tokens in z0 order: cls, dist, then registers."""
        names = []
        if self.prefix.class_token:
            names.append("cls_token")
        if self.prefix.dist_token:
            names.append("dist_token")
        names += [f"reg_tokens[{i}]" for i in range(self.prefix.register_tokens)]
        return tuple(names)

    @property
    def num_prefix_tokens(self) -> int:
        return len(self.prefix_tokens)

    def patch_grid(self, image_hw: tuple[int, int] | None = None) -> tuple[int, int]:
        """(H/Ph, W/Pw) for `image_hw` (default: the spec's image size), rounded down with
        input.remainder: drop; InputError if not divisible under refuse (or no whole patch)."""
        h, w = self.image_size if image_hw is None else (int(image_hw[0]), int(image_hw[1]))
        return whole_patches(h, w, self.patch_size, self.input.remainder)

    @property
    def num_patches(self) -> int:
        gh, gw = self.patch_grid()
        return gh * gw

    def num_tokens(self, image_hw: tuple[int, int] | None = None) -> int:
        """Rows of z0 per image: prefix tokens plus N patches."""
        gh, gw = self.patch_grid(image_hw)
        return self.num_prefix_tokens + gh * gw

    @property
    def pos_grid(self) -> tuple[int, int]:
        """Native patch grid of the learned position table."""
        return self.position_embedding.grid or self.patch_grid()

    @property
    def pos_prefix_rows(self) -> int:
        """How many leading rows of the position table belong to prefix tokens."""
        pe = self.position_embedding
        return self.num_prefix_tokens if pe.kind != "none" and pe.covers_prefix else 0

    def input_shape(self, batch: int | str = "B", image_hw: tuple[int, int] | None = None) -> tuple:
        h, w = self.image_size if image_hw is None else image_hw
        return self.input.layout.shape(batch, self.in_channels, h, w)
