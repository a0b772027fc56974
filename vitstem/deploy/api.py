"""`export_model`: a peer ViT (timm, transformers, keras-hub) -> one ONNX file of the whole model.

    stem     the converter's spec + weights, exported by vitstem's own exporter (vitstem.export):
             the position table is resampled as the peer does, in ONNX, at any size
    encoder  the peer's own forward from z0 on (families.py), traced by torch.onnx with a dynamic
             token count (encoder.py); with rope at other sizes it also takes the patch grid (rope.py);
             keras-hub: its functional graph from z0 on, exported by keras's own ONNX exporter (keras_hub.py)
    join     one graph, one opset, the stem's metadata plus vitstem.encoder (join.py)
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
from pathlib import Path

from ..errors import ExportError
from ..export import metadata
from ..spec.exported import read_metadata
from ..spec.vocabulary import Precision, graph_input
from .encoder import encoder_module, export_encoder, stem_removed
from .families import family_of, peer_version, with_preprocess
from .join import PREFIX, check_serialized, checked, join
from .rope import GRID_INPUT, GridShape

@contextlib.contextmanager
def _eval_mode(model):
    """A torch peer in eval mode (dropouts off, as deployed) and no autograd for the block; its training flag
    restored after."""
    import torch

    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was)


def _check_size_option(model, spec, image_size):
    if image_size != "fixed" and not spec.dynamic_image_size:
        raise ExportError(f"image_size {image_size!r}: this {type(model).__name__} only takes "
                          f"{spec.image_size[0]}x{spec.image_size[1]} images in its own forward; use image_size='fixed' "
                          "(timm: create the model with dynamic_img_size=True to accept other sizes; keras-hub "
                          "backbones run at the image_shape they are built with)")


def build_model(model, **options):
    """The whole-model ModelProto `export_model` writes (same arguments, no path), checked."""
    return checked(_whole(model, **options))


def _whole(model, *, image_size="fixed", precision="fp32", preprocess_in_graph=False, batch="dynamic",
           opset=None, preprocess="auto", calibration=None, exporter="auto", graph_digest=True):
    """The joined (and for int8 quantized) ModelProto, not yet checked; graph_digest=False: see `join`."""
    from ..export.api import build_onnx
    from ..export.options import resolve_options
    from . import keras_hub

    if precision not in Precision.choices():
        raise ExportError(f"precision must be one of {', '.join(Precision.choices())}, got {precision!r}")
    keras = keras_hub.is_keras(model)
    if keras:
        keras_hub.check_exportable(model, precision)
    family = None if keras else family_of(model)
    with contextlib.nullcontext() if keras else _eval_mode(model):
        if keras:
            spec, weights = keras_hub.convert(model, preprocess)
        else:
            spec, weights = family.convert(model, image_size != "fixed")
            spec = with_preprocess(spec, preprocess)
        _check_size_option(model, spec, image_size)
        stem_precision = Precision.FP32.value if precision == Precision.INT8 else precision
        opts = resolve_options(spec, opset=opset, precision=stem_precision, batch=batch, image_size=image_size,
                               preprocess_in_graph=preprocess_in_graph)
        stem = build_onnx(spec, weights, opset=opset, precision=stem_precision, batch=batch, image_size=image_size,
                          preprocess_in_graph=preprocess_in_graph)
        proto, info, grid_input = ((*keras_hub.export_encoder(model, spec, opts.opset), None) if keras
                                   else _torch_encoder(model, family, spec, opts, precision, exporter, image_size))
    whole = join(stem, proto, info, grid_input=grid_input, graph_digest=graph_digest)
    if precision == Precision.INT8:
        whole = _int8(whole, spec, opts, calibration)
    return whole


def _torch_encoder(model, family, spec, opts, precision, exporter, image_size):
    """(ModelProto, info, grid input name or None) of a torch peer's encoder: its own forward from z0 on,
    traced by torch.onnx; rope models at other sizes also take the patch grid (rope.py)."""
    import torch

    half = precision == Precision.FP16
    peer = copy.deepcopy(model).half() if half else model  # the user's model is left as it was
    grid = GridShape() if family.needs_grid(model, image_size != "fixed") else None
    with torch.no_grad(), stem_removed(family.stem_parts(peer, spec, grid)):
        encoder = encoder_module(peer, family, spec, torch.float16 if half else None, grid)
        probe = torch.zeros(1, spec.num_prefix_tokens + 1, spec.embed_dim, dtype=torch.float16 if half else None)
        names = [name for name, _ in family.forward(peer, probe, spec)]
        proto, digest = export_encoder(encoder, names, spec, opts.opset, exporter, sizes=opts.sizes)
    info = {"peer": family.peer, "class": type(model).__name__, "version": peer_version(family), "digest": digest}
    return proto, info, GRID_INPUT if grid else None


def _int8(whole, spec, opts, calibration):
    """ONNX Runtime's static QDQ quantization of the encoder's weight MatMuls (attention's activation-activation
    MatMuls and the stem stay float32), calibrated on
    `calibration` or the stem's seeded synthetic images; metadata re-attached with precision int8."""
    import onnx

    from ..export.quantize import check_calibration, quantize_int8, synthetic_images

    meta = read_metadata(whole.metadata_props)
    layout, dtype = graph_input(spec, opts.preprocess_in_graph, opts.io_dtype)
    images = (synthetic_images(spec, opts, layout, dtype) if calibration is None
              else check_calibration(calibration, dtype, layout, spec, opts.sizes))
    # The stem stays float32 (about 1 % of a ViT's work; with uint8 weights quantizing it too measured the
    # same error on small random transformers ViTs, 4.7-7.7 % vs 4.8-8.1 % of max|output|).
    stem_nodes = [n.name for n in whole.graph.node if not n.name.startswith(PREFIX)]
    quantized = quantize_int8(whole, images, op_types=("MatMul",), const_weights_only=True, exclude=stem_nodes)
    quantized.ir_version = max(whole.ir_version, onnx.helper.find_min_ir_version_for(list(quantized.opset_import)))
    options = json.loads(meta["export_options"])
    options["precision"] = Precision.INT8.value
    meta["export_options"] = json.dumps(options, sort_keys=True, separators=(",", ":"))
    if meta["graph_digest"] != metadata.PENDING_GRAPH_DIGEST:  # pending: the writer takes it from the bytes
        meta["graph_digest"] = metadata.graph_digest(quantized.graph)
    metadata.attach(quantized, meta)
    quantized.producer_name, quantized.producer_version = whole.producer_name, whole.producer_version
    return quantized


