"""Join a vitstem stem and an encoder into one ONNX model (onnx only: no torch, no TensorFlow).

The stem's output z0 feeds the encoder's input; every other encoder name gets the prefix
`encoder/` so no node, edge or initializer collides with the stem's. The encoder's outputs keep
their names and order and become the model's outputs. Before joining, the encoder is held to
what the stem produces: rank 3 (batch, tokens, D), the stem's z0 dtype, D equal, a static token
axis only if every image size the stem accepts gives that many tokens, a static batch only if the
stem's batch is that one. An encoder with rope at other sizes (export_model's, rope.py) also takes
the patch grid: the join makes it from the images' shape, so the whole model still takes images alone.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ExportError
from ..export import metadata
from ..spec import load_spec
from ..spec.exported import parse_options, read_metadata
from ..spec.vocabulary import INPUT_NAME, OUTPUT_NAME
from .rope import check_grid_input, grid_source

PREFIX = "encoder/"
PROTOBUF_LIMIT = 2**31 - 1


def _load(path, what):
    import onnx
    from google.protobuf.message import DecodeError

    from ..runtime.integrity import read_bounded

    data = read_bounded(path, what=what + " file")  # a regular file within the limit: a FIFO would block
    try:
        return onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ExportError(f"{path}: cannot read the {what} as ONNX ({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__})") from None


def stem_facts(stem, source="stem") -> tuple:
    """(spec, options, metadata) of a vitstem stem ModelProto; ExportError if it is not one."""
    meta = read_metadata(stem.metadata_props, source)
    if "encoder" in meta:
        raise ExportError(f"{source}: already a whole model (it has vitstem.encoder); join a stem from `vitstem export`")
    if "spec" not in meta or "export_options" not in meta:
        raise ExportError(f"{source}: no vitstem.spec / vitstem.export_options metadata; the stem must come from "
                          "`vitstem export`")
    spec = load_spec(json.loads(meta["spec"]))
    return spec, parse_options(meta["export_options"], source), meta


def _encoder_input(encoder, name, source, grid_input=None):
    initializers = {i.name for i in encoder.graph.initializer} | {grid_input}
    inputs = [v for v in encoder.graph.input if v.name not in initializers]
    if name is None:
        if len(inputs) != 1:
            raise ExportError(f"{source}: the encoder has {len(inputs)} inputs ({', '.join(v.name for v in inputs)}); "
                              "name the one z0 feeds with --encoder-input")
        return inputs[0]
    chosen = [v for v in inputs if v.name == name]
    if not chosen:
        raise ExportError(f"{source}: the encoder has no input {name!r} (inputs: {', '.join(v.name for v in inputs)})")
    if len(inputs) > 1:
        others = ", ".join(v.name for v in inputs if v.name != name)
        raise ExportError(f"{source}: the encoder also takes {others}; a whole model takes only images")
    return chosen[0]


def check_encoder_input(value, spec, options, z0_dtype: int, source) -> None:
    """ExportError unless `value` (a ValueInfoProto) can take the stem's z0."""
    import onnx

    t = value.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    shown = "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"
    want = onnx.helper.tensor_dtype_to_np_dtype(z0_dtype).name
    if not value.type.HasField("tensor_type") or t.elem_type != z0_dtype:
        got = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name if t.elem_type else "unknown"
        raise ExportError(f"{source}: encoder input {value.name} is {got}; the stem's z0 is {want}")
    if not t.HasField("shape") or len(dims) != 3:
        raise ExportError(f"{source}: encoder input {value.name} has shape {shown}; it must take z0 as "
                          f"(batch, tokens, {spec.embed_dim})")
    batch, tokens, d = dims
    if d is not None and d != spec.embed_dim:
        raise ExportError(f"{source}: encoder input {value.name} has shape {shown}: width {d}, but the stem's z0 "
                          f"has D = {spec.embed_dim}")
    if batch is not None and batch != options["batch"]:
        raise ExportError(f"{source}: encoder input {value.name} has a static batch {batch}; export the stem with "
                          f"--batch {batch} or the encoder with a dynamic batch")
    if tokens is not None:
        if options["sizes"] is None:
            raise ExportError(f"{source}: encoder input {value.name} takes exactly {tokens} tokens, but the stem takes "
                              "any image size; export the encoder with a dynamic token axis or the stem at fixed sizes")
        counts = {tuple(s): spec.num_tokens(tuple(s)) for s in options["sizes"]}
        wrong = [f"{h}x{w} gives {n}" for (h, w), n in counts.items() if n != tokens]
        if wrong:
            raise ExportError(f"{source}: encoder input {value.name} takes exactly {tokens} tokens, but the stem's "
                              f"size {'; '.join(wrong)}; export the encoder with a dynamic token axis")


def _same_opset(stem, encoder):
    """Both models at the higher of their default-domain opsets (onnx.version_converter)."""
    from onnx import version_converter

    def default(m):
        return next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), None)

    a, b = default(stem), default(encoder)
    if a is None or b is None or a == b:
        return stem, encoder
    target = max(a, b)
    try:
        if a < target:
            stem = version_converter.convert_version(stem, target)
        else:
            encoder = version_converter.convert_version(encoder, target)
    except Exception as exc:  # the converter raises RuntimeError / ValueError / its own types
        raise ExportError(f"the stem (opset {a}) and the encoder (opset {b}) cannot be brought to one opset "
                          f"({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}); "
                          f"export them at the same opset") from None
    return stem, encoder


