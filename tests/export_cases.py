"""Shared helpers of the export and runtime tests: images, small specs, running a model in ORT."""

from __future__ import annotations

import numpy as np

import vitstem
from vitstem.spec import init_weights, load_spec

TINY = "vitstem_tiny_test"


def small_spec(**changes) -> vitstem.Spec:
    """A small spec with preprocessing (pixels in), a class token and a learned table; `changes` on top."""
    doc = {"spec_version": 1, "name": "small_export_test", "image_size": [16, 24], "in_channels": 3,
           "patch_size": [4, 4], "embed_dim": 16, "prefix": {"class_token": True, "register_tokens": 1},
           "position_embedding": {"kind": "learned", "covers_prefix": True},
           "input": {"layout": "NCHW", "preprocess": {"scale": 1 / 255, "mean": [0.485, 0.456, 0.406],
                                                      "std": [0.229, 0.224, 0.225]}},
           "resample": {"policy": "timm"}, "dynamic_image_size": True}
    doc.update(changes)
    return load_spec(doc)


def spec_and_weights(spec, seed: int = 0):
    spec = load_spec(spec)
    return spec, init_weights(spec, seed=seed)


def images(spec, batch: int = 2, hw=None, seed: int = 1) -> np.ndarray:
    """Pixels 0..255 (as float32) for specs that preprocess, N(0, 1) otherwise, in the spec's layout."""
    rng = np.random.default_rng(seed)
    shape = spec.input_shape(batch, hw)
    if spec.input.preprocess is not None:
        return rng.integers(0, 256, size=shape).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


def run_ort(model, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    data = model if isinstance(model, bytes) else model.SerializeToString()
    session = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]  # ours: images -> z0; torch's names differ


def run_reference_evaluator(model, x: np.ndarray) -> np.ndarray:
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(model).run(["z0"], {"images": x})[0]


def cosine_per_token(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def exact_float64(spec, weights, x) -> np.ndarray:
    """The reference's exact z0 before its final rounding to float32 (its own functions, in float64)."""
    from vitstem.backends.numpy import stem
    from vitstem.spec.inputs import check_images
    from vitstem.spec.position import position_table

    f64 = np.float64
    x, hw = check_images(spec, x)
    x = stem.preprocess(spec, stem.to_nchw(spec, x), f64)
    z = stem.add_position(spec, stem.prefix_tokens(spec, weights, x.shape[0], f64),
                          stem.embed_patches(spec, weights, stem.patchify(x, spec.patch_size), f64),
                          position_table(spec, weights, spec.patch_grid(hw)), f64)
    if spec.pre_norm is not None:
        z = stem.layer_norm(z, weights["norm_pre.weight"].astype(f64), weights["norm_pre.bias"].astype(f64),
                            spec.pre_norm.eps)
    return z


def assert_exact(z: np.ndarray, spec, weights, x) -> None:
    """z equals the reference's exact z0 bit for bit, except where the float64 value sits so close to
    the midpoint between two float32 numbers that two float64 summation orders can round it apart.

    Two float64 GEMMs (OpenBLAS in NumPy, MLAS/Eigen in ONNX Runtime) sum in different orders; their
    results differ by ~1e-16 relative, which flips the float32 rounding only within ~1e-7 ulp of a
    midpoint: about 1 element in 10^5-10^6, by one ulp. Anything else is a real difference.
    """
    from vitstem import forward

    reference = forward(spec, weights, x, profile="exact")
    assert z.shape == reference.shape and z.dtype == reference.dtype
    differ = z != reference
    if not differ.any():
        return
    z64 = exact_float64(spec, weights, x)[differ]
    a, b = z[differ].astype(np.float64), reference[differ].astype(np.float64)
    ulp = np.abs(np.spacing(reference[differ])).astype(np.float64)
    assert np.all(np.abs(a - b) <= ulp * 1.0001), "exact differs by more than one float32 ulp"
    midpoint_distance = np.abs(z64 - (a + b) / 2) / ulp
    assert np.all(midpoint_distance < 1e-5), f"not a rounding tie: {midpoint_distance.max():.3g} ulp from the midpoint"
    assert differ.sum() <= max(2, differ.size // 20_000), f"{differ.sum()} of {differ.size} elements differ"
