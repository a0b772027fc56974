"""`Spec`: the immutable, validated description of one ViT input layer.

Structure comes from schema.json (see schema.py); the rules that span fields (divisibility,
channel counts, sizes that would not fit in memory) live in `_semantic_problems` below.
All shapes other modules need are derived here, never re-typed elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from ..errors import InputError, SpecError
from . import schema as _schema
from . import reachable_rules as _reachable
from . import strict_text as _strict
from .policies import NAMED_POLICIES, POLICY_FIELDS
from .remainder import size_problems, whole_patches
from .vocabulary import Layout

SPEC_VERSION = 1
# Refuse tables and kernels that could not be allocated (or serialised to ONNX's 2 GiB protobuf).
MAX_TENSOR_ELEMENTS = 2**28
MAX_IMAGE_SIDE = 65536
F32_TINY, F32_MAX = 1.1754943508222875e-38, 3.4028234663852886e38  # smallest normal, largest finite
F64_TINY = 2.2250738585072014e-308
# Fields added after spec v1 shipped, with the value that means "as before". The canonical JSON leaves
# them out at that value, so the digest (and every golden vector) of a spec that does not use them stays
# byte-identical to what earlier releases wrote. Paths are keys into `Spec.to_dict()`.
POST_V1_DEFAULTS: dict[tuple[str, ...], Any] = {
    ("patch_norm",): None,  # no norm after the patch projection
    ("pre_norm", "kind"): "layer_norm",  # pre_norm was a LayerNorm
    ("input", "remainder"): "refuse",  # sizes not a multiple of the patch were refused
}
NORM_KINDS = ("layer_norm", "rms_norm")


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


PreNorm = Norm  # the name before patch_norm shared the type


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


# -- loading ------------------------------------------------------------------------------
def _count(value) -> int:
    """An integer field as an int; TypeError for anything else.

    The rules below also run on documents the schema rejected, so they must never compute with a
    string or list ("x" * 10**9 would allocate gigabytes before failing).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return int(value)


def _show(value) -> str:
    """A value for a message; str() of a 5000-digit int raises ValueError, which must not hide a rule."""
    return _schema._describe(value)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _pair(value) -> tuple[int, int]:
    if isinstance(value, (int, float)):
        return _count(value), _count(value)
    return _count(value[0]), _count(value[1])


def _sizes_rule(d: dict) -> list[tuple[str, str]]:
    problems = []
    image, patch = _pair(d["image_size"]), _pair(d["patch_size"])
    for i in (0, 1):
        if image[i] > MAX_IMAGE_SIDE:
            problems.append((f"image_size[{i}]", f"{_show(image[i])} exceeds the maximum side {MAX_IMAGE_SIDE}"))
    inp = d.get("input")
    remainder = inp.get("remainder", "refuse") if isinstance(inp, dict) else "refuse"  # malformed: reported by the schema
    return problems + size_problems(image, patch, remainder, _show)


def _position_rule(d: dict) -> list[tuple[str, str]]:
    problems = []
    pe, dim = d["position_embedding"], _count(d["embed_dim"])
    if pe["kind"] == "sincos2d":
        if dim % 4:
            problems.append(("embed_dim", f"{_show(dim)} is not divisible by 4, which sincos2d position tables need"))
        if pe["sincos_convention"] is None:
            problems.append(("position_embedding.sincos_convention",
                             "is required when kind is sincos2d (big_vision, timm or mae)"))
        if pe["grid"] is not None:
            problems.append(("position_embedding.grid", "must be null for sincos2d (the table is computed for each grid)"))
    elif pe["sincos_convention"] is not None:
        problems.append(("position_embedding.sincos_convention", f"only applies to kind sincos2d, not {pe['kind']}"))
    if pe["kind"] == "none" and pe["grid"] is not None:
        problems.append(("position_embedding.grid", "must be null when kind is none"))
    return problems


def _preprocess_rule(d: dict) -> list[tuple[str, str]]:
    pre = d["input"]["preprocess"]
    if pre is None:
        return []
    return [(f"input.preprocess.{key}", f"has {len(pre[key])} values but in_channels = {_show(d['in_channels'])}")
            for key in ("mean", "std") if len(pre[key]) != d["in_channels"]]


