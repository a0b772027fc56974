"""Writing what an exported model says about itself: `metadata_props` under the `vitstem.` prefix.

The keys and what each promises are listed in vitstem.spec.exported, which reads them back (the edge
runtime does, without onnx); this module writes them, in KEYS order.
"""

from __future__ import annotations

import hashlib
import json

from ..spec.exported import ENCODER_KEYS, PREFIX

KEYS = ("spec", "spec_digest", "weights_digest", "graph_digest", "export_options", "version", "encoder",
        "calibration", "onnx_digest", "digest")


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


def encoder_json(info: dict) -> str:
    """vitstem.encoder of a whole model: `info`'s ENCODER_KEYS as canonical JSON."""
    return json.dumps({k: info[k] for k in ENCODER_KEYS}, sort_keys=True, separators=(",", ":"))
