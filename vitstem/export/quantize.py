"""int8 precision: ONNX Runtime's static QDQ quantization of the patch projection, calibrated on images.

Only the projection (Conv or MatMul) is quantized (per-channel 8-bit weights, uint8 activations); the table Add and
the LayerNorm stay in float32. Weights are uint8 (asymmetric), not int8: ONNX Runtime's u8*s8 kernel on x86 CPUs
without VNNI (AVX2-only hosts, e.g. many AMD EPYC) sums pairs of products in saturating int16 (vpmaddubsw), and
255 * 127 * 2 overflows it: measured on an AVX2-only EPYC, a ViT-S/16 stem was off by 22 % of max|z0| with int8
weights and 1.4 % with uint8 weights. The u8*u8 kernel widens before it adds, so it is exact on every x86 host.
With preprocessing folded into the kernel the MatMul sees raw pixels, so 0..255 calibrates to a scale of exactly
1: the activation quantization of pixels is lossless; for uint8 frames it is pinned there and then dropped
(`uint8_casts`, `drop_lossless_quantize`).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from ..errors import ExportError
from ..spec import Spec
from ..spec.vocabulary import INPUT_NAME, Layout
from .options import ExportOptions

CALIBRATION_SEED = 0
CALIBRATION_IMAGES = 8


def synthetic_images(spec: Spec, opts: ExportOptions, layout: Layout, dtype: str, count: int = CALIBRATION_IMAGES,
                     seed: int = CALIBRATION_SEED) -> np.ndarray:
    """Seeded calibration images at the first exported size: pixels 0..255, or N(0, 1) without preprocessing."""
    h, w = opts.sizes[0] if opts.sizes else spec.image_size
    shape = Layout(layout).shape(count, spec.in_channels, h, w)
    rng = np.random.default_rng(seed)
    if spec.input.preprocess is not None:
        return rng.integers(0, 256, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def static_chunks(images: np.ndarray, batch: int) -> list[np.ndarray]:
    """`images` in runs of exactly `batch` (what a static-batch graph takes), the last padded by repeating
    its final image: repeats change neither a MinMax calibration range nor the rows the caller keeps."""
    count = -(-len(images) // batch)
    padded = np.concatenate([images, np.repeat(images[-1:], count * batch - len(images), axis=0)])
    return [padded[i * batch:(i + 1) * batch] for i in range(count)]


def quantize_int8(model, calibration: np.ndarray, *, op_types=("MatMul", "Conv"), const_weights_only: bool = False,
                  exclude=(), batch: int | None = None, float_matmul_output: bool = False):
    """The QDQ-quantized ModelProto, calibrated (MinMax) on `calibration`, one image per run (or runs of
    `batch`, the graph's static batch). const_weights_only: leave MatMuls of two activations (attention's
    scores and mixing) in float; exclude: names of nodes left in float. float_matmul_output: no Q/DQ pair
    after a MatMul, so its int32 sums are scaled straight to float (ORT fuses MatMulIntegerToFloat) instead of
    being rounded to uint8 again: for the stem, half the error at the same speed (benchmarks/projections.py).
    A Conv keeps its output pair: without it ORT runs ConvInteger + casts, measured 2x slower.

    Bytes cast to float (uint8 camera frames, which the folded kernel multiplies raw) are quantized with scale
    1 and zero point 0 whatever the calibration: lossless for every frame (`uint8_casts`), where a range
    calibrated on darker images would clip brighter ones; `drop_lossless_quantize` then removes the pair."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            runs = [image[None] for image in calibration] if batch is None else static_chunks(calibration, batch)
            self._batches = iter([{INPUT_NAME: run} for run in runs])

        def get_next(self):
            return next(self._batches, None)

    extra = {}
    if const_weights_only:
        extra["MatMulConstBOnly"] = True
    if float_matmul_output:
        extra["OpTypesToExcludeOutputQuantization"] = ["MatMul"]
    if casts := uint8_casts(model):
        identity = {"scale": np.array(1, np.float32), "zero_point": np.array(0, np.uint8)}
        extra["TensorQuantOverrides"] = {name: [identity] for name in casts}
    with tempfile.TemporaryDirectory(prefix="vitstem-int8-") as tmp:
        src, dst = Path(tmp, "fp32.onnx"), Path(tmp, "int8.onnx")
        onnx.save_model(model, src)
        logging.disable(logging.WARNING)  # its advice to run shape pre-processing does not apply here
        try:
            quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=list(op_types),
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QUInt8,
                            calibrate_method=CalibrationMethod.MinMax,
                            nodes_to_exclude=list(exclude),
                            extra_options=extra or None)
        except Exception as exc:  # onnxruntime raises plain exceptions for calibration data it cannot use
            raise ExportError(f"int8 quantization failed: {' '.join(str(exc).split())}") from None
        finally:
            logging.disable(logging.NOTSET)
        return drop_lossless_quantize(quantize_before_pad(onnx.load_model(dst)))


