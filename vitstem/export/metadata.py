"""What an exported model says about itself: `metadata_props` under the `vitstem.` prefix.

- vitstem.spec            the spec as canonical JSON (the edge runtime reads it back)
- vitstem.spec_digest     Spec.digest() of that JSON
- vitstem.weights_digest  vitstem.spec.digest.weights_digest of the canonical weights (provenance:
                          the graph holds folded constants, so compare it with the weights file)
- vitstem.graph_digest    SHA-256 of the graph as stored (nodes and initializers): integrity
- vitstem.export_options  the resolved ExportOptions as JSON
- vitstem.version         the vitstem version that wrote the file
- vitstem.encoder         whole models only (vitstem.deploy): what follows the stem, see encoder_meta.py
- vitstem.calibration     int8 only: "synthetic", or the sha256 of the calibration images (provenance)
- vitstem.onnx_digest     .ort files only: vitstem.digest of the .onnx it was converted from
- vitstem.digest          SHA-256 of the whole file with this value zeroed: integrity of everything
                          above (vitstem.runtime.integrity; checked by the runtime without onnx)
"""

from __future__ import annotations

import hashlib
import json

from ..errors import ExportError
from .options import IO_DTYPES, MIN_OPSET, PRECISIONS, PROFILES


PREFIX = "vitstem."
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


def read(props, source="model") -> dict[str, str]:
    """{key without prefix: value} from metadata props (a ModelProto's, or ORT's custom_metadata_map);
    ExportError naming `source` if a key or value is not valid UTF-8 (protobuf then hands back bytes)."""
    items = props.items() if hasattr(props, "items") else ((p.key, p.value) for p in props)
    meta = {}
    for k, v in items:
        if not isinstance(k, str) or not isinstance(v, str):
            raise ExportError(f"{source}: metadata key {k!r} or its value is not valid UTF-8 (corrupt file?)")
        if k.startswith(PREFIX):
            meta[k[len(PREFIX):]] = v
    return meta


_BOOLS = ("dynamic_size", "preprocess_in_graph", "ort_format")
_OPTION_KEYS = {"opset", "precision", "profile", "batch", "sizes", "io_dtype", *_BOOLS}


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def json_object(text: str, source, key: str, keys) -> dict:
    """The JSON object stored as vitstem.<key>, with exactly `keys`; ExportError naming `source` otherwise."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ExportError(f"{source}: vitstem.{key} is not JSON ({exc})") from None
    if not isinstance(value, dict) or set(value) != set(keys):
        raise ExportError(f"{source}: vitstem.{key} must be an object with keys {', '.join(sorted(keys))}")
    return value


def parse_options(text: str, source) -> dict:
    """vitstem.export_options as a validated dict (what the runtime relies on); ExportError otherwise.
    No digest covers it, so it is checked field by field rather than taken at its word."""
    def bad(what):
        return ExportError(f"{source}: vitstem.export_options {what}")

    options = json_object(text, source, "export_options", _OPTION_KEYS)
    o = options
    if not _positive_int(o["opset"]) or o["opset"] < MIN_OPSET:
        raise bad(f"opset {o['opset']!r} is not an int >= {MIN_OPSET}")
    for key, allowed in (("precision", PRECISIONS), ("profile", PROFILES), ("io_dtype", IO_DTYPES)):
        if o[key] not in allowed:
            raise bad(f"{key} {o[key]!r} is not one of {', '.join(allowed)}")
    for key in _BOOLS:
        if not isinstance(o[key], bool):
            raise bad(f"{key} {o[key]!r} is not a bool")
    if o["batch"] is not None and not _positive_int(o["batch"]):
        raise bad(f"batch {o['batch']!r} is not null or a positive int")
    sizes = o["sizes"]
    if sizes is None:
        if not o["dynamic_size"]:
            raise bad("sizes is null but dynamic_size is false")
    elif (o["dynamic_size"] or not isinstance(sizes, list) or not sizes
          or not all(isinstance(s, list) and len(s) == 2 and all(map(_positive_int, s)) for s in sizes)):
        raise bad(f"sizes {sizes!r} is not a non-empty list of [H, W] positive ints (with dynamic_size false)")
    return options


def graph_input(spec, preprocess_in_graph: bool, io_dtype: str) -> tuple[str, str]:
    """(layout, dtype) of the graph input: camera frames (preprocessing in the graph) are NHWC uint8;
    otherwise the spec's layout in the io dtype. Shared by the builder, the check and the runtime."""
    if preprocess_in_graph:
        return "NHWC", "uint8"
    return spec.input.layout, io_dtype


def expected_io(spec, options: dict) -> tuple[tuple, tuple]:
    """((name, dtype, shape), (name, dtype, shape)) of the graph input and output that `spec` and the
    parsed export options imply; symbolic dims are their names ("batch", "height", "width", "tokens")."""
    batch = "batch" if options["batch"] is None else options["batch"]
    fixed = tuple(options["sizes"][0]) if options["sizes"] is not None and len(options["sizes"]) == 1 else None
    h, w = fixed or ("height", "width")
    c = spec.in_channels
    layout, in_dtype = graph_input(spec, options["preprocess_in_graph"], options["io_dtype"])
    nchw = layout == "NCHW"
    tokens = spec.num_tokens(fixed) if fixed else "tokens"
    return (("images", in_dtype, [batch, c, h, w] if nchw else [batch, h, w, c]),
            ("z0", options["io_dtype"], [batch, tokens, spec.embed_dim]))


def check_io(source, expected: tuple[tuple, tuple], inputs: list[tuple], outputs: list[tuple]) -> None:
    """ExportError naming `source` unless the graph's (name, dtype, shape) inputs and outputs are the
    ones the stored spec and options imply: the spec is only trusted when the graph agrees with it."""
    for what, want, got in (("input", expected[0], inputs), ("output", expected[1], outputs)):
        if [tuple(g) for g in got] != [(want[0], want[1], list(want[2]))]:
            shown = ", ".join(f"{n} {d} {list(s)}" for n, d, s in got) or "none"
            raise ExportError(f"{source}: the graph's {what} ({shown}) is not what vitstem.spec and "
                              f"vitstem.export_options imply ({want[0]} {want[1]} {list(want[2])})")
