"""Writing what an exported model says about itself: `metadata_props` under the `vitstem.` prefix.

The keys and what each promises are listed in vitstem.spec.exported, which reads them back (the edge
runtime does, without onnx); this module writes them, in KEYS order.
"""

from __future__ import annotations

import hashlib
import json

from ..errors import ExportError
from ..spec.exported import ENCODER_KEYS, PREFIX

KEYS = ("spec", "spec_digest", "weights_digest", "graph_digest", "export_options", "version", "encoder",
        "calibration", "onnx_digest", "digest")


def graph_digest(graph) -> str:
    """'sha256:<hex>' of the GraphProto's deterministic serialisation."""
    return "sha256:" + hashlib.sha256(graph.SerializeToString(deterministic=True)).hexdigest()


GRAPH_FIELD = 7  # ModelProto.graph
PENDING_GRAPH_DIGEST = "sha256:" + "f" * 64  # same length as a digest, so filling it in moves no byte


def graph_bytes(data: bytes) -> memoryview:
    """The GraphProto inside a serialised ModelProto: protobuf writes a submessage as its own serialisation,
    so this slice of a deterministic model serialisation is the graph's deterministic serialisation."""
    view, pos = memoryview(data), 0

    def varint() -> int:
        nonlocal pos
        value = shift = 0
        while True:
            byte = view[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    while pos < len(view):
        key = varint()
        field, wire = key >> 3, key & 7
        if wire == 0:
            varint()
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        elif wire == 2:
            length = varint()
            if field == GRAPH_FIELD:
                return view[pos:pos + length]
            pos += length
        else:
            raise ExportError(f"unexpected protobuf wire type {wire} at byte {pos} of a ModelProto")
    raise ExportError("the serialised model has no graph")


def fill_graph_digest(data: bytes) -> bytes:
    """`data` (holding PENDING_GRAPH_DIGEST once, as vitstem.graph_digest) with it replaced by the graph's
    digest, hashed from these bytes rather than from a second serialisation of a large graph."""
    marker = PENDING_GRAPH_DIGEST.encode()
    if data.count(marker) != 1:
        raise ExportError("the pending graph digest does not occur exactly once in the serialised model")
    return data.replace(marker, ("sha256:" + hashlib.sha256(graph_bytes(data)).hexdigest()).encode())


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
