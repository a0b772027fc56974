"""The engines `vitstem bench` times: how each is built for one (spec, weights, batch) and called.

A builder returns a zero-argument callable that computes z0 once (or the floor's product), or
raises `Unavailable` saying why (a framework not installed, a spec the peer cannot express). Frameworks are imported inside the builders, after `import_frameworks` has
put torch and torchvision before tensorflow (the other order segfaults).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from vitstem.spec import Spec

FLOOR = "ort_floor_matmul"


class Unavailable(Exception):
    """This candidate cannot run here; the message says why."""


@dataclass
class Context:
    """What every builder gets: the stem, one batch of pixels in the spec's layout, the thread count."""
    spec: Spec
    weights: Mapping[str, np.ndarray]
    images: np.ndarray
    threads: int
    cache: dict = field(default_factory=dict)  # built once per process, shared across batch sizes

    @property
    def batch(self) -> int:
        return int(self.images.shape[0])


@dataclass(frozen=True)
class Candidate:
    name: str
    group: str  # the thread pool it runs on; groups are timed back to back (see timing.py)
    what: str
    build: Callable[[Context], Callable[[], object]]
    computes_z0: bool = True  # False for the floor, which is a bare product of the same shape


def _module(name: str, why: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise Unavailable(f"{why}: {exc.name} is not installed or not written yet") from None


# -- ONNX Runtime -------------------------------------------------------------------------------
def _ort_floor(ctx: Context):
    from .ort_models import bare_matmul_model, ort_session

    spec = ctx.spec
    rows = ctx.batch * spec.num_patches
    session = ort_session(bare_matmul_model(rows, spec.patch_dim, spec.embed_dim), ctx.threads)
    feed = {"x": np.random.default_rng(0).standard_normal((rows, spec.patch_dim)).astype(np.float32)}
    return lambda: session.run(None, feed)


def _ort_model(model_bytes: bytes, ctx: Context, name: str):
    import onnx

    from .ort_models import ort_session

    # Which graph was timed: the op types, in order (the exporter's structure may change).
    ctx.cache.setdefault("graph_ops", {})[name] = [n.op_type for n in onnx.load_from_string(model_bytes).graph.node]
    session = ort_session(model_bytes, ctx.threads)
    feed = {session.get_inputs()[0].name: ctx.images}
    return lambda: session.run(None, feed)


def _vitstem_onnx(ctx: Context, **options) -> bytes:
    export = _module("vitstem.export", "vitstem's ONNX exporter")
    return export.build_onnx(ctx.spec, ctx.weights, **options).SerializeToString()


def _ort_vitstem(ctx: Context):
    if "vitstem_onnx" not in ctx.cache:
        ctx.cache["vitstem_onnx"] = _vitstem_onnx(ctx)
    return _ort_model(ctx.cache["vitstem_onnx"], ctx, "ort_vitstem")


def _ort_vitstem_static(ctx: Context):
    return _ort_model(_vitstem_onnx(ctx, batch=ctx.batch), ctx, "ort_vitstem_static")


def _ort_timm(ctx: Context):
    if "timm_onnx" not in ctx.cache:
        torch = _module("torch", "torch.onnx.export")
        stem = _timm_stem(ctx)
        example = torch.from_numpy(ctx.images)
        batch = torch.export.Dim("batch", min=1, max=4096)
        program = torch.onnx.export(stem, (example,), dynamo=True, dynamic_shapes=({0: batch},),
                                    verbose=False, report=False)
        ctx.cache["timm_onnx"] = program.model_proto.SerializeToString()
    return _ort_model(ctx.cache["timm_onnx"], ctx, "ort_timm_dynamo")


# -- PyTorch ------------------------------------------------------------------------------------
def _torch_call(module, ctx: Context):
    import torch

    x = torch.from_numpy(ctx.images)

    def run():
        with torch.inference_mode():
            return module(x)

    return run


def _timm_stem(ctx: Context):
    _module("timm", "timm's stem")
    from vitstem.errors import SpecError

    from .timm_peer import TimmStem

    try:
        return TimmStem(ctx.spec, ctx.weights)
    except SpecError as exc:  # timm cannot express this stem (vitstem.interop.timm's rules)
        raise Unavailable(str(exc)) from None


def _torch_vitstem(ctx: Context):
    backend = _module("vitstem.backends.torch", "vitstem's PyTorch backend")
    return _torch_call(backend.VitStem.from_weights(ctx.spec, ctx.weights).eval(), ctx)


def _torch_timm(ctx: Context):
    return _torch_call(_timm_stem(ctx), ctx)


# -- TensorFlow ---------------------------------------------------------------------------------
def _tf_call(fn, ctx: Context):
    import tensorflow as tf

    x = tf.constant(ctx.images)
    return lambda: fn(x)


def _tf_vitstem(ctx: Context):
    backend = _module("vitstem.backends.tensorflow", "vitstem's TensorFlow backend")
    import tensorflow as tf

    layer = backend.VitStemLayer.from_weights(ctx.spec, ctx.weights)
    return _tf_call(tf.function(layer), ctx)


def _tf_handwritten(ctx: Context):
    _module("tensorflow", "the hand-written tf.function")
    from .tf_stem import handwritten_stem

    return _tf_call(handwritten_stem(ctx.spec, ctx.weights), ctx)


CANDIDATES = (
    Candidate(FLOOR, "onnxruntime", "ORT: bare MatMul (B*N, K) x (K, D), the floor", _ort_floor, computes_z0=False),
    Candidate("ort_vitstem", "onnxruntime", "ORT: vitstem.export_onnx graph (dynamic batch)", _ort_vitstem),
    Candidate("ort_vitstem_static", "onnxruntime", "ORT: vitstem.export_onnx graph (batch=B)", _ort_vitstem_static),
    Candidate("ort_timm_dynamo", "onnxruntime", "ORT: timm stem via torch.onnx.export(dynamo=True)", _ort_timm),
    Candidate("torch_vitstem", "torch", "PyTorch eager: vitstem VitStem", _torch_vitstem),
    Candidate("torch_timm", "torch", "PyTorch eager: timm patch_embed + _pos_embed + norm_pre", _torch_timm),
    Candidate("tf_vitstem", "tensorflow", "TensorFlow: vitstem VitStemLayer under tf.function", _tf_vitstem),
    Candidate("tf_handwritten", "tensorflow", "TensorFlow: hand-written tf.function of the same math", _tf_handwritten),
)


def import_frameworks() -> dict[str, str]:
    """Import the installed frameworks in the one safe order (torch, torchvision, timm, then
    tensorflow); name -> version, or 'not installed'."""
    versions = {}
    for name in ("torch", "torchvision", "timm", "onnx", "onnxruntime", "tensorflow"):
        try:
            versions[name] = getattr(importlib.import_module(name), "__version__", "?")
        except ModuleNotFoundError:
            versions[name] = "not installed"
    return versions


def configure_threads(threads: int) -> dict[str, int | str]:
    """Give every framework `threads` intra-op threads (one inter-op thread); what each actually got.

    ORT's global pool and TensorFlow's pools are fixed once created: a process measures one count.
    """
    actual: dict[str, int | str] = {}
    try:
        from .ort_models import use_global_threads

        use_global_threads(threads)
        actual["onnxruntime"] = threads
    except ModuleNotFoundError:
        pass
    except RuntimeError as exc:
        actual["onnxruntime"] = f"unchanged: {exc}"
    try:
        import torch

        torch.set_num_threads(threads)
        actual["torch"] = torch.get_num_threads()
    except ModuleNotFoundError:
        pass
    try:
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # the runtime is already up (e.g. under pytest): keep what it has
            pass
        actual["tensorflow"] = tf.config.threading.get_intra_op_parallelism_threads() or "default (all cores)"
    except ModuleNotFoundError:
        pass
    return actual


def to_numpy(output) -> np.ndarray:
    """z0 from what a candidate returns: an ORT output list, a torch or a TF tensor."""
    if isinstance(output, (list, tuple)):
        output = output[0]
    if hasattr(output, "detach"):
        output = output.detach()
    return np.asarray(output.numpy() if hasattr(output, "numpy") else output)
