"""The encoder of a peer model as ONNX: its own forward from z0 on, with a dynamic token count.

The stem modules are swapped for pass-throughs only while the encoder is traced (the user's
model is restored afterwards, also on error). Exported with torch.onnx's TorchScript exporter:
it was measured faster to export than dynamo=True and its graph as fast in ONNX Runtime
(docs/benchmarks.md, "Whole-model deploy"); `exporter="dynamo"` is kept for when TorchScript goes.
Every exported encoder is run in ONNX Runtime at each token count the file will feed it and
compared with the eager module (encoder_check.py): TorchScript can bake the traced token count into
a graph (SigLIP's attention-pool head does), and "auto" then exports with dynamo instead. An encoder
with rope at other sizes also takes the patch grid (rope.py) and is exported with dynamo.
"""

from __future__ import annotations

import contextlib
import io
import warnings

from ..errors import ExportError
from .encoder_check import ENCODER_INPUT, check_grids, mismatch
from .rope import GRID_INPUT, grid_inputs, name_token_axis


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


def encoder_module(peer, family, spec, dtype=None, grid=None):
    """An nn.Module: z0 (B, T, D) -> the peer's outputs as a tuple; call it inside `stem_removed`.
    With dtype float16 (`peer` then a half copy of the model) z0 is cast in and the outputs out.
    With `grid` (the rope.GridShape the stem parts read) it takes a second input whose shape is the grid."""
    import torch

    class Encoder(torch.nn.Module):
        compute_dtype = dtype
        takes_grid = False

        def __init__(self):
            super().__init__()
            self.peer = peer

        def forward(self, z0):
            x = z0 if dtype is None else z0.to(dtype)
            outs = tuple(v for _, v in family.forward(self.peer, x, spec))
            return outs if dtype is None else tuple(o.float() for o in outs)

    class GridEncoder(Encoder):
        takes_grid = True

        def forward(self, z0, grid_zeros):
            grid.hw = (grid_zeros.shape[0], grid_zeros.shape[1])
            return super().forward(z0)

    return (Encoder if grid is None else GridEncoder)().eval()


def probe_outputs(encoder, spec, static_tokens: bool = False) -> list[dict]:
    """{axis: symbol} per output from two cheap eager runs on a few tokens (the prefix plus a 1x1 and a
    1x2 patch grid): axis 0 is the batch; an axis whose length follows the token count is `tokens`
    (left out with `static_tokens`: the graph then has that axis's length)."""
    import torch

    d, prefix = spec.embed_dim, spec.num_prefix_tokens
    with torch.no_grad():
        a = encoder(torch.zeros(1, prefix + 1, d), *grid_inputs(encoder, (1, 1)))
        b = encoder(torch.zeros(2, prefix + 2, d), *grid_inputs(encoder, (1, 2)))
    return [{i: ("batch" if i == 0 else "tokens") for i, (m, n) in enumerate(zip(x.shape, y.shape))
             if m != n and (i == 0 or not static_tokens)} for x, y in zip(a, b)]


def export_encoder(encoder, names, spec, opset: int, exporter: str = "auto", *, sizes):
    """(ModelProto, 'sha256:<hex>' of its bytes as exported): input `z0` (batch, tokens, D) float32,
    outputs `names`, checked at the token counts of `sizes` (export options' sizes; None: any size)
    within the deploy tolerance of its precision; an encoder that takes the grid also has input `grid`
    (gh, gw). The token axis is static when every size gives the same count (the same grid, for a
    grid-taking encoder): ONNX Runtime then knows every shape and plans memory ahead, as in a whole-model
    export at one size. exporter "auto": TorchScript, and dynamo when TorchScript cannot export an
    operator (e.g. aten::rms_norm of timm's RmsNorm encoders) or its graph fails that check; dynamo
    alone for a grid-taking encoder (TorchScript bakes the traced grid into rope's Concat, and ONNX
    Runtime refuses the graph)."""
    import hashlib

    import onnx

    from .verification import TOLERANCE

    grids = check_grids(spec, sizes, encoder.takes_grid)  # traced at the first: the native or first size's
    static = sizes is not None and len(grids) == 1
    tolerance = TOLERANCE["fp32" if encoder.compute_dtype is None else "fp16"]
    if exporter == "auto" and encoder.takes_grid:
        exporter = "dynamo"
    if exporter == "auto":
        try:
            data = _exported(encoder, names, spec, opset, grids[0], "torchscript", static)
            if mismatch(data, encoder, spec, grids, tolerance) is None:
                return onnx.load_model_from_string(data), "sha256:" + hashlib.sha256(data).hexdigest()
        except ExportError:
            pass
        exporter = "dynamo"
    data = _exported(encoder, names, spec, opset, grids[0], exporter, static)
    problem = mismatch(data, encoder, spec, grids, tolerance)
    if problem is not None:
        raise ExportError(f"the encoder exported by torch.onnx ({exporter}) does not work at every size: {problem}")
    return onnx.load_model_from_string(data), "sha256:" + hashlib.sha256(data).hexdigest()


def _exported(encoder, names, spec, opset: int, grid_hw, exporter: str, static_tokens: bool) -> bytes:
    """The encoder's ONNX bytes as torch.onnx wrote them (traced at the grid `grid_hw`'s token count);
    dynamo's symbol for a token axis derived from the grid is renamed `tokens`."""
    import torch

    axes = dict(zip(names, probe_outputs(encoder, spec, static_tokens)))
    z0_axes = {0: "batch"} if static_tokens else {0: "batch", 1: "tokens"}
    example = torch.zeros(1, spec.num_prefix_tokens + grid_hw[0] * grid_hw[1], spec.embed_dim)
    grid = grid_inputs(encoder, grid_hw)
    inputs = [ENCODER_INPUT] + ([GRID_INPUT] if grid else [])
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            if exporter == "torchscript":
                grid_axes = {GRID_INPUT: {0: "gh", 1: "gw"}} if grid and not static_tokens else {}
                with static_attention_scale():
                    torch.onnx.export(encoder, (example, *grid), buffer, dynamo=False, opset_version=opset,
                                      input_names=inputs, output_names=list(names),
                                      dynamic_axes={ENCODER_INPUT: z0_axes, **grid_axes, **axes})
            elif exporter == "dynamo":
                dim = torch.export.Dim
                dims = {axis: dim(name) for axis, name in z0_axes.items()}
                if grid and not static_tokens:  # tokens = prefix + gh * gw: torch.export derives it
                    dims[1] = dim.AUTO
                shapes = (dims,) if not grid else (dims, None if static_tokens else {0: dim("gh"), 1: dim("gw")})
                # traced at batch 2: dynamo specialises a dimension of size 1
                program = torch.onnx.export(encoder, (example.expand(2, -1, -1), *grid), dynamo=True,
                                            opset_version=opset, input_names=inputs, output_names=list(names),
                                            dynamic_shapes=shapes, verbose=False)
                if grid and not static_tokens:
                    name_token_axis(program.model_proto, ENCODER_INPUT)
                buffer.write(program.model_proto.SerializeToString())
            else:
                raise ExportError(f"exporter must be 'auto', 'torchscript' or 'dynamo', got {exporter!r}")
        except ExportError:
            raise
        except Exception as exc:  # torch.onnx raises many types; name the model and the first line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"torch.onnx.export ({exporter}) could not export the encoder: {first}") from None
    return buffer.getvalue()
