"""The spec's JSON Schema (shipped as schema.json) and a small interpreter for it.

The schema is the single source of truth for the spec's structure. We interpret the subset of
JSON Schema it uses here, rather than depend on `jsonschema`, so that the edge runtime can read a
spec with nothing but the standard library and numpy, and so that every problem is reported with
a readable field path (`image_size[1]`, `input.preprocess.std[2]`) in one pass.
"""

from __future__ import annotations

import copy
import json
import math
from functools import lru_cache
from importlib import resources
from typing import Any

_FLOAT_MAX = 1.7976931348623157e308  # sys.float_info.max: a JSON number must fit a double

_JSON_TYPES = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
    or (isinstance(v, float) and math.isfinite(v) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, (list, tuple)),
    "object": lambda v: isinstance(v, dict),
}


@lru_cache(maxsize=1)
def schema() -> dict:
    """The spec's JSON Schema as a dict (a fresh parse of the packaged schema.json)."""
    return json.loads(resources.files(__package__).joinpath("schema.json").read_text("utf-8"))


def schema_text() -> str:
    return resources.files(__package__).joinpath("schema.json").read_text("utf-8")


def _resolve(node: dict) -> dict:
    ref = node.get("$ref")
    if ref is None:
        return node
    target: Any = schema()
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return target


def _describe(value: Any) -> str:
    """A short rendering of a value for a message; bounded work even for huge or aliased documents."""
    text = _render(value, 60)
    return text if len(text) <= 60 else text[:57] + "..."


def _render(value: Any, budget: int) -> str:
    # Stops once `budget` characters are out: a YAML alias bomb must not be serialised whole.
    if isinstance(value, (list, tuple, dict)):
        items = value.items() if isinstance(value, dict) else value
        open_, close = ("{", "}") if isinstance(value, dict) else ("[", "]")
        parts, used = [], 1
        for item in items:
            if used > budget:
                parts.append("...")
                break
            part = (f"{_render(item[0], budget - used)}: {_render(item[1], budget - used)}"
                    if isinstance(value, dict) else _render(item, budget - used))
            parts.append(part)
            used += len(part) + 2
        return open_ + ", ".join(parts) + close
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
            return f"<{value.bit_length()}-bit integer>"  # str() refuses over 4300 digits
        return json.dumps(value)[: budget + 3]
    return repr(value)[: budget + 3]


def _same_json_value(a: Any, b: Any) -> bool:
    """JSON Schema equality for enum: true is not 1 (Python's == says it is)."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _types(node: dict) -> list[str]:
    """The JSON types a schema node can accept (an anyOf branch may itself be an anyOf, e.g. pair)."""
    node = _resolve(node)
    if "anyOf" in node:
        return [t for branch in node["anyOf"] for t in _types(branch)]
    return [node["type"]] if "type" in node else []


def _kinds(node: dict) -> str:
    """What a node accepts, for a message: 'null or integer or array', 'one of "mae", ...'."""
    node = _resolve(node)
    if "anyOf" in node:
        return " or ".join(_kinds(branch) for branch in node["anyOf"])
    if "enum" in node:
        return "one of " + ", ".join(map(_describe, node["enum"]))
    return node.get("type", "a value")


def validate(instance: Any, node: dict | None = None, path: str = "") -> list[tuple[str, str]]:
    """Every (field path, reason) by which `instance` breaks the schema; [] when it conforms."""
    node = _resolve(schema() if node is None else node)
    problems: list[tuple[str, str]] = []
    if "anyOf" in node:
        branches = [_resolve(b) for b in node["anyOf"]]
        results = [validate(instance, b, path) for b in branches]
        if any(not r for r in results):
            return []
        # Report the branch whose type fits the value; otherwise list what would have fitted.
        for branch, result in zip(branches, results):
            if any(_JSON_TYPES[t](instance) for t in _types(branch)):
                return result
        return [(path, f"expected {_kinds(node)}, got {_describe(instance)}")]
    if "enum" in node and not any(_same_json_value(instance, v) for v in node["enum"]):
        allowed = ", ".join(_describe(v) for v in node["enum"])
        return [(path, f"{_describe(instance)} is not one of {allowed}")]
    kind = node.get("type")
    if kind is not None and not _JSON_TYPES[kind](instance):
        return [(path, f"expected {kind}, got {_describe(instance)}")]
    if isinstance(instance, float) and not math.isfinite(instance):
        return [(path, f"{instance} is not a finite number")]
    if kind == "number" and isinstance(instance, int) and abs(instance) > _FLOAT_MAX:
        return [(path, f"{_describe(instance)} is too large for a floating-point number")]
    if "minimum" in node and instance < node["minimum"]:
        problems.append((path, f"{_describe(instance)} is less than {node['minimum']}"))
    if "exclusiveMinimum" in node and instance <= node["exclusiveMinimum"]:
        problems.append((path, f"{_describe(instance)} must be greater than {node['exclusiveMinimum']}"))
    if kind == "array":
        if "minItems" in node and len(instance) < node["minItems"]:
            problems.append((path, f"needs at least {node['minItems']} items, got {len(instance)}"))
        if "maxItems" in node and len(instance) > node["maxItems"]:
            problems.append((path, f"takes at most {node['maxItems']} items, got {len(instance)}"))
        if "items" in node:
            for i, item in enumerate(instance):
                problems += validate(item, node["items"], _join(path, i))
    if kind == "object":
        props = node.get("properties", {})
        for key in node.get("required", []):
            if key not in instance:
                problems.append((_join(path, key), "is required"))
        for key, value in instance.items():
            if key in props:
                problems += validate(value, props[key], _join(path, key))
            elif node.get("additionalProperties", True) is False:
                known = ", ".join(sorted(props))
                problems.append((_join(path, str(key)), f"unknown field (known: {known})"))
    return problems


def with_defaults(instance: Any, node: dict | None = None) -> Any:
    """A deep copy of a conforming `instance` with every schema default filled in."""
    node = _resolve(schema() if node is None else node)
    if "anyOf" in node:
        for branch in map(_resolve, node["anyOf"]):
            if not validate(instance, branch):
                return with_defaults(instance, branch)
        return copy.deepcopy(instance)
    if node.get("type") == "object" and isinstance(instance, dict):
        out = {}
        for key, sub in node.get("properties", {}).items():
            sub = _resolve(sub)
            if key in instance:
                out[key] = with_defaults(instance[key], sub)
            elif "default" in sub:
                out[key] = with_defaults(copy.deepcopy(sub["default"]), sub)
        return out
    return copy.deepcopy(instance)
