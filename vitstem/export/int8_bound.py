"""After int8 quantization: measure the quantized graph against the reference and refuse a miss.

Calibration on degenerate images (all one value, a narrow range) gives activation scales that clip
ordinary images. So the quantized graph is run with ONNX Runtime on the seeded synthetic images (and
on the calibration images) and compared with the reference's z0: the documented int8 bound is
|d| <= INT8_RELATIVE * max|z| for every element and per-token cosine >= INT8_MIN_COSINE (on the synthetic
images only the cosine when the user calibrated on their own images: their outliers may clip).
"""

from __future__ import annotations

import numpy as np

from ..errors import ExportError
from ..spec.vocabulary import INPUT_NAME, INT8_MIN_COSINE, INT8_RELATIVE, OUTPUT_NAME, Layout


def int8_error(z: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(max |d| / max |reference|, minimum per-token cosine)."""
    z, ref = z.astype(np.float64), reference.astype(np.float64)
    scale = np.abs(ref).max() or 1.0
    norms = np.linalg.norm(z, axis=-1) * np.linalg.norm(ref, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.where(norms > 0, (z * ref).sum(-1) / norms, 1.0)
    return float(np.abs(z - ref).max() / scale), float(np.nan_to_num(cosine, nan=-1.0).min())


def check_int8(model, spec, weights, batches: list[tuple[str, np.ndarray]], layout: Layout,
               batch: int | None = None) -> None:
    """ExportError if the quantized `model` misses the int8 bound on any (name, images) batch
    (images in the graph's input format and `layout`). With user calibration images, they must meet the
    whole bound and the synthetic images the cosine (a calibration range that collapsed, e.g. images all
    one value, fails it); otherwise the synthetic images must meet the whole bound. `batch`: the graph's
    static batch (None: dynamic), the images are fed in runs of that many."""
    user_calibration = any(name == "calibration" for name, _ in batches)
    import onnxruntime as ort

    from ..backends.numpy import forward
    from .quantize import static_chunks

    so = ort.SessionOptions()
    so.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"])
    for name, images in batches:
        runs = [images] if batch is None else static_chunks(images, batch)
        z = np.concatenate([session.run([OUTPUT_NAME], {INPUT_NAME: run})[0] for run in runs])[:len(images)]
        x = images
        if layout != spec.input.layout:  # uint8 NHWC camera frames for an NCHW spec
            x = images.transpose(Layout(layout).to_nchw)
        reference = forward(spec, weights, x, profile="exact")
        relative, cosine = int8_error(z, reference)
        if name == "synthetic" and user_calibration:
            relative = 0.0  # only the direction is held on images unlike the user's: clipped outliers are expected
        missed = ([f"max |d| = {relative:.3g} max|z| > {INT8_RELATIVE} max|z|"] if not relative <= INT8_RELATIVE else []) + \
                 ([f"min token cosine {cosine:.4f} < {INT8_MIN_COSINE}"] if not cosine >= INT8_MIN_COSINE else [])
        if missed:
            raise ExportError(f"int8: the quantized model misses the documented int8 bound on the {name} images "
                              f"({'; '.join(missed)}); calibrate on images like the ones the model will "
                              "see (degenerate calibration images clip), or export fp16/fp32")
