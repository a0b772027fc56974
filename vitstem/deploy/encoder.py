"""The encoder of a peer model as ONNX: its own forward from z0 on, with a dynamic token count.

The stem modules are swapped for pass-throughs only while the encoder is traced (the user's
model is restored afterwards, also on error). Exported with torch.onnx's TorchScript exporter:
it was measured faster to export than dynamo=True and its graph as fast in ONNX Runtime
(docs/benchmarks.md, "Whole-model deploy"); `exporter="dynamo"` is kept for when TorchScript goes.
Every exported encoder is run in ONNX Runtime at each token count the file will feed it and
compared with the eager module: TorchScript can bake the traced token count into a graph
(SigLIP's attention-pool head does), and "auto" then exports with dynamo instead.
"""

from __future__ import annotations

import contextlib
import io
import warnings

from ..errors import ExportError
from ..spec.vocabulary import OUTPUT_NAME

ENCODER_INPUT = OUTPUT_NAME  # the stem's output is what the encoder takes


def _pass_through_class():
    import torch

    class StemPassThrough(torch.nn.Module):
        """Returns z0 unchanged; attribute reads fall through to the module it replaces
        (transformers reads `embeddings.patch_embeddings.projection.weight.dtype`)."""

        def __init__(self, replaced):
            super().__init__()
            object.__setattr__(self, "_replaced", replaced)

        def forward(self, x, *args, **kwargs):
            return x

        def __getattr__(self, name):
            try:
                return super().__getattr__(name)
            except AttributeError:
                return getattr(object.__getattribute__(self, "_replaced"), name)

    return StemPassThrough


@contextlib.contextmanager
def stem_removed(parts):
    """Within the block, each (owner, attribute) of `parts` returns its input unchanged; a part
    (owner, attribute, function) is replaced by that function instead (a method only)."""
    import torch

    pass_through = _pass_through_class()
    saved = []
    try:
        for owner, attr, *replacement in parts:
            current = getattr(owner, attr)
            in_dict = attr in owner.__dict__
            saved.append((owner, attr, current, in_dict))
            if isinstance(current, torch.nn.Module):
                setattr(owner, attr, pass_through(current))
            else:  # a method such as timm's _pos_embed: an instance attribute shadows it
                object.__setattr__(owner, attr, replacement[0] if replacement else lambda x, *a, **k: x)
        yield
    finally:
        for owner, attr, current, in_dict in reversed(saved):
            if isinstance(current, torch.nn.Module):
                setattr(owner, attr, current)
            elif in_dict:
                object.__setattr__(owner, attr, current)
            else:
                object.__delattr__(owner, attr)


@contextlib.contextmanager
def static_attention_scale():
    """Within the block, F.scaled_dot_product_attention is the same math with its scale a constant.
    TorchScript's export of SDPA computes 1/sqrt(head_dim) from the input's shape at run time and
    multiplies q and k by its root (2 Muls and 8 shape nodes per layer); a constant scale on q lets
    ONNX Runtime fold it into the score MatMul (FusedMatMul), as in the dynamo export."""
    import math

    import torch

    functional = torch.nn.functional
    original = functional.scaled_dot_product_attention

    def sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kwargs):
        if is_causal or dropout_p or kwargs.get("enable_gqa"):
            return original(q, k, v, attn_mask, dropout_p, is_causal, scale=scale, **kwargs)
        s = float(scale) if scale is not None else 1.0 / math.sqrt(int(q.shape[-1]))
        scores = (q * s) @ k.transpose(-2, -1)
        if attn_mask is not None:
            scores = scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else scores + attn_mask
        return scores.softmax(dim=-1) @ v

    functional.scaled_dot_product_attention = sdpa
    try:
        yield
    finally:
        functional.scaled_dot_product_attention = original


def encoder_module(peer, family, spec, dtype=None):
    """An nn.Module: z0 (B, T, D) -> the peer's outputs as a tuple; call it inside `stem_removed`.
    With dtype float16 (`peer` then a half copy of the model) z0 is cast in and the outputs out."""
    import torch

    class Encoder(torch.nn.Module):
        compute_dtype = dtype

        def __init__(self):
            super().__init__()
            self.peer = peer

        def forward(self, z0):
            x = z0 if dtype is None else z0.to(dtype)
            outs = tuple(v for _, v in family.forward(self.peer, x, spec))
            return outs if dtype is None else tuple(o.float() for o in outs)

    return Encoder().eval()


def probe_outputs(encoder, spec, static_tokens: bool = False) -> list[dict]:
    """{axis: symbol} per output from two cheap eager runs on a few tokens (the prefix plus one or two
    patch rows): axis 0 is the batch; an axis whose length follows the token count is `tokens`
    (left out with `static_tokens`: the graph then has that axis's length)."""
    import torch

    d, prefix = spec.embed_dim, spec.num_prefix_tokens
    with torch.no_grad():
        a = encoder(torch.zeros(1, prefix + 1, d))
        b = encoder(torch.zeros(2, prefix + 2, d))
    return [{i: ("batch" if i == 0 else "tokens") for i, (m, n) in enumerate(zip(x.shape, y.shape))
             if m != n and (i == 0 or not static_tokens)} for x, y in zip(a, b)]


