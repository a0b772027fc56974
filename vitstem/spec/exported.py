"""What an exported model file promises, read back without onnx: its `vitstem.*` metadata and the graph
inputs and outputs the stored spec and options imply. The edge runtime, `vitstem check` and the
whole-model joiner read files through this module; vitstem.export.metadata writes them.

    vitstem.spec            the spec as canonical JSON (the edge runtime reads it back)
    vitstem.spec_digest     Spec.digest() of that JSON
    vitstem.weights_digest  vitstem.spec.digest.weights_digest of the canonical weights (provenance:
                            the graph holds folded constants, so compare it with the weights file)
    vitstem.graph_digest    SHA-256 of the graph as stored (nodes and initializers): integrity
    vitstem.export_options  the resolved ExportOptions as JSON
    vitstem.version         the vitstem version that wrote the file
    vitstem.encoder         whole models only (vitstem.deploy): what follows the stem, see below
    vitstem.calibration     int8 only: "synthetic", or the sha256 of the calibration images (provenance)
    vitstem.onnx_digest     .ort files only: vitstem.digest of the .onnx it was converted from
    vitstem.digest          SHA-256 of the whole file with this value zeroed: integrity of everything
                            above (vitstem.runtime.integrity; checked by the runtime without onnx)

A whole model (a stem joined to an encoder) adds vitstem.encoder, a JSON object: peer (the library the
encoder came from: "timm", "transformers", "keras_hub", or "onnx" for `vitstem compose`), class (the peer's model
class or the encoder graph's name), version (the peer's version or the encoder file's producer), digest
('sha256:<hex>' of the encoder's ONNX bytes before it was joined), input (the encoder input z0 feeds),
outputs (the whole model's output names, in the peer's order). vitstem.graph_digest then covers the
whole joined graph.
"""

from __future__ import annotations

import json

from ..errors import ExportError
from .vocabulary import INPUT_NAME, IO_DTYPES, OUTPUT_NAME, Precision, Profile, graph_input

PREFIX = "vitstem."
MIN_OPSET = 13
ENCODER_KEYS = ("class", "digest", "input", "outputs", "peer", "version")
_BOOLS = ("dynamic_size", "preprocess_in_graph", "ort_format")
_OPTION_KEYS = {"opset", "precision", "profile", "batch", "sizes", "io_dtype", *_BOOLS}


def read_metadata(props, source="model") -> dict[str, str]:
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

    o = json_object(text, source, "export_options", _OPTION_KEYS)
    if not _positive_int(o["opset"]) or o["opset"] < MIN_OPSET:
        raise bad(f"opset {o['opset']!r} is not an int >= {MIN_OPSET}")
    for key, allowed in (("precision", Precision.choices()), ("profile", Profile.choices()), ("io_dtype", IO_DTYPES)):
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
    return o


def expected_io(spec, options: dict) -> tuple[tuple, tuple]:
    """((name, dtype, shape), (name, dtype, shape)) of the graph input and output that `spec` and the
    export options (parsed, or an ExportOptions as a dict) imply; symbolic dims are their names
    ("batch", "height", "width", "tokens"). The exporter builds its graph's inputs and outputs from this."""
    batch = "batch" if options["batch"] is None else options["batch"]
    fixed = tuple(options["sizes"][0]) if options["sizes"] is not None and len(options["sizes"]) == 1 else None
    h, w = fixed or ("height", "width")
    layout, in_dtype = graph_input(spec, options["preprocess_in_graph"], options["io_dtype"])
    tokens = spec.num_tokens(fixed) if fixed else "tokens"
    return ((INPUT_NAME, in_dtype, list(layout.shape(batch, spec.in_channels, h, w))),
            (OUTPUT_NAME, options["io_dtype"], [batch, tokens, spec.embed_dim]))


def _check_values(source, what: str, want: tuple, got: list[tuple]) -> None:
    if [tuple(g) for g in got] != [(want[0], want[1], list(want[2]))]:
        shown = ", ".join(f"{n} {d} {list(s)}" for n, d, s in got) or "none"
        raise ExportError(f"{source}: the graph's {what} ({shown}) is not what vitstem.spec and "
                          f"vitstem.export_options imply ({want[0]} {want[1]} {list(want[2])})")


def check_io(source, expected: tuple[tuple, tuple], inputs: list[tuple], outputs: list[tuple]) -> None:
    """ExportError naming `source` unless the graph's (name, dtype, shape) inputs and outputs are the
    ones the stored spec and options imply: the spec is only trusted when the graph agrees with it."""
    _check_values(source, "input", expected[0], inputs)
    _check_values(source, "output", expected[1], outputs)


def parse_encoder(text: str, source) -> dict:
    """vitstem.encoder as a validated dict; ExportError naming `source` otherwise."""
    def bad(what):
        return ExportError(f"{source}: vitstem.encoder {what}")

    info = json_object(text, source, "encoder", ENCODER_KEYS)
    for key in ("class", "digest", "input", "peer", "version"):
        if not isinstance(info[key], str):
            raise bad(f"{key} {info[key]!r} is not a string")
    outputs = info["outputs"]
    if (not isinstance(outputs, list) or not outputs or not all(isinstance(o, str) and o for o in outputs)
            or len(set(outputs)) != len(outputs)):
        raise bad(f"outputs {outputs!r} is not a non-empty list of distinct names")
    return info


def check_whole_io(source, expected_input: tuple, encoder: dict, inputs: list[tuple], outputs: list[tuple]) -> None:
    """ExportError unless the graph takes the input the stored spec and options imply and returns the
    outputs vitstem.encoder names, in that order, each with a leading batch axis (a static one must be the batch)."""
    _check_values(source, "input", expected_input, inputs)
    names = [o[0] for o in outputs]
    if names != encoder["outputs"]:
        raise ExportError(f"{source}: the graph's outputs {names} are not the ones vitstem.encoder names "
                          f"{encoder['outputs']}")
    batch = expected_input[2][0]
    for name, _, shape in outputs:
        first = shape[0] if shape else 0
        if isinstance(first, int) and first != batch:  # a symbolic (str) or unknown (None) axis may be the batch
            raise ExportError(f"{source}: output {name} has shape {list(shape)}; a whole model's outputs "
                              f"start with the batch axis ({batch})")