def uint8_casts(model) -> list[str]:
    """Names of the float tensors that are Casts of uint8 tensors: their values are the integers 0..255."""
    from onnx import TensorProto

    types = _elem_types(model)
    return [n.output[0] for n in model.graph.node if n.op_type == "Cast" and types.get(n.input[0]) == TensorProto.UINT8
            and next(a.i for a in n.attribute if a.name == "to") in (TensorProto.FLOAT, TensorProto.FLOAT16)]


def quantize_before_pad(model):
    """`model` with each per-tensor QuantizeLinear of a zero Pad's output moved in front of the Pad, which
    then pads with the zero point: Q(Pad(x, 0)) = Pad(Q(x), Q(0)) and Q(0) is the zero point exactly, so the
    same bytes, but the stem's prefix rows are padded as uint8, a quarter of a float32 copy
    (`vitstem.export.build._prefix_before_product`)."""
    graph = model.graph
    constants = _Constants(graph)
    nodes = list(graph.node)  # the messages themselves, reordered here and written back once
    moved = False
    for q in [n for n in nodes if n.op_type == "QuantizeLinear" and len(n.input) == 3]:
        pad = _zero_pad_feeding(nodes, q, constants)
        if pad is None:
            continue
        # x -> Pad -> Q  becomes  x -> Q -> Pad(value: Q's zero point)
        q.input[0], q.output[0], pad.output[0] = pad.input[0], pad.input[0] + "_quantized", q.output[0]
        pad.input[0] = q.output[0]
        del pad.input[2:]
        pad.input.append(q.input[2])
        nodes.remove(q)
        nodes.insert(nodes.index(pad), q)
        moved = True
    if moved:
        _replace_nodes(graph, nodes)
    return model


def drop_lossless_quantize(model):
    """`model` without QuantizeLinear(Cast(x)) where x is uint8, the scale exactly 1 and the zero point uint8 0:
    that pair gives x back byte for byte (round(x / 1) + 0 of an integer 0..255), so its readers take x. uint8
    camera frames (pinned to that scale by `uint8_casts`) then go from the patchify to the integer product as
    the bytes they came in as."""
    from onnx import TensorProto

    graph = model.graph
    constants = _Constants(graph)
    types = _elem_types(model)
    producers = {out: n for n in graph.node for out in n.output}
    dropped, renamed = set(), {}
    for q in [n for n in graph.node if n.op_type == "QuantizeLinear" and len(n.input) == 3]:
        cast, scale, zero_point = producers.get(q.input[0]), constants.get(q.input[1]), constants.get(q.input[2])
        if (cast is None or cast.op_type != "Cast" or types.get(cast.input[0]) != TensorProto.UINT8
                or scale is None or zero_point is None or zero_point.dtype != np.uint8
                or not (np.all(scale == 1) and np.all(zero_point == 0))):
            continue
        dropped.add(id(q))
        renamed[q.output[0]] = cast.input[0]
    if not dropped:
        return model
    kept = [n for n in graph.node if id(n) not in dropped]
    for n in kept:
        n.input[:] = [renamed.get(name, name) for name in n.input]
    read = {name for n in kept for name in n.input} | {o.name for o in graph.output}
    _replace_nodes(graph, [n for n in kept if not (n.op_type == "Cast" and n.output[0] not in read)])  # unread casts
    return model


class _Constants:
    """The graph's initializers as arrays, each decoded when first asked for: the rewrites read a few scales
    and zero points, and a whole model's weights would otherwise be copied into NumPy for nothing."""

    def __init__(self, graph):
        self._tensors = {t.name: t for t in graph.initializer}
        self._arrays: dict = {}

    def get(self, name: str, default=None):
        if name not in self._tensors:
            return default
        if name not in self._arrays:
            from onnx import numpy_helper

            self._arrays[name] = numpy_helper.to_array(self._tensors[name])
        return self._arrays[name]


