"""What an exported model says about itself: `metadata_props` under the `vitstem.` prefix.

- vitstem.spec            the spec as canonical JSON (the edge runtime reads it back)
- vitstem.spec_digest     Spec.digest() of that JSON
- vitstem.weights_digest  vitstem.spec.digest.weights_digest of the canonical weights (provenance:
                          the graph holds folded constants, so compare it with the weights file)
- vitstem.graph_digest    SHA-256 of the graph as stored (nodes and initializers): integrity
- vitstem.export_options  the resolved ExportOptions as JSON
- vitstem.version         the vitstem version that wrote the file
"""

from __future__ import annotations

import hashlib


PREFIX = "vitstem."
KEYS = ("spec", "spec_digest", "weights_digest", "graph_digest", "export_options", "version")


def graph_digest(graph) -> str:
    """'sha256:<hex>' of the GraphProto's deterministic serialisation."""
    return "sha256:" + hashlib.sha256(graph.SerializeToString(deterministic=True)).hexdigest()


def attach(model, values: dict[str, str]) -> None:
    """Replace the model's vitstem.* metadata with `values` (keys without the prefix), in KEYS order."""
    kept = [p for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key in KEYS:
        if key in values:
            entry = model.metadata_props.add()
            entry.key, entry.value = PREFIX + key, values[key]


def read(props) -> dict[str, str]:
    """{key without prefix: value} from metadata props (a ModelProto's, or ORT's custom_metadata_map)."""
    items = props.items() if hasattr(props, "items") else ((p.key, p.value) for p in props)
    return {k[len(PREFIX):]: v for k, v in items if k.startswith(PREFIX)}
