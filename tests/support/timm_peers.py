"""Tiny random timm models and the tensors they feed their blocks (nothing is downloaded).

`tiny_vit` and `PEERS` (one builder per non-ViT family) build models; `random_stem` gives their stem O(1)
random parameters; `timm_z0` runs timm's stem, `first_block_input` captures what forward_features feeds blocks[0].
"""

import numpy as np


def random_stem(model, seed=0):
    """Give every stem parameter O(1) random values (timm's init makes tokens ~1e-6) and set eval mode."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.startswith("blocks"):
                p.copy_(torch.randn(p.shape, generator=gen) * (0.5 if "proj.weight" in name else 1.0))
    return model.eval()


def timm_z0(model, x: np.ndarray) -> np.ndarray:
    """timm's own stem: patch_embed -> _pos_embed -> patch_drop -> norm_pre (what forward_features runs before the blocks)."""
    import torch

    with torch.no_grad():
        t = model.patch_embed(torch.from_numpy(x))
        t = model.norm_pre(model.patch_drop(model._pos_embed(t)))
    return t.numpy()


def tiny_vit(**kwargs):
    """A VisionTransformer at 32x32, patch 8, D 16, one block, with random stem parameters; `kwargs` on top."""
    from timm.models.vision_transformer import VisionTransformer

    args = dict(img_size=32, patch_size=8, embed_dim=16, depth=1, num_heads=2, num_classes=0)
    args.update(kwargs)
    return random_stem(VisionTransformer(**args))


FAMILY_ARGS = dict(img_size=32, patch_size=8, embed_dim=16, depth=1, num_heads=2, num_classes=0)


def eva(**kw):
    from timm.models.eva import Eva

    return Eva(**{**FAMILY_ARGS, **kw})


def family(cls_path, **kw):
    """The timm class at `cls_path` (module.Class under timm.models) built tiny: FAMILY_ARGS with `kw` on top."""
    import importlib

    module, name = cls_path.rsplit(".", 1)
    args = {**FAMILY_ARGS, **kw}
    if name.endswith("Encoder"):  # VLM towers have no classifier
        del args["num_classes"]
    return getattr(importlib.import_module(f"timm.models.{module}"), name)(**args)


def rms_norm():
    from timm.layers import RmsNorm

    return RmsNorm


def gemma4(**kw):
    """Gemma 4 fixes no size itself: the converter reads pretrained_cfg's input_size (as registered models have)."""
    model = family("gemma4_vit.Gemma4VitEncoder", **kw)
    model.pretrained_cfg = {"input_size": (3, *kw["img_size"]), "mean": (0.0,) * 3, "std": (1.0,) * 3}
    return model


PEERS = {  # name -> a builder of a tiny model of that family
    "eva_cls_reg_rope_dynamic": lambda: eva(num_reg_tokens=2, use_rot_pos_emb=True, dynamic_img_size=True),
    "eva_no_embed_class_pre_norm": lambda: eva(num_reg_tokens=3, no_embed_class=True, use_pre_transformer_norm=True,
                                               img_size=(24, 40), patch_size=(8, 4)),
    "eva_rms_pre_norm": lambda: eva(use_pre_transformer_norm=True, norm_layer=rms_norm()),
    "eva_rope_only_no_cls": lambda: eva(class_token=False, global_pool="avg", use_abs_pos_emb=False,
                                        use_rot_pos_emb=True, dynamic_img_size=True),
    "beit_abs_pos": lambda: family("beit.Beit", use_abs_pos_emb=True, use_rel_pos_bias=True),
    "beit_shared_rel_pos_only": lambda: family("beit.Beit", use_abs_pos_emb=False, use_shared_rel_pos_bias=True),
    "cait": lambda: family("cait.Cait", depth_token_only=1),
    "convit_cls_late": lambda: family("convit.ConVit", local_up_to_layer=1),
    "convit_cls_first": lambda: family("convit.ConVit", local_up_to_layer=0),
    "relpos_cls": lambda: family("vision_transformer_relpos.VisionTransformerRelPos", class_token=True,
                                 global_pool="token"),
    "relpos_no_cls": lambda: family("vision_transformer_relpos.VisionTransformerRelPos"),
    "qwen3_encoder_table_3x3": lambda: family("qwen3_vit.Qwen3VitEncoder", pos_embed_grid_size=3),
    "deepseek_encoder_rope_only": lambda: family("deepseek_vit.DeepseekVitEncoder", global_pool="avg"),
    "gemma4_encoder_fixed_size": lambda: gemma4(img_size=(32, 48), position_embedding_size=8, global_pool="avg"),
    "sam_pre_norm": lambda: family("vision_transformer_sam.VisionTransformerSAM", pre_norm=True, neck_chans=0,
                                   window_size=2, use_rel_pos=True, img_size=(32, 48)),
}


def first_block_input(model, x: np.ndarray) -> np.ndarray:
    """The tensor model.forward_features feeds blocks[0], as (B, tokens, D) (SAM's NHWC grid row-major)."""
    import torch

    seen = []
    hook = model.blocks[0].register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    try:
        with torch.no_grad():
            model.forward_features(torch.from_numpy(x))
    finally:
        hook.remove()
    z = seen[0]
    return z.reshape(z.shape[0], -1, z.shape[-1]).numpy()