def export_model(model, path: str | os.PathLike, *, image_size="fixed", precision: str = "fp32",
                 preprocess_in_graph: bool = False, batch="dynamic", opset: int | None = None,
                 preprocess="auto", calibration=None, exporter: str = "auto") -> Path:
    """Write a timm, transformers or keras-hub ViT as one ONNX file: input `images` (the spec's layout; uint8 NHWC
    frames with preprocess_in_graph), outputs named and ordered as the peer's forward returns them.

    image_size: "fixed", a list of (H, W), or "dynamic" (any multiple of the patch), as `vitstem export`.
    precision: fp32, fp16 (stem and encoder in half, float32 in and out), int8 (static QDQ, calibrated
    on `calibration` images or seeded synthetic pixels). preprocess: "auto" (timm: the pretrained_cfg's
    mean/std over pixels / 255; transformers: none, the input is the processor's output), None, a mapping
    {scale, mean, std}, or a transformers image processor (keras-hub: an ImageConverter). Returns the path written.
    """
    from ..export.api import resealed_bytes
    from ..files import atomic_write_bytes
    from ..outputs import target

    path = Path(path)
    target(path)  # refused before the (slow) export, not after
    whole = _whole(model, image_size=image_size, precision=precision, preprocess_in_graph=preprocess_in_graph,
                   batch=batch, opset=opset, preprocess=preprocess, calibration=calibration, exporter=exporter,
                   graph_digest=False)
    atomic_write_bytes(path, check_serialized(resealed_bytes(whole)))
    return path