def join(stem, encoder, info: dict, *, encoder_input: str | None = None, grid_input: str | None = None,
         source="encoder", graph_digest: bool = True):
    """The joined ModelProto, with the stem's metadata plus vitstem.encoder (`info`: peer, class, version,
    and optionally digest, of the encoder as exported; default: the digest of its graph). `grid_input`:
    the encoder's input whose shape is the patch grid (rope.py), fed from the images' shape. `encoder`'s
    graph is renamed in place (its weights are copied once, into the joined model, not three times).
    graph_digest=False leaves vitstem.graph_digest pending, for a caller that writes the model with
    `resealed_bytes` (which takes it from the bytes written)."""
    import onnx
    from onnx import compose

    spec, options, meta = stem_facts(stem, "stem")
    z0 = next(o for o in stem.graph.output if o.name == OUTPUT_NAME)
    value = _encoder_input(encoder, encoder_input, source, grid_input)
    check_encoder_input(value, spec, options, z0.type.tensor_type.elem_type, source)
    grid_nodes, grid_initializers, feeds = [], [], {value.name: OUTPUT_NAME}
    if grid_input is not None:
        check_grid_input(encoder, grid_input, source)
        grid_nodes, grid_initializers, feeds[grid_input] = grid_source(spec, options)
    digest = info.get("digest") or metadata.graph_digest(encoder.graph)
    stem, encoder = _same_opset(stem, encoder)
    outputs = [o.name for o in encoder.graph.output]
    stem_names = ({n for node in list(stem.graph.node) + grid_nodes for n in node.output}
                  | {i.name for i in stem.graph.initializer} | {INPUT_NAME})
    clash = [o for o in outputs if o in stem_names or o.startswith(PREFIX) or o in feeds]
    if clash:
        raise ExportError(f"{source}: encoder output name(s) {', '.join(clash)} clash with the stem's "
                          f"names; rename them")
    graph = compose.add_prefix_graph(encoder.graph, PREFIX, rename_inputs=False, rename_outputs=False, inplace=True)
    for node in _all_nodes(graph):
        node.input[:] = [feeds.get(n, n) for n in node.input]
    initializers = {i.name for i in graph.initializer}
    opsets = {o.domain or "": o.version for o in list(stem.opset_import) + list(encoder.opset_import)}
    # Filled field by field rather than by onnx.helper.make_graph + make_model, each of which copies every
    # weight again; the serialised bytes are the same.
    model = onnx.ModelProto(ir_version=max(stem.ir_version, encoder.ir_version), producer_name=stem.producer_name,
                            producer_version=stem.producer_version)
    joined = model.graph
    joined.node.extend(list(stem.graph.node) + grid_nodes + list(graph.node))
    joined.name = stem.graph.name
    joined.input.extend(stem.graph.input)
    joined.output.extend(graph.output)
    joined.initializer.extend(list(stem.graph.initializer) + grid_initializers + list(graph.initializer))
    joined.value_info.extend(v for v in graph.value_info if v.name not in initializers)
    model.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in sorted(opsets.items()))
    model.functions.extend(encoder.functions)
    values = dict(meta, encoder=metadata.encoder_json({**info, "digest": digest, "input": value.name, "outputs": outputs}))
    values["graph_digest"] = metadata.graph_digest(model.graph) if graph_digest else metadata.PENDING_GRAPH_DIGEST
    metadata.attach(model, values)
    model.doc_string = f"vitstem stem of {spec.name} joined to {info['peer']} {info['class']}"
    return model


def _all_nodes(graph):
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                yield from _all_nodes(sub)


def checked(model):
    """`model` after onnx's checker (`check_serialized`)."""
    if model.ByteSize() > PROTOBUF_LIMIT:
        raise ExportError(f"the whole model would be {model.ByteSize()} bytes, over protobuf's 2 GiB limit")
    check_serialized(model.SerializeToString())
    return model


def check_serialized(data: bytes) -> bytes:
    """`data`, a whole model's bytes, after onnx's full checker; ExportError over protobuf's 2 GiB limit
    or when the checker refuses it. Checking the bytes that will be written spares a serialisation."""
    import onnx

    if len(data) > PROTOBUF_LIMIT:
        raise ExportError(f"the whole model would be {len(data)} bytes, over protobuf's 2 GiB limit")
    try:
        onnx.checker.check_model(data, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"the joined model fails the onnx checker: {str(exc).strip().splitlines()[0]}") from None
    return data


def compose(stem_path, encoder_path, output, *, encoder_input: str | None = None) -> Path:
    """Write STEM + ENCODER (ONNX files) as one whole model at `output`; returns the path written."""
    from ..export.api import resealed_bytes
    from ..files import atomic_write_bytes
    from ..outputs import check_distinct, target

    output = Path(output)
    check_distinct([output], [stem_path, encoder_path])
    target(output)
    stem = _load(stem_path, "stem")
    encoder = _load(encoder_path, "encoder")
    import hashlib

    info = {"peer": "onnx", "class": encoder.graph.name or Path(encoder_path).stem,
            "digest": "sha256:" + hashlib.sha256(Path(encoder_path).read_bytes()).hexdigest(),
            "version": f"{encoder.producer_name} {encoder.producer_version}".strip() or "unknown"}
    model = join(stem, encoder, info, encoder_input=encoder_input, source=str(encoder_path), graph_digest=False)
    atomic_write_bytes(output, check_serialized(resealed_bytes(model)))
    return output
