"""Provenance: was this .onnx exported from these weights? Export again and compare the bytes.

The graph holds folded constants, so the canonical weights cannot be read back from it, and the
stored vitstem.weights_digest is only a claim (it can be copied from another export). Export is
deterministic (same spec, weights, options and vitstem version -> byte-identical file), so the
proof is to export again from the weights with the stored spec and options and compare.
"""

from __future__ import annotations

from ..errors import ExportError
from ..spec import load_weights
from ..spec.digest import weights_digest
from ..spec.vocabulary import Precision


def _export_arguments(options: dict) -> dict:
    """build_onnx keyword arguments that reproduce the parsed vitstem.export_options."""
    return {"opset": options["opset"], "precision": options["precision"], "profile": options["profile"],
            "batch": "dynamic" if options["batch"] is None else options["batch"],
            "image_size": "dynamic" if options["sizes"] is None else [tuple(s) for s in options["sizes"]],
            "preprocess_in_graph": options["preprocess_in_graph"], "io_dtype": options["io_dtype"],
            "ort_format": options["ort_format"]}


def _calibration(path, meta: dict, calibration):
    """The calibration images to export with (None: synthetic); ExportError if they cannot be the stored ones."""
    stored = meta.get("calibration")
    if stored is None:
        raise ExportError(f"{path}: an int8 model without vitstem.calibration; its provenance cannot be proven")
    if stored == "synthetic":
        return None
    if calibration is None:
        raise ExportError(f"{path}: calibrated on user images ({stored}); pass them with --calibration to prove "
                          "provenance")
    if isinstance(calibration, str):
        from ..npy_files import load_npy

        calibration = load_npy(calibration)
    return calibration


def _reexported(path, meta: dict, spec, options: dict, weights_path, calibration) -> bytes:
    """The .onnx bytes exporting `weights_path` with the stored spec and options gives."""
    from .. import __version__
    from .api import build_onnx, model_bytes

    weights = load_weights(weights_path, spec)
    actual = weights_digest(weights)
    if actual != meta["weights_digest"]:
        raise ExportError(f"{path}: vitstem.weights_digest mismatch: stored {meta['weights_digest']}, "
                          f"{weights_path} has {actual}")
    if meta["version"] != __version__:
        raise ExportError(f"{path}: exported by vitstem {meta['version']}, this is {__version__}: provenance is "
                          "proven by exporting again with the same version")
    kwargs = _export_arguments(options)
    if options["precision"] == Precision.INT8:
        kwargs["calibration"] = _calibration(path, meta, calibration)
    return model_bytes(build_onnx(spec, weights, **kwargs))


def _not_from(path, weights_path) -> ExportError:
    return ExportError(f"{path}: not exported from {weights_path}: exporting those weights with the stored spec and "
                       "options gives another graph (its vitstem.weights_digest was copied or the graph was changed)")


def check_provenance(path, data: bytes, meta: dict, spec, options: dict, weights_path, calibration=None) -> None:
    """ExportError unless exporting `weights_path` with the stored spec and options gives `data` exactly
    (a whole model: gives the stem part of its graph exactly, see `_stem_part`)."""
    again = _reexported(path, meta, spec, options, weights_path, calibration)
    if "encoder" in meta:
        if _stem_part(again, data) is False:
            raise _not_from(path, weights_path)
    elif again != data:
        raise _not_from(path, weights_path)


def _stem_part(stem_bytes: bytes, whole_bytes: bytes) -> bool:
    """Whether the whole model's graph begins with the stem's graph (its input, nodes and initializers, as
    vitstem.deploy.join puts them, after bringing the stem to the whole model's opset as join does): the
    encoder is another peer's, so only the stem part can be proven from the weights."""
    import onnx

    stem, whole = onnx.load_model_from_string(stem_bytes), onnx.load_model_from_string(whole_bytes)
    opset = next((o.version for o in whole.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset != next((o.version for o in stem.opset_import if o.domain in ("", "ai.onnx")), None):
        from onnx import version_converter

        stem = version_converter.convert_version(stem, opset)

    def same(ours, theirs) -> bool:
        return len(theirs) >= len(ours) and all(
            a.SerializeToString(deterministic=True) == b.SerializeToString(deterministic=True) for a, b in zip(ours, theirs))

    g, w = stem.graph, whole.graph
    return (same(g.input, w.input) and len(g.input) == len(w.input) and same(g.node, w.node)
            and same(g.initializer, w.initializer))


def check_ort_provenance(path, meta: dict, spec, options: dict, weights_path, calibration=None) -> None:
    """The same for an .ort file: its vitstem.onnx_digest must be the digest of the re-exported .onnx."""
    from ..runtime.integrity import sealed_digest

    again = _reexported(path, meta, spec, options, weights_path, calibration)
    if meta.get("onnx_digest") != sealed_digest(again):
        raise _not_from(path, weights_path)
