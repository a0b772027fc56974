"""timm's ViT-family registry, built cheaply: the sweep test and benchmarks/timm_registry_sweep.py use it.

A registered name is built on the meta device with depth 1 (the stem does not depend on depth), then
materialised uninitialised on the CPU (`to_empty`) and given random stem parameters; the blocks stay
garbage because only the tensor entering blocks[0] is looked at (a pre-hook captures it and stops
the forward there). Nothing is downloaded.
"""

from __future__ import annotations

import numpy as np

# timm modules whose models have a ViT-style patch stem (their registered names are "the ViT family").
VIT_MODULES = ("vision_transformer", "deit", "eva", "beit", "cait", "convit", "vision_transformer_relpos",
               "vision_transformer_sam", "vision_transformer_hybrid", "naflexvit", "qwen3_vit", "gemma4_vit",
               "deepseek_vit", "vitamin")


def vit_family_names() -> list[str]:
    import timm
    from timm.models._registry import _model_to_module

    return sorted(n for n in timm.list_models() if _model_to_module.get(n) in VIT_MODULES)


class _Captured(Exception):
    pass


def build(name: str, seed: int = 0):
    """The registered model `name` (depth 1 where it takes that argument), eval mode, random stem parameters."""
    import timm
    import torch

    model = None
    for extra in ({"depth": 1}, {}):
        try:
            with torch.device("meta"):
                model = timm.create_model(name, pretrained=False, num_classes=0, **extra)
            break
        except (TypeError, AssertionError, ValueError, IndexError, KeyError):
            continue
    if model is None:
        raise RuntimeError(f"{name}: cannot be built on the meta device")
    model = model.to_empty(device="cpu")
    for module in model.modules():  # index tables and rope frequencies are buffers, not parameters
        if hasattr(module, "init_non_persistent_buffers"):
            module.init_non_persistent_buffers()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if ".blocks." not in f".{pname}":
                p.copy_(torch.randn(p.shape, generator=gen) * (0.5 if "proj.weight" in pname else 1.0))
    return model.eval()


def first_block_input(model, x: np.ndarray) -> np.ndarray:
    """What model.forward_features feeds blocks[0], as (B, tokens, D); the forward stops there."""
    import torch

    seen = []

    def stop(module, args):
        seen.append(args[0].detach().clone())
        raise _Captured

    from vitstem.interop.timm_families import stem_module

    hook = stem_module(model).blocks[0].register_forward_pre_hook(stop)
    try:
        with torch.no_grad():
            model.forward_features(torch.from_numpy(x))
    except _Captured:
        pass
    finally:
        hook.remove()
    z = seen[0]
    return z.reshape(z.shape[0], -1, z.shape[-1]).numpy()


def stem_key(model) -> tuple:
    """The facts that make a stem configuration distinct (model class, sizes, tokens, table, norms, dynamic, preprocessing)."""
    pe = getattr(model, "patch_embed", None)
    proj = getattr(pe, "proj", None)
    cfg = getattr(model, "pretrained_cfg", None) or {}

    def shape(t):
        return None if t is None else tuple(t.shape)

    def kind(m):
        return None if m is None else type(m).__name__

    return (type(model).__name__, kind(pe), tuple(getattr(pe, "img_size", None) or ()),
            tuple(getattr(pe, "patch_size", None) or ()), shape(getattr(proj, "weight", None)),
            getattr(proj, "bias", None) is not None, shape(getattr(model, "cls_token", None)),
            shape(getattr(model, "reg_token", None)), shape(getattr(model, "dist_token", None)),
            shape(getattr(model, "pos_embed", None)), getattr(model, "no_embed_class", None),
            kind(getattr(model, "norm_pre", None)), kind(getattr(pe, "norm", None)),
            getattr(model, "dynamic_img_size", None), getattr(pe, "strict_img_size", None),
            getattr(model, "local_up_to_layer", None), tuple(cfg.get("mean", ())), tuple(cfg.get("std", ())))


def check_native(name: str) -> tuple[tuple, str | None]:
    """(stem key, None if from_timm converts `name` and our fast z0 is within twice the bound of the
    peer's at its native size, else the refusal message)."""
    import vitstem
    from vitstem.backends.numpy.bound import fast_error_bound
    from vitstem.interop import from_timm

    model = build(name)
    key = stem_key(model)
    try:
        spec, weights = from_timm(model)
    except vitstem.VitstemError as exc:
        return key, str(exc)
    pixels = np.random.default_rng(0).integers(0, 256, spec.input_shape(1), dtype=np.uint8)
    pre = spec.input.preprocess
    x = pixels.astype(np.float32)
    if pre is not None:  # timm's own eval pipeline: pixels / 255, then pretrained_cfg's mean and std
        cfg, shape = model.pretrained_cfg, (1, -1, 1, 1)
        x = (x / np.float32(255) - np.float32(cfg["mean"]).reshape(shape)) / np.float32(cfg["std"]).reshape(shape)
    peer = first_block_input(model, x.astype(np.float32))
    ours = vitstem.forward(spec, weights, pixels if pre is not None else x, profile="fast")
    bound = fast_error_bound(spec, weights, pixels if pre is not None else x)
    excess = np.abs(peer.astype(np.float64) - ours) - 2 * bound
    assert np.all(excess <= 0), f"{name}: converted but z0 is off by {excess.max():.3g} beyond twice the bound"
    return key, None
