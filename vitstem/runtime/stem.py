"""`Stem`: an ONNX Runtime session of an exported stem, with the spec's input checks in front."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import ExportError, InputError, SpecError
from ..spec.exported import check_io, expected_io, parse_options, read_metadata
from ..spec.inputs import cast_images, check_images, check_z0
from ..spec.loading import load_spec
from ..spec.model import Spec
from ..spec.vocabulary import INPUT_NAME, OUTPUT_NAME, Geometry, Layout, Precision, Profile, graph_input

_NP_DTYPES = {"float32": np.float32, "float16": np.float16, "uint8": np.uint8}
_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8"}


def _value_info(arg) -> tuple:
    """(name, dtype name, dims) of an ORT NodeArg, as vitstem.spec.exported.check_io compares them."""
    return arg.name, _ORT_DTYPES.get(arg.type, arg.type), list(arg.shape)


def _not_vitstem(path, what: str) -> ExportError:
    return ExportError(f"{path}: {what}; was it written by `vitstem export`?")


class Stem:
    """Callable: images (a batch in the model's input format) -> z0 (B, tokens, D)."""

    def __init__(self, session, source: str = "model"):
        self.session = session
        try:
            self.metadata = read_metadata(session.get_modelmeta().custom_metadata_map, source)
            io = [_value_info(a) for a in session.get_inputs()], [_value_info(a) for a in session.get_outputs()]
        except UnicodeDecodeError:
            raise ExportError(f"{source}: a name or metadata entry is not valid UTF-8 (corrupt file?)") from None
        for key in ("spec", "spec_digest", "export_options"):
            if key not in self.metadata:
                raise _not_vitstem(source, f"metadata has no vitstem.{key}")
        try:
            self.spec: Spec = load_spec(json.loads(self.metadata["spec"]))
        except (ValueError, SpecError) as exc:
            raise _not_vitstem(source, f"its vitstem metadata does not parse ({exc})") from None
        if self.spec.digest() != self.metadata["spec_digest"]:
            raise ExportError(f"{source}: the stored spec does not match vitstem.spec_digest "
                              f"({self.spec.digest()} != {self.metadata['spec_digest']})")
        self.options: dict = parse_options(self.metadata["export_options"], source)
        self._check_io(io, source)
        self.source = source
        self.preprocess_in_graph = bool(self.options.get("preprocess_in_graph"))
        layout, self.input_dtype = graph_input(self.spec, self.preprocess_in_graph, self.options["io_dtype"])
        sizes = self.options.get("sizes")
        self.sizes = None if sizes is None else [tuple(s) for s in sizes]
        self.batch = self.options.get("batch")
        # Validation sees the input as the graph takes it: camera frames are in CAMERA_LAYOUT.
        self._input_spec = (self.spec.replace(input={**self.spec.to_dict()["input"], "layout": layout.value})
                            if self.preprocess_in_graph else self.spec)

    def _check_io(self, io, source) -> None:
        if "encoder" in self.metadata:
            raise ExportError(f"{source}: a whole model (it has vitstem.encoder); load it with vitstem.runtime.load")
        check_io(source, expected_io(self.spec, self.options), *io)

    @property
    def layout(self) -> Layout:
        return self._input_spec.input.layout

    def check(self, images) -> np.ndarray:
        """`images` converted to the graph's input dtype; InputError naming what is wrong otherwise."""
        x, hw = check_images(self._input_spec, images)
        if self.preprocess_in_graph and x.dtype != np.uint8:
            raise InputError(f"images have dtype {x.dtype}; this model takes uint8 frames (B, H, W, C)")
        if self.sizes is not None and hw not in self.sizes:
            accepted = ", ".join(f"{h}x{w}" for h, w in self.sizes)
            raise InputError(f"images have shape {x.shape}: size {hw[0]}x{hw[1]} is not one this model was "
                             f"exported for ({accepted}); resize the images or export with that size")
        if self.batch is not None and x.shape[0] != self.batch:
            raise InputError(f"images have shape {x.shape}: this model was exported for batch {self.batch}")
        dtype = _NP_DTYPES[self.input_dtype]
        if self.options["precision"] == Precision.FP16 and x.dtype.kind == "f" and x.size \
                and float(np.abs(x).max()) > float(np.finfo(np.float16).max):
            raise InputError(f"images have values beyond float16's range (max |x| = {float(np.abs(x).max()):.6g} > "
                             "65504), which this fp16 model computes in")
        if x.dtype != dtype:
            converted = cast_images(x, dtype, f"this model's {dtype.__name__} input")
            if self.options.get("profile") == Profile.EXACT and not np.array_equal(converted, x):
                raise InputError(f"images have dtype {x.dtype} with values float32 cannot hold exactly; the exact "
                                 "profile takes float32 inputs (round them first to accept the rounding)")
            x = converted
        return np.ascontiguousarray(x)

    def _run(self, names: list[str], x: np.ndarray) -> list[np.ndarray]:
        try:
            return self.session.run(names, {INPUT_NAME: x})
        except Exception as exc:  # inputs were validated above, so the graph itself is broken (a corrupt file)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"{self.source}: onnxruntime failed running it ({first}); "
                              "check the file with `vitstem check`") from None

    def __call__(self, images) -> np.ndarray:
        x = self.check(images)
        z0 = self._run([OUTPUT_NAME], x)[0]
        check_z0(z0, inside=self.options["io_dtype"] if self.options["precision"] != Precision.FP16 else "float16")
        expected = Geometry.of(self.spec, x.shape, self.layout).z0_shape
        if z0.shape != expected:  # dynamic dims are checked only here
            raise ExportError(f"{self.source}: the graph returned z0 of shape {z0.shape}, but the stored spec "
                              f"implies {expected}; vitstem.spec does not describe this graph")
        return z0

    def __repr__(self) -> str:
        o = self.options
        return (f"Stem({self.spec.name!r}, precision={o.get('precision')}, profile={o.get('profile')}, "
                f"input {self.input_dtype} {self.layout})")


