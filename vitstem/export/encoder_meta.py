"""`vitstem.encoder`: what follows the stem in a whole-model file (onnx-free: the runtime reads it too).

A whole model is a vitstem stem joined to an encoder (vitstem.deploy): the file keeps the stem's
metadata (spec, digests, export options) and adds `vitstem.encoder`, a JSON object:

    peer      the library the encoder came from ("timm", "transformers", or "onnx" for `vitstem compose`)
    class     the peer's model class (or the encoder graph's name)
    version   the peer's version (or the encoder file's producer)
    digest    'sha256:<hex>' of the encoder's ONNX bytes before it was joined (as torch.onnx wrote them,
              or the file given to `vitstem compose`)
    input     the encoder input that z0 feeds
    outputs   the whole model's output names, in the peer's order

`vitstem.graph_digest` then covers the whole joined graph.
"""

from __future__ import annotations

import json

from ..errors import ExportError
from .metadata import json_object

ENCODER_KEYS = ("class", "digest", "input", "outputs", "peer", "version")


def encoder_json(info: dict) -> str:
    return json.dumps({k: info[k] for k in ENCODER_KEYS}, sort_keys=True, separators=(",", ":"))


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
    if [tuple(g) for g in inputs] != [(expected_input[0], expected_input[1], list(expected_input[2]))]:
        shown = ", ".join(f"{n} {d} {list(s)}" for n, d, s in inputs) or "none"
        raise ExportError(f"{source}: the graph's input ({shown}) is not what vitstem.spec and vitstem.export_options "
                          f"imply ({expected_input[0]} {expected_input[1]} {list(expected_input[2])})")
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
