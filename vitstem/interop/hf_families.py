"""The transformers vision families whose stem the spec expresses, as data (transformers 5.24).

Each family's embeddings module is read off its source (`models/<family>/modeling_<family>.py`):
conv patchify (kernel = stride, no padding: an image side that is not a multiple of the patch
loses its remainder), prefix tokens, an absolute table (or none) and, in some vision models, a
LayerNorm right after the embeddings (CLIP's `pre_layrnorm`). Names are relative to the
embeddings module, so one entry drives both a live model (`getattr` along the dots) and a state
dict (the same names after the embeddings' key prefix).

Resampling (`interpolate_pos_encoding`, patch rows only, the class row split off first and
re-joined; the source grid taken as square, sqrt of the row count):
- every family here except Dinov2WithRegisters: `F.interpolate(size=(h // p, w // p),
  mode="bicubic", align_corners=False)`, no antialias: the `hf_pytorch` policy. Dinov2 upcasts
  the table to float32 first (its old `+0.1` scale-factor offset is gone in 5.x); the others
  interpolate in the table's dtype, float32 for float32 models.
- Dinov2WithRegisters: the same call with `antialias=True`, in float32: exactly timm's call,
  hence the `timm` policy.
- DPT: `F.interpolate(mode="bilinear")` (align_corners=False, no antialias) on every forward: `hf_dpt`.
`when` says when the peer resamples: "flag" (the forward's `interpolate_pos_encoding=True`;
other sizes are refused without it), "always" (whenever the grid differs: Dinov2, BEiT, CLIPSeg, DPT), or
"any" (no table: every size works) or "never" (AIMv2: only the native size).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HfFamily:
    family: str                      # the README's name for it
    embeddings: tuple[str, ...]      # embeddings class names
    model_types: tuple[str, ...]     # config.json model_type values (composite models: their vision_config)
    peer: str                        # the bare vision model class
    kernel: str                      # conv module, relative to the embeddings
    cls: str | None = None
    dist: str | None = None
    registers: str | None = None
    table: str | None = None         # a (1, T, D) Parameter, or an nn.Embedding's ".weight"
    table_skips_registers: bool = False  # Dinov2WithRegisters: table added before the registers are inserted
    pre_norm: str | None = None      # LayerNorm beside `embeddings` in the module that holds it
    patch_norm: str | None = None    # an RMSNorm on the projected patch rows (AIMv2), relative to the embeddings
    flat_cls: bool = False           # the class token is stored as (D,) (CLIP's class_embedding)
    patch_bias: bool = True          # the conv has a bias
    resample: str = "hf_pytorch"
    when: str = "flag"               # flag | always | any | never


_PE = "patch_embeddings.projection"
FAMILIES: tuple[HfFamily, ...] = (
    HfFamily("ViT", ("ViTEmbeddings",), ("vit",), "ViTModel", _PE, cls="cls_token", table="position_embeddings"),
    HfFamily("DeiT", ("DeiTEmbeddings",), ("deit",), "DeiTModel", _PE, cls="cls_token", dist="distillation_token",
             table="position_embeddings"),
    HfFamily("ViTMSN", ("ViTMSNEmbeddings",), ("vit_msn",), "ViTMSNModel", _PE, cls="cls_token",
             table="position_embeddings"),
    HfFamily("ViTMAE", ("ViTMAEEmbeddings",), ("vit_mae",), "ViTMAEModel", _PE, cls="cls_token",
             table="position_embeddings"),
    HfFamily("IJepa", ("IJepaEmbeddings",), ("ijepa",), "IJepaModel", _PE, table="position_embeddings"),
    HfFamily("Dinov2", ("Dinov2Embeddings",), ("dinov2",), "Dinov2Model", _PE, cls="cls_token",
             table="position_embeddings", when="always"),
    HfFamily("Dinov2WithRegisters", ("Dinov2WithRegistersEmbeddings",), ("dinov2_with_registers",),
             "Dinov2WithRegistersModel", _PE, cls="cls_token", registers="register_tokens",
             table="position_embeddings", table_skips_registers=True, resample="timm", when="always"),
    HfFamily("DINOv3ViT", ("DINOv3ViTEmbeddings",), ("dinov3_vit",), "DINOv3ViTModel", "patch_embeddings",
             cls="cls_token", registers="register_tokens", when="any"),
    HfFamily("Beit", ("BeitEmbeddings",), ("beit",), "BeitModel", _PE, cls="cls_token",
             table="position_embeddings", when="always"),
    HfFamily("Data2VecVision", ("Data2VecVisionEmbeddings",), ("data2vec-vision",), "Data2VecVisionModel", _PE,
             cls="cls_token", table="position_embeddings", when="always"),
    HfFamily("Aimv2Vision", ("Aimv2VisionEmbeddings",), ("aimv2_vision_model", "aimv2"), "Aimv2VisionModel",
             "patch_embed", table="position_embedding.weight", patch_norm="rms_norm", when="never"),
    HfFamily("DPT", ("DPTViTEmbeddings",), ("dpt",), "DPTModel", _PE, cls="cls_token", table="position_embeddings",
             resample="hf_dpt", when="always"),
    HfFamily("CLIPVision", ("CLIPVisionEmbeddings",), ("clip_vision_model", "clip"), "CLIPVisionModel",
             "patch_embedding", cls="class_embedding", table="position_embedding.weight", pre_norm="pre_layrnorm",
             flat_cls=True, patch_bias=False),
    HfFamily("MetaClip2Vision", ("MetaClip2VisionEmbeddings",), ("metaclip_2_vision_model", "metaclip_2"),
             "MetaClip2VisionModel", "patch_embedding", cls="class_embedding", table="position_embedding.weight",
             pre_norm="pre_layrnorm", flat_cls=True, patch_bias=False),
    HfFamily("OwlViTVision", ("OwlViTVisionEmbeddings",), ("owlvit_vision_model", "owlvit"), "OwlViTVisionModel",
             "patch_embedding", cls="class_embedding", table="position_embedding.weight", pre_norm="pre_layernorm",
             flat_cls=True, patch_bias=False),
    HfFamily("SiglipVision", ("SiglipVisionEmbeddings",), ("siglip_vision_model", "siglip"), "SiglipVisionModel",
             "patch_embedding", table="position_embedding.weight"),
    HfFamily("BlipVision", ("BlipVisionEmbeddings",), ("blip_vision_model", "blip"), "BlipVisionModel",
             "patch_embedding", cls="class_embedding", table="position_embedding"),
)


def _copy(of: str, family: str, embeddings: str, model_types: tuple[str, ...], peer: str, **changes) -> HfFamily:
    """A family whose embeddings (and pre-norm) are a copy of another's ("Copied from" in its source)."""
    from dataclasses import replace

    base = next(f for f in FAMILIES if f.family == of)
    return replace(base, family=family, embeddings=(embeddings,), model_types=model_types, peer=peer, **changes)