def load(path: str | os.PathLike, *, threads: int | None = None, providers: list[str] | None = None,
         verify: bool = True) -> Stem:
    """A `Stem` for an exported stem file (.onnx or .ort), a `Model` (a Stem whose call returns the
    outputs by name) for a whole model; ExportError if it is not a readable vitstem model.

    `providers`: execution providers in priority order (default CPU); ProviderError if this
    onnxruntime build lacks one or the session did not start it (onnxruntime would fall back to CPU).
    verify (default): check the file's vitstem.digest (whole-file SHA-256, see vitstem.runtime.integrity)
    and, for a .ort with its .onnx beside it, that the two are one pair. verify=False skips both (for
    files edited on purpose, or exported before vitstem.digest existed)."""
    import onnxruntime as ort

    from . import integrity
    from .providers import check_available, check_started

    providers = check_available(providers, ort.get_available_providers())
    path = Path(path)
    data = integrity.read_bounded(path)
    verified = integrity.verify_raw(data, path) if verify else None  # before onnxruntime parses a byte
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = int(threads)
    try:
        session = ort.InferenceSession(data, sess_options=so, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"{path}: onnxruntime cannot load it ({first})") from None
    check_started(providers, session.get_providers(), str(path))
    try:
        whole = "vitstem.encoder" in session.get_modelmeta().custom_metadata_map
    except UnicodeDecodeError:
        raise ExportError(f"{path}: a metadata entry is not valid UTF-8 (corrupt file?)") from None
    if whole:
        from .model import Model

        stem = Model(session, str(path))
    else:
        stem = Stem(session, str(path))
    if verify:
        stored = stem.metadata.get(integrity.DIGEST_KEY)
        if stored != verified:
            raise ExportError(f"{path}: the metadata's vitstem.digest ({str(stored)[:80]!r}) is not the digest the "
                              "file's bytes verify (edited or corrupt)")
        if integrity.ONNX_DIGEST_KEY in stem.metadata:
            integrity.check_pair(path, stem.metadata[integrity.ONNX_DIGEST_KEY])
    return stem
