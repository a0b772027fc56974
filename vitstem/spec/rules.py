"""The spec's rules across fields (divisibility, channel counts, float ranges, sizes that would not fit
in memory), run on the normalised document after the schema's structural check.

Each rule returns (field path, reason) pairs; `semantic_problems` runs them all, so one load
reports every problem at once. reachable_rules.py adds the rules for what later code would refuse.
"""

from __future__ import annotations

from . import reachable_rules as _reachable
from . import schema as _schema
from .policies import NAMED_POLICIES, POLICY_FIELDS
from .reachable_rules import F32_MAX, F32_TINY, is_number
from .remainder import size_problems

# Refuse tables and kernels that could not be allocated (or serialised to ONNX's 2 GiB protobuf).
MAX_TENSOR_ELEMENTS = 2**28
MAX_IMAGE_SIDE = 65536
F64_TINY = 2.2250738585072014e-308


def count(value) -> int:
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


def pair(value) -> tuple[int, int]:
    if isinstance(value, (int, float)):
        return count(value), count(value)
    return count(value[0]), count(value[1])


def _sizes_rule(d: dict) -> list[tuple[str, str]]:
    problems = []
    image, patch = pair(d["image_size"]), pair(d["patch_size"])
    for i in (0, 1):
        if image[i] > MAX_IMAGE_SIDE:
            problems.append((f"image_size[{i}]", f"{_show(image[i])} exceeds the maximum side {MAX_IMAGE_SIDE}"))
    inp = d.get("input")
    remainder = inp.get("remainder", "refuse") if isinstance(inp, dict) else "refuse"  # malformed: reported by the schema
    return problems + size_problems(image, patch, remainder, _show)


def _position_rule(d: dict) -> list[tuple[str, str]]:
    problems = []
    pe, dim = d["position_embedding"], count(d["embed_dim"])
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
        if is_number(steps) and steps > 2**53:
            problems.append(("resample.phase_steps", "exceeds 2**53 (sample positions are float64)"))
        return problems
    return [(f"resample.{key}", f"{_show(rs[key])} contradicts policy {rs['policy']!r} ({_show(value)}); "
             "use policy: custom to change it")
            for key, value in NAMED_POLICIES[rs["policy"]].items() if key in rs and rs[key] != value]


def _memory_rule(d: dict) -> list[tuple[str, str]]:
    """Sizes of the tensors the spec implies, checked before anything is allocated."""
    problems = []
    image, patch, dim = pair(d["image_size"]), pair(d["patch_size"]), count(d["embed_dim"])
    k = count(d["in_channels"]) * patch[0] * patch[1]
    if dim * k > MAX_TENSOR_ELEMENTS:
        problems.append(("embed_dim", f"patch kernel {_show(dim)}x{_show(k)} has {_show(dim * k)} elements, over the limit {MAX_TENSOR_ELEMENTS}"))
    pe = d["position_embedding"]
    grid = pair(pe["grid"]) if pe["grid"] is not None else (image[0] // patch[0], image[1] // patch[1])
    rows = grid[0] * grid[1] + count(d["prefix"]["register_tokens"]) + 2
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
                for path, v in positive if is_number(v) and not F32_TINY <= v <= F32_MAX]
    if pre is not None:
        problems += [(f"input.preprocess.mean[{i}]", f"{v!r} overflows float32 (|mean| <= {F32_MAX!r})")
                     for i, v in enumerate(pre["mean"]) if is_number(v) and abs(v) > F32_MAX]
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


def semantic_problems(d: dict, malformed: bool = True) -> list[tuple[str, str]]:
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