def _elem_types(model) -> dict[str, int]:
    """Tensor name -> ONNX element type, for the graph's inputs and every inferred intermediate.

    Inferred on a copy whose initializers are typed inputs without data: a whole model's weights (hundreds of
    MB) would otherwise be serialized for each inference: 2.3 s for 340 MB, 0.02 s without (AMD EPYC Zen 3)."""
    from onnx import helper, shape_inference

    graph = model.graph
    weights = [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in graph.initializer]
    light = helper.make_model(helper.make_graph(graph.node, graph.name, [*graph.input, *weights], graph.output),
                              opset_imports=list(model.opset_import), ir_version=model.ir_version)
    inferred = shape_inference.infer_shapes(light).graph
    return {v.name: v.type.tensor_type.elem_type for v in [*graph.input, *inferred.value_info]}


def _replace_nodes(graph, nodes) -> None:
    """Write `nodes` (messages of `graph`, reordered or fewer) back as its node list, and drop the
    value_info of tensors no node makes any more."""
    rebuilt = [type(n).FromString(n.SerializeToString()) for n in nodes]  # copies: the originals are cleared
    del graph.node[:]
    graph.node.extend(rebuilt)
    made = {out for n in rebuilt for out in n.output}
    kept = [v for v in graph.value_info if v.name in made]
    del graph.value_info[:]
    graph.value_info.extend(kept)


def _zero_pad_feeding(nodes, q, constants):
    """The Pad whose output only `q` reads, when q can move in front of it: q per-tensor (scalar scale and
    zero point), the Pad in constant mode padding zeros, without an axes input; else None."""
    if any(np.ndim(constants.get(name, np.zeros(1))) != 0 for name in q.input[1:]):
        return None
    pad = next((n for n in nodes if q.input[0] in n.output), None)
    if pad is None or pad.op_type != "Pad" or sum(name == q.input[0] for n in nodes for name in n.input) != 1:
        return None
    mode = next((a.s for a in pad.attribute if a.name == "mode"), b"constant")
    value = pad.input[2] if len(pad.input) > 2 else ""
    if mode != b"constant" or len(pad.input) > 3 or (value and np.any(constants.get(value, 1) != 0)):
        return None
    return pad


def calibration_digest(images: np.ndarray) -> str:
    """'sha256:<hex>' of the calibration batch as the graph takes it (dtype, shape and bytes)."""
    import hashlib

    h = hashlib.sha256(f"{images.dtype.str}{images.shape}".encode())
    h.update(np.ascontiguousarray(images).tobytes())
    return "sha256:" + h.hexdigest()


def check_calibration(images, expected_dtype: str, layout: Layout, spec: Spec, sizes=None) -> np.ndarray:
    """User calibration images as an array in the model's input format; ExportError otherwise. They are held
    to what the graph takes, as the runtime holds images: the input rules (rank, layout, channels, dtype,
    finiteness; vitstem.spec.inputs), one of `sizes` (the exported (H, W) sizes; None: any), and values the
    input dtype can hold."""
    from ..errors import InputError
    from ..spec.inputs import check_images

    layout = Layout(layout)
    graph_spec = spec if layout == spec.input.layout else spec.replace(
        input={**spec.to_dict()["input"], "layout": layout.value})
    try:
        x, hw = check_images(graph_spec, images)
    except InputError as exc:
        raise ExportError(f"calibration {exc}") from None
    if expected_dtype == "uint8" and x.dtype != np.uint8:
        raise ExportError(f"calibration images have dtype {x.dtype}; this model takes uint8 frames")
    if sizes is not None and tuple(hw) not in [tuple(s) for s in sizes]:
        accepted = ", ".join(f"{h}x{w}" for h, w in sizes)
        raise ExportError(f"calibration images have shape {x.shape}: size {hw[0]}x{hw[1]} is not one the model is "
                          f"exported for ({accepted})")
    converted = x.astype(expected_dtype)
    if converted.dtype.kind == "f" and not np.isfinite(converted).all():
        raise ExportError(f"calibration images have values beyond {expected_dtype}'s range (max |x| = "
                          f"{float(np.abs(x).max()):.6g}), which the model's {expected_dtype} input turns into inf")
    return converted