FAMILIES += (
    _copy("CLIPVision", "AltCLIPVision", "AltCLIPVisionEmbeddings", ("altclip_vision_model", "altclip"),
          "AltCLIPVisionModel"),
    _copy("CLIPVision", "ChineseCLIPVision", "ChineseCLIPVisionEmbeddings",
          ("chinese_clip_vision_model", "chinese_clip"), "ChineseCLIPVisionModel"),
    _copy("CLIPVision", "GitVision", "GitVisionEmbeddings", ("git_vision_model", "git"), "GitVisionModel"),
    # CLIPSeg's forward defaults to interpolate_pos_encoding=True
    _copy("CLIPVision", "CLIPSegVision", "CLIPSegVisionEmbeddings", ("clipseg_vision_model", "clipseg"),
          "CLIPSegVisionModel", when="always"),
    _copy("OwlViTVision", "Owlv2Vision", "Owlv2VisionEmbeddings", ("owlv2_vision_model", "owlv2"), "Owlv2VisionModel"),
    _copy("BlipVision", "Blip2Vision", "Blip2VisionEmbeddings", ("blip_2_vision_model", "blip-2"), "Blip2VisionModel"),
    _copy("BlipVision", "InstructBlipVision", "InstructBlipVisionEmbeddings",
          ("instructblip_vision_model", "instructblip"), "InstructBlipVisionModel"),
    _copy("BlipVision", "InstructBlipVideoVision", "InstructBlipVideoVisionEmbeddings",
          ("instructblipvideo_vision_model", "instructblipvideo"), "InstructBlipVideoVisionModel"),
)

# Families with a ViT-like stem that the spec cannot express, and the feature that is missing.
REFUSED: dict[str, tuple[str, str, str]] = {  # embeddings class -> (family, peer class, reason)
    "Siglip2VisionEmbeddings": (
        "Siglip2Vision (NaFlex)", "Siglip2VisionModel",
        "it embeds variable-length sequences of pre-patchified pixels (a Linear on (num_patches, C*P*P) with "
        "spatial_shapes and a padding mask) and resizes its table to each image's own grid with antialiased "
        "bilinear; the spec has one image grid per batch and a conv patchify"),
    "DPTViTHybridEmbeddings": (
        "DPT (hybrid)", "DPTModel", "its patch tokens come from a BiT CNN backbone's feature map (a hybrid stem), "
        "not from a conv on the pixels"),
}
REFUSED_MODEL_TYPES = {"siglip2_vision_model": "Siglip2VisionEmbeddings", "siglip2": "Siglip2VisionEmbeddings"}

BY_EMBEDDINGS = {name: fam for fam in FAMILIES for name in fam.embeddings}
BY_MODEL_TYPE = {t: fam for fam in FAMILIES for t in fam.model_types}
