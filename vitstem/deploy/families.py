"""Where a peer model's stem ends: convert it, take it out, and run the peer's own forward.

A whole model is split at z0. The stem is converted by the family's converter in vitstem.interop;
the encoder is *the peer's own forward* with the stem modules replaced by pass-throughs, so it is
whatever that forward does after its embeddings (blocks, final norm, pooling, head), for any
model the converter accepts, without re-typing the peer's code. A family says three things:

- `convert(model, dynamic)`: (spec, weights), via vitstem.interop;
- `needs_grid(model, dynamic)`: whether its encoder also takes the patch grid (rope at other sizes, rope.py);
- `stem_parts(model, spec, grid)`: the (owner module, attribute) pairs that compute z0 inside the peer
  (`grid`: the rope.GridShape the encoder's forward sets, or None);
- `forward(model, x, spec)`: the peer's forward on normalised images, as (name, tensor) pairs in
  the order the peer returns them (what the exported file's outputs are named after).

Adding a family the converters learn is a `Family` entry here, not a new exporter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import ExportError
from .rope import needs_grid, rope_pos_embed

# Names transformers gives a LayerNorm applied to z0 before the encoder (CLIP's pre_layrnorm);
# it belongs to the stem when the converter put it into the spec as pre_norm.
HF_PRE_NORM_NAMES = ("pre_layrnorm", "pre_layernorm", "layernorm_pre", "ln_pre")


@dataclass(frozen=True)
class Family:
    peer: str  # the library: "timm" or "transformers"
    convert: Callable
    needs_grid: Callable
    stem_parts: Callable
    forward: Callable


def _timm_convert(model, dynamic: bool):
    from ..interop import from_timm

    return from_timm(model)


def _timm_stem_parts(model, spec, grid=None):
    # VisionTransformer.forward_features: patch_embed -> _pos_embed -> patch_drop -> norm_pre -> blocks ...
    # Eva's is the same, with _pos_embed returning (tokens, rope at the grid): at other sizes rope is computed
    # from the encoder's grid input (rope.py); at the fixed size it is kept as computed at the native grid.
    if not callable(getattr(type(model), "_pos_embed", None)):
        raise ExportError(f"timm {type(model).__name__} computes its tokens inside forward_features (no _pos_embed), so "
                          "export_model cannot take its stem out (it can for VisionTransformer and Eva models); export its "
                          "encoder yourself and join it with vitstem compose")
    missing = [a for a in ("patch_drop", "norm_pre") if not hasattr(model, a)]
    if missing:  # Qwen3VitEncoder, DeepseekVitEncoder: forward_features unpacks B, H, W from patch_embed's output
        raise ExportError(f"timm {type(model).__name__}: its forward_features is not VisionTransformer's or Eva's "
                          f"(patch_embed -> _pos_embed -> patch_drop -> norm_pre; it has no {' or '.join(missing)}) and "
                          "reads the patch grid from patch_embed's (B, H, W, D) output, which z0 (batch, tokens, D) is "
                          "not; export its encoder yourself and join it with vitstem compose")
    import torch

    if grid is not None:
        return [(model, "patch_embed"), rope_pos_embed(model, grid), (model, "patch_drop"), (model, "norm_pre")]
    param = next(model.parameters())
    image = torch.zeros(1, spec.in_channels, *spec.image_size, dtype=param.dtype)
    with torch.no_grad():
        out = model._pos_embed(model.patch_embed(image))
    if isinstance(out, tuple):  # Eva: (tokens, rope)
        # The shape probes (a token or two, encoder.probe_outputs) run without rope: only their shapes are read.
        extras, native = out[1:], out[0].shape[1]
        pos_embed = (model, "_pos_embed",
                     lambda x, *a, **k: (x, *(extras if x.shape[1] == native else (None,) * len(extras))))
    else:
        pos_embed = (model, "_pos_embed")
    return [(model, "patch_embed"), pos_embed, (model, "patch_drop"), (model, "norm_pre")]


def _timm_forward(model, x, spec):
    out = model(x)
    if isinstance(out, (tuple, list)):
        return [(f"output_{i}", o) for i, o in enumerate(out)]
    return [("output", out)]


def _hf_convert(model, dynamic: bool):
    from ..interop import from_hf

    return from_hf(model, interpolate_pos_encoding=dynamic)


def _hf_embeddings(model):
    """(owner, attribute name) of the first module called `embeddings` (ViTModel.embeddings,
    ViTForImageClassification.vit.embeddings, ...)."""
    for name, module in model.named_modules():
        if name == "embeddings" or name.endswith(".embeddings"):
            owner = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
            return owner, name.rpartition(".")[2]
    raise ExportError(f"{type(model).__name__}: no `embeddings` module, so the stem cannot be taken out of it")


def _hf_stem_parts(model, spec, grid=None):
    owner, attr = _hf_embeddings(model)
    parts = [(owner, attr)]
    if spec.pre_norm is not None:
        names = [n for n in HF_PRE_NORM_NAMES if hasattr(owner, n)]
        if not names:
            raise ExportError(f"{type(model).__name__}: the spec has pre_norm but no module named "
                              f"{' / '.join(HF_PRE_NORM_NAMES)} sits beside its embeddings")
        parts.append((owner, names[0]))
    return parts


def _hf_forward(model, x, spec):
    import inspect

    kwargs = {}
    if spec.dynamic_image_size and "interpolate_pos_encoding" in inspect.signature(model.forward).parameters:
        kwargs["interpolate_pos_encoding"] = True
    out = model(x, **kwargs)
    import torch

    return [(k, v) for k, v in out.items() if isinstance(v, torch.Tensor)]


FAMILIES = {
    "timm": Family("timm", _timm_convert, needs_grid, _timm_stem_parts, _timm_forward),
    "transformers": Family("transformers", _hf_convert, lambda model, dynamic: False, _hf_stem_parts, _hf_forward),
}


def family_of(model) -> Family:
    """The Family of a peer model, by the library its class comes from; ExportError otherwise."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise ExportError(f"export_model takes a PyTorch model from timm or transformers or a keras-hub backbone, got "
                          f"{type(model).__name__}; "
                          "for other frameworks export the encoder yourself and use vitstem compose")
    root = type(model).__module__.split(".")[0]
    if root not in FAMILIES:
        raise ExportError(f"{type(model).__name__} comes from {root!r}; export_model knows "
                          f"{', '.join(sorted(FAMILIES))} models (others: export the encoder and use vitstem compose)")
    return FAMILIES[root]


def with_preprocess(spec, preprocess):
    """The converter's spec with its input.preprocess chosen by the user: "auto" keeps the converter's
    (timm: pretrained_cfg; transformers: none), None takes normalised floats, a mapping {scale, mean,
    std}, or a transformers image processor (or its preprocessor_config.json as a dict)."""
    from ..interop.assemble import checked_preprocess
    from ..interop.hf import processor_preprocess

    if isinstance(preprocess, str) and preprocess == "auto":
        return spec
    if preprocess is None:
        doc = None
    elif isinstance(preprocess, dict) and "scale" in preprocess:
        doc = checked_preprocess(preprocess, spec.in_channels)
    else:
        doc = processor_preprocess(preprocess, spec.in_channels)
    return spec.replace(input={"layout": spec.input.layout, "preprocess": doc})


def peer_version(family: Family) -> str:
    import importlib

    return getattr(importlib.import_module(family.peer), "__version__", "unknown")
