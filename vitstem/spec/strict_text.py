"""JSON and YAML parsing that refuses duplicate keys (the last one silently winning hides edits)."""

from __future__ import annotations

import json


class DuplicateKeyError(ValueError):
    """A mapping names the same key twice."""


def _pairs(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(f"duplicate key {key!r}")
        out[key] = value
    return out


def loads_json(text):
    """json.loads, refusing duplicate keys (DuplicateKeyError, a ValueError)."""
    return json.loads(text, object_pairs_hook=_pairs)


def loads_yaml(text):
    """yaml.safe_load, refusing duplicate keys (DuplicateKeyError, a ValueError)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader, node, deep=False):
        keys = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            try:
                seen = key in keys
            except TypeError:  # an unhashable key: SafeLoader reports it
                break
            if seen:
                raise DuplicateKeyError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1})")
            keys.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return yaml.load(text, Loader=Loader)  # noqa: S506 (a SafeLoader subclass)
