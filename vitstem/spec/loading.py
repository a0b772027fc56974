"""Building a `Spec`: from a mapping, a YAML/JSON file, or a preset name, validated on the way.

Which one a string means: a preset name always means the preset; anything else is a file path.
So a file in the working directory named like a preset never shadows it: write ./NAME (or any
path with a directory part) to load that file. An os.PathLike is always a file path.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Mapping

from ..errors import SpecError
from . import schema as _schema
from . import strict_text as _strict
from .model import InputFormat, Norm, PositionEmbedding, Prefix, Preprocess, ResamplePolicy, Spec
from .policies import NAMED_POLICIES, POLICY_FIELDS
from .rules import pair, semantic_problems
from .vocabulary import Layout

MAX_SPEC_BYTES = 16 << 20  # a spec is a few hundred bytes; config files have the same cap


def _build(d: dict) -> Spec:
    pe, inp, rs = d["position_embedding"], d["input"], d["resample"]
    policy = {"phase_steps": None, **(NAMED_POLICIES.get(rs["policy"]) or {}),
              **{k: rs[k] for k in POLICY_FIELDS if k in rs}}
    pre = inp["preprocess"]
    return Spec(
        spec_version=int(d["spec_version"]),
        name=d["name"],
        image_size=pair(d["image_size"]),
        in_channels=int(d["in_channels"]),
        patch_size=pair(d["patch_size"]),
        embed_dim=int(d["embed_dim"]),
        patch_bias=d["patch_bias"],
        prefix=Prefix(d["prefix"]["class_token"], d["prefix"]["dist_token"], int(d["prefix"]["register_tokens"])),
        position_embedding=PositionEmbedding(
            kind=pe["kind"], covers_prefix=pe["covers_prefix"],
            grid=None if pe["grid"] is None else pair(pe["grid"]),
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
    from .npy_file import open_regular, read_capped

    try:
        with open_regular(path) as f:  # a device or FIFO is refused unread (/dev/zero never ends)
            raw = read_capped(f, MAX_SPEC_BYTES)
        if len(raw) > MAX_SPEC_BYTES:
            raise SpecError(f"spec file {path} is over the {MAX_SPEC_BYTES}-byte limit")
        text = io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8").read()  # as Path.read_text decodes
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


def _document(source: "str | os.PathLike") -> Any:
    """The document a preset name or a file path stands for (see the module docstring)."""
    from .presets import PRESETS

    if isinstance(source, str) and source in PRESETS:
        return PRESETS[source]
    path = Path(source)
    try:
        is_file = path.is_file()
    except OSError as exc:  # e.g. a name too long for the file system
        raise SpecError(f"cannot read spec file {path}: {exc.strerror or exc}") from None
    if not is_file:
        from .file_kinds import non_regular_kind

        kind = non_regular_kind(path)
        if kind is not None:
            raise SpecError(f"spec file {path} is {kind}, not a regular file")
        raise SpecError(f"{str(source)!r} is neither a spec file nor a preset (see `vitstem spec list`)")
    return _read_document(path)


def load_spec(source: "Spec | Mapping | str | os.PathLike") -> Spec:
    """A validated Spec from a mapping, a preset name, or a YAML/JSON file path (a preset name
    always means the preset: `./NAME` loads a file named like one).

    Raises SpecError listing every problem at once, each with its field path.
    """
    if isinstance(source, Spec):
        return source
    if isinstance(source, (str, os.PathLike)):
        source = _document(source)
    if not isinstance(source, Mapping):
        raise SpecError(f"a spec must be a mapping, got {type(source).__name__}")
    problems = _schema.validate(dict(source))
    try:
        data = _schema.with_defaults(dict(source))
    except Exception:  # a shape with_defaults cannot walk: the schema problems say why
        data = None
    if data is not None:
        reported = {path for path, _ in problems}
        problems += [p for p in semantic_problems(data, malformed=bool(problems)) if p[0] not in reported]
    if problems:
        raise SpecError(problems)
    return _build(data)