def token_counts(spec, sizes) -> list[int]:
    """The token counts the whole file feeds its encoder: each listed size's, or (any size, `sizes`
    None) the native grid's and a larger non-square grid's."""
    if sizes is None:
        (gh, gw) = spec.patch_grid()
        return [spec.num_prefix_tokens + gh * gw, spec.num_prefix_tokens + (gh + 2) * (gw + 1)]
    return list(dict.fromkeys(spec.num_tokens(hw) for hw in sizes))


def mismatch(data: bytes, encoder, spec, counts, tolerance: float) -> str | None:
    """None when the exported encoder, run by ONNX Runtime on seeded N(0, 1) z0 (batch 2) at each
    token count, matches the eager module within tolerance * max(1, max|ref|); else what went wrong."""
    import numpy as np
    import onnxruntime as ort
    import torch

    quiet = ort.SessionOptions()
    quiet.log_severity_level = 4  # the failure is returned, not logged
    # The graph's own semantics are checked: ORT's fusions would only add session time here.
    quiet.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    session = ort.InferenceSession(data, quiet, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for n in counts:
        z0 = rng.standard_normal((2, n, spec.embed_dim)).astype(np.float32)
        try:
            got = session.run(None, {ENCODER_INPUT: z0})
        except Exception as exc:  # onnxruntime's errors carry no common type
            return f"it fails at {n} tokens in ONNX Runtime ({str(exc).strip().splitlines()[0][:200]})"
        with torch.no_grad():
            want = [o.numpy() for o in encoder(torch.from_numpy(z0))]
        for g, w in zip(got, want):
            if g.shape != w.shape or not np.abs(g - w).max() <= tolerance * max(1.0, float(np.abs(w).max())):
                return f"at {n} tokens it differs from the peer's forward (shape {g.shape} vs {w.shape})"
    return None


def export_encoder(encoder, names, spec, opset: int, exporter: str = "auto", *, sizes):
    """(ModelProto, 'sha256:<hex>' of its bytes as exported): input `z0` (batch, tokens, D) float32,
    outputs `names`, checked at the token counts of `sizes` (export options' sizes; None: any size)
    within the deploy tolerance of its precision. The token axis is static when every size gives
    the same count (a fixed size): ONNX Runtime then knows every shape and plans memory ahead, as in
    a whole-model export at one size. exporter "auto": TorchScript, and dynamo when TorchScript
    cannot export an operator (e.g. aten::rms_norm of timm's RmsNorm encoders) or its graph fails
    that check."""
    import hashlib

    import onnx

    from .verification import TOLERANCE

    counts = token_counts(spec, sizes)  # traced at the first: the native grid's or the first size's
    static = sizes is not None and len(set(counts)) == 1
    tolerance = TOLERANCE["fp32" if encoder.compute_dtype is None else "fp16"]
    if exporter == "auto":
        try:
            data = _exported(encoder, names, spec, opset, counts[0], "torchscript", static)
            if mismatch(data, encoder, spec, counts, tolerance) is None:
                return onnx.load_model_from_string(data), "sha256:" + hashlib.sha256(data).hexdigest()
        except ExportError:
            pass
        exporter = "dynamo"
    data = _exported(encoder, names, spec, opset, counts[0], exporter, static)
    problem = mismatch(data, encoder, spec, counts, tolerance)
    if problem is not None:
        raise ExportError(f"the encoder exported by torch.onnx ({exporter}) does not work at every size: {problem}")
    return onnx.load_model_from_string(data), "sha256:" + hashlib.sha256(data).hexdigest()


def _exported(encoder, names, spec, opset: int, tokens: int, exporter: str, static_tokens: bool) -> bytes:
    """The encoder's ONNX bytes as torch.onnx wrote them (traced at `tokens`)."""
    import torch

    axes = dict(zip(names, probe_outputs(encoder, spec, static_tokens)))
    z0_axes = {0: "batch"} if static_tokens else {0: "batch", 1: "tokens"}
    example = torch.zeros(1, tokens, spec.embed_dim)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            if exporter == "torchscript":
                with static_attention_scale():
                    torch.onnx.export(encoder, (example,), buffer, dynamo=False, opset_version=opset,
                                      input_names=[ENCODER_INPUT], output_names=list(names),
                                      dynamic_axes={ENCODER_INPUT: z0_axes, **axes})
            elif exporter == "dynamo":
                dims = {axis: torch.export.Dim(name) for axis, name in z0_axes.items()}
                # traced at batch 2: dynamo specialises a dimension of size 1
                program = torch.onnx.export(encoder, (example.expand(2, -1, -1),), dynamo=True, opset_version=opset,
                                            input_names=[ENCODER_INPUT], output_names=list(names),
                                            dynamic_shapes=(dims,), verbose=False)
                buffer.write(program.model_proto.SerializeToString())
            else:
                raise ExportError(f"exporter must be 'auto', 'torchscript' or 'dynamo', got {exporter!r}")
        except ExportError:
            raise
        except Exception as exc:  # torch.onnx raises many types; name the model and the first line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"torch.onnx.export ({exporter}) could not export the encoder: {first}") from None
    return buffer.getvalue()
