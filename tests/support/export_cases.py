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


def assert_exact(z: np.ndarray, spec, weights, x) -> None:
    """z equals the reference's exact z0 bit for bit (the exact profile sums in one fixed order,
    vitstem.spec.exact, which the exported graph reproduces with Scan loops)."""
    from support.reference import assert_matches_reference

    assert_matches_reference(z, spec, weights, x, profile="exact")