def _resample_rule(d: dict) -> list[tuple[str, str]]:
    rs = d["resample"]
    if rs["policy"] == "custom":
        problems = [(f"resample.{key}", "is required when policy is custom")
                    for key in POLICY_FIELDS if key not in rs and key != "phase_steps"]
        # Combinations resampling.resample_matrix refuses: caught here, not at the first forward.
        if rs.get("antialias") is True and rs.get("coordinates") == "align_corners":
            problems.append(("resample.antialias", "true is only defined with coordinates: half_pixel"))
        steps = rs.get("phase_steps")
        if steps is not None and rs.get("antialias") is True:
            problems.append(("resample.phase_steps", "is only defined with antialias: false"))
        if _is_number(steps) and steps > 2**53:
            problems.append(("resample.phase_steps", "exceeds 2**53 (sample positions are float64)"))
        return problems
    return [(f"resample.{key}", f"{_show(rs[key])} contradicts policy {rs['policy']!r} ({_show(value)}); "
             "use policy: custom to change it")
            for key, value in NAMED_POLICIES[rs["policy"]].items() if key in rs and rs[key] != value]


def _memory_rule(d: dict) -> list[tuple[str, str]]:
    """Sizes of the tensors the spec implies, checked before anything is allocated."""
    problems = []
    image, patch, dim = _pair(d["image_size"]), _pair(d["patch_size"]), _count(d["embed_dim"])
    k = _count(d["in_channels"]) * patch[0] * patch[1]
    if dim * k > MAX_TENSOR_ELEMENTS:
        problems.append(("embed_dim", f"patch kernel {_show(dim)}x{_show(k)} has {_show(dim * k)} elements, over the limit {MAX_TENSOR_ELEMENTS}"))
    pe = d["position_embedding"]
    grid = _pair(pe["grid"]) if pe["grid"] is not None else (image[0] // patch[0], image[1] // patch[1])
    rows = grid[0] * grid[1] + _count(d["prefix"]["register_tokens"]) + 2
    if rows * dim > MAX_TENSOR_ELEMENTS:
        problems.append(("position_embedding", f"a table of {_show(rows)}x{_show(dim)} exceeds the limit of {MAX_TENSOR_ELEMENTS} elements"))
    return problems


def _float_range_rule(d: dict) -> list[tuple[str, str]]:
    """Constants the engines use in float32 must neither round to 0 nor overflow there
    (a std of 1e-50 passes `> 0` but divides by zero in float32)."""
    positive = []  # (path, value): must be a normal, finite float32
    pre = d["input"]["preprocess"]
    if pre is not None:
        positive.append(("input.preprocess.scale", pre["scale"]))
        positive += [(f"input.preprocess.std[{i}]", v) for i, v in enumerate(pre["std"])]
    for norm in ("patch_norm", "pre_norm"):
        if d[norm] is not None:
            positive.append((f"{norm}.eps", d[norm]["eps"]))
    problems = [(path, f"{v!r} is outside the float32 range [{F32_TINY!r}, {F32_MAX!r}]")
                for path, v in positive if _is_number(v) and not F32_TINY <= v <= F32_MAX]
    if pre is not None:
        problems += [(f"input.preprocess.mean[{i}]", f"{v!r} overflows float32 (|mean| <= {F32_MAX!r})")
                     for i, v in enumerate(pre["mean"]) if _is_number(v) and abs(v) > F32_MAX]
    temperature = d["position_embedding"]["temperature"]
    if temperature < F64_TINY:  # the sin-cos frequencies 1 / temperature ** t would overflow
        problems.append(("position_embedding.temperature", f"{temperature!r} is below {F64_TINY!r}"))
    return problems


def _name_rule(d: dict) -> list[tuple[str, str]]:
    """The name goes into ONNX graphs and YAML files: it must be encodable text (JSON allows "\\ud800")."""
    try:
        d["name"].encode("utf-8")
    except UnicodeEncodeError:
        return [("name", "is not valid Unicode text (it contains a lone surrogate)")]
    return []


_RULES = (_name_rule, _sizes_rule, _position_rule, _preprocess_rule, _resample_rule, _memory_rule, _float_range_rule,
          *_reachable.RULES)


def _semantic_problems(d: dict, malformed: bool = True) -> list[tuple[str, str]]:
    """Rules across fields. Each runs on its own so that one malformed field (already reported by
    the schema) does not hide the problems the other rules would find. On a document the schema
    accepted (`malformed` false) a rule that fails is a bug: it must not pass the spec silently."""
    problems = []
    for rule in _RULES:
        try:
            problems += rule(d)
        except (TypeError, KeyError, ValueError, IndexError, AttributeError, ArithmeticError):
            if not malformed:
                raise
            # the structural check has reported the field this rule could not read
    return problems


def _build(d: dict) -> Spec:
    pe, inp, rs = d["position_embedding"], d["input"], d["resample"]
    policy = {"phase_steps": None, **(NAMED_POLICIES.get(rs["policy"]) or {}),
              **{k: rs[k] for k in POLICY_FIELDS if k in rs}}
    pre = inp["preprocess"]
    return Spec(
        spec_version=int(d["spec_version"]),
        name=d["name"],
        image_size=_pair(d["image_size"]),
        in_channels=int(d["in_channels"]),
        patch_size=_pair(d["patch_size"]),
        embed_dim=int(d["embed_dim"]),
        patch_bias=d["patch_bias"],
        prefix=Prefix(d["prefix"]["class_token"], d["prefix"]["dist_token"], int(d["prefix"]["register_tokens"])),
        position_embedding=PositionEmbedding(
            kind=pe["kind"], covers_prefix=pe["covers_prefix"],
            grid=None if pe["grid"] is None else _pair(pe["grid"]),
            sincos_convention=pe["sincos_convention"], temperature=float(pe["temperature"])),
        pre_norm=_norm(d["pre_norm"]),
        input=InputFormat(
            layout=Layout(inp["layout"]), remainder=inp["remainder"],
            preprocess=None if pre is None else Preprocess(
                float(pre["scale"]), tuple(map(float, pre["mean"])), tuple(map(float, pre["std"])))),
        resample=ResamplePolicy(policy=rs["policy"], mode=policy["mode"],
                                cubic_coeff_a=float(policy["cubic_coeff_a"]), antialias=policy["antialias"],
                                coordinates=policy["coordinates"], exclude_outside=policy["exclude_outside"],
                                phase_steps=None if policy["phase_steps"] is None else int(policy["phase_steps"])),
        dynamic_image_size=d["dynamic_image_size"],
        patch_norm=_norm(d["patch_norm"]),
    )


def _norm(d: dict | None) -> Norm | None:
    return None if d is None else Norm(eps=float(d["eps"]), kind=d["kind"])


def _read_document(path: Path) -> Any:
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read spec file {path}: {exc}") from None
    # ValueError: an integer over Python's 4300-digit limit; RecursionError: absurdly deep nesting.
    if path.suffix.lower() == ".json":
        try:
            return _strict.loads_json(text)
        except (ValueError, RecursionError) as exc:
            raise SpecError(f"{path} is not valid JSON: {str(exc).splitlines()[0]}") from None
    import yaml  # lazily: only files need it

    try:
        return _strict.loads_yaml(text)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise SpecError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None


def load_spec(source: "Spec | Mapping | str | os.PathLike") -> Spec:
    """A validated Spec from a mapping, a YAML/JSON file path, or a preset name.

    Raises SpecError listing every problem at once, each with its field path.
    """
    if isinstance(source, Spec):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            is_file = path.is_file()
        except OSError as exc:  # e.g. a name too long for the file system
            raise SpecError(f"cannot read spec file {path}: {exc.strerror or exc}") from None
        if is_file:
            source = _read_document(path)
        else:
            from .presets import PRESETS

            if str(source) in PRESETS:
                source = PRESETS[str(source)]
            else:
                raise SpecError(f"{str(source)!r} is neither a spec file nor a preset (see `vitstem spec list`)")
    if not isinstance(source, Mapping):
        raise SpecError(f"a spec must be a mapping, got {type(source).__name__}")
    problems = _schema.validate(dict(source))
    try:
        data = _schema.with_defaults(dict(source))
    except Exception:  # a shape with_defaults cannot walk: the schema problems say why
        data = None
    if data is not None:
        reported = {path for path, _ in problems}
        problems += [p for p in _semantic_problems(data, malformed=bool(problems)) if p[0] not in reported]
    if problems:
        raise SpecError(problems)
    return _build(data)


def spec_fields() -> tuple[str, ...]:
    return tuple(f.name for f in fields(Spec))
