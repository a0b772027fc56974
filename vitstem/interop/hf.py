"""transformers vision models (PyTorch) -> (spec, weights), for every family in hf_families.

z0 is what the first encoder layer receives: the embeddings module's output (conv patchify, the
prefix tokens, the table, dropout = identity in eval) and, where the vision model has one, the
LayerNorm after it (CLIP's `pre_layrnorm`). Mask tokens only act with `bool_masked_pos`, which
z0 does not use. ViTMAE: only mask_ratio 0 keeps every patch, and its forward still shuffles the
patch tokens by random `noise`; the spec's z0 is the unshuffled order, which ViTMAE gives with an
increasing `noise` (e.g. `noise=torch.arange(N).expand(B, N)`).
The conv drops the pixels past the last whole patch: an image_size that is not a multiple of the
patch gets input.remainder "drop" (and so does ViT/DeiT with interpolate_pos_encoding, whose conv
then drops them at every size; other families keep "refuse" at other sizes until checked).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import SpecError
from ..spec import Spec
from .assemble import assemble, checked_preprocess, preprocess_doc
from .checkpoint_shapes import pair
from .hf_families import BY_EMBEDDINGS, FAMILIES, REFUSED, HfFamily
from .hf_stem import native_sincos, resample_facts

# ViTImageProcessor's defaults; other processors save their mean/std in preprocessor_config.json.
_DEFAULT_PROCESSORS = ("ViTImageProcessor", "ViTImageProcessorFast", "ViTFeatureExtractor")


def processor_preprocess(processor, channels: int) -> dict | None:
    """{scale, mean, std} from an image processor object, its preprocessor_config.json dict or ConfigFields.

    do_rescale / do_normalize are honoured. A missing mean/std takes ViTImageProcessor's default
    (0.5) only for that processor (or a dict that names none); other processors' defaults differ,
    so a dict of another processor without them is refused. Resizing and cropping are outside the stem.
    Every field is read typed (SpecError naming it).
    """
    from .config_fields import ConfigFields

    if processor is None:
        return None
    fields = processor if isinstance(processor, ConfigFields) else ConfigFields(processor, "the image processor")
    scale = fields.number("rescale_factor", 1 / 255, positive=True) if fields.boolean("do_rescale", True) else 1.0
    if fields.boolean("do_normalize", True):
        kind = fields.text("image_processor_type") or fields.text("feature_extractor_type")
        missing = fields.raw("image_mean") is None or fields.raw("image_std") is None
        if kind not in (None, *_DEFAULT_PROCESSORS) and missing:
            raise SpecError(f"the {kind} preprocessor config gives no image_mean/image_std, and its defaults are not "
                            "ViT's: pass the preprocessing explicitly (--mean/--std)")
        mean = fields.numbers("image_mean", [0.5] * channels, channels)
        std = fields.numbers("image_std", [0.5] * channels, channels, positive=True)
    else:
        mean, std = [0.0] * channels, [1.0] * channels
    return checked_preprocess(preprocess_doc(scale, mean, std), channels)


def _attr(obj, dotted: str | None):
    for part in (dotted.split(".") if dotted else ()):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj if dotted else None


def _embeddings(model) -> tuple[object, HfFamily, object | None]:
    """(embeddings module, its family, the module holding it as `embeddings` or None)."""
    found = [(path, m) for path, m in (model.named_modules() if hasattr(model, "named_modules") else [("", model)])
             if type(m).__name__ in BY_EMBEDDINGS or type(m).__name__ in REFUSED]
    if not found:
        known = ", ".join(f.family for f in FAMILIES)
        raise SpecError(f"{type(model).__name__} holds no transformers vision embeddings with a ViT stem "
                        f"(known families: {known})")
    if len({id(m) for _, m in found}) > 1:
        raise SpecError(f"{type(model).__name__} holds several vision embeddings ({', '.join(p for p, _ in found)}): "
                        "pass the one to convert")
    path, emb = found[0]
    name = type(emb).__name__
    if name in REFUSED:
        family, peer, reason = REFUSED[name]
        raise SpecError(f"{family} ({peer}) cannot be converted: {reason}")
    parent = None
    if path:
        holder = model.get_submodule(path.rpartition(".")[0]) if "." in path else model
        parent = holder if getattr(holder, "embeddings", None) is emb else None
    return emb, BY_EMBEDDINGS[name], parent


def _config(*modules):
    for module in modules:
        config = getattr(module, "config", None)
        if config is not None:
            return getattr(config, "vision_config", None) or config
    return None


def _pre_norm(module, d: int, what: str):
    """(weight, bias, eps) of a LayerNorm over D, ones/zeros where it has no affine parameters."""
    if tuple(getattr(module, "normalized_shape", ())) != (d,) or not hasattr(module, "eps"):
        raise SpecError(f"{what} is {type(module).__name__}, not a LayerNorm over the {d} features")
    weight = module.weight if getattr(module, "weight", None) is not None else np.ones(d, np.float32)
    bias = module.bias if getattr(module, "bias", None) is not None else np.zeros(d, np.float32)
    return weight, bias, float(module.eps)


def from_hf(model, *, interpolate_pos_encoding: bool | None = None, image_processor=None,
            name: str | None = None) -> tuple[Spec, dict[str, np.ndarray]]:
    """(spec, canonical weights) reproducing z0 of a transformers vision model (see hf_families).

    model: a bare vision model (ViTModel, CLIPVisionModel, Dinov2Model, ...), a wrapper holding
    one (…ForImageClassification, CLIPModel: its vision_model) or the embeddings module itself
    (then without the pre-norm that sits beside it).
    interpolate_pos_encoding: whether the spec accepts other image sizes (dynamic_image_size),
    resampling as the family does. None (default): as the model does by default, i.e. False for
    the families that need the forward's `interpolate_pos_encoding=True`, True for those that
    always resample (Dinov2, BEiT) or have no table (DINOv3).
    image_processor: an image processor object (or its preprocessor_config.json dict) whose
    rescale/normalise become the spec's preprocessing; without it the spec takes normalised floats.
    """
    emb, fam, parent = _embeddings(model)
    what = type(emb).__name__
    conv = _attr(emb, fam.kernel)
    kernel = getattr(conv, "weight", None)
    if kernel is None or len(kernel.shape) != 4:
        raise SpecError(f"{what}.{fam.kernel} is not a 2-D conv")
    d, c, ph, pw = kernel.shape
    padding = getattr(conv, "padding", (0, 0))
    if (tuple(conv.stride) != (ph, pw) or (padding != "valid" and any(padding)) or conv.groups != 1
            or any(x != 1 for x in conv.dilation)):
        raise SpecError(f"{what}.{fam.kernel}: the patch projection is not a conv with kernel = stride, no padding")
    config = _config(emb, parent, model)
    if fam.family == "ViTMAE" and float(getattr(config, "mask_ratio", 0.0)) != 0.0:
        raise SpecError(f"ViTMAE with mask_ratio {config.mask_ratio}: random masking drops patch tokens, so z0 is not "
                        "a function of the image; set config.mask_ratio = 0")
    native = native_sincos(fam, config)  # AIMv2 is_native: sin-cos at every size, no learned table
    if native:
        fam = dataclasses.replace(fam, when="any")
    image_size = pair(getattr(emb, "image_size", None) or _attr(emb, "patch_embeddings.image_size")
                       or getattr(config, "image_size", None))
    if image_size is None:
        raise SpecError(f"{what}: no image_size on the module or its config")
    table = _attr(emb, fam.table)
    registers = _attr(emb, fam.registers)
    if table is not None and fam.table_skips_registers and registers is not None:
        import torch  # a live model: torch is there

        table = torch.cat([table[:, :1], torch.zeros_like(registers), table[:, 1:]], dim=1)
    norm_module = _attr(parent, fam.pre_norm) if parent is not None else None
    pre_norm = _pre_norm(norm_module, d, f"{type(parent).__name__}.{fam.pre_norm}") if norm_module is not None else None
    patch_norm = _attr(emb, fam.patch_norm)
    if patch_norm is not None:  # Aimv2RMSNorm: weight * x * rsqrt(mean(x^2) + eps), no bias
        patch_norm = ("rms_norm", patch_norm.weight, None, float(patch_norm.variance_epsilon))
    dynamic = resample_facts(fam, table is not None, interpolate_pos_encoding, image_size, (ph, pw), what)
    default_name = getattr(config, "_name_or_path", "") or getattr(config, "model_type", "") or "hf_vit"
    return assemble(
        name=name or default_name, kernel=kernel, bias=conv.bias, image_size=image_size,
        cls=_attr(emb, fam.cls), dist=_attr(emb, fam.dist), reg=registers, pos=table, covers_prefix=True,
        pre_norm=pre_norm, patch_norm=patch_norm, preprocess=processor_preprocess(image_processor, c), resample=fam.resample,
        dynamic_image_size=dynamic, sincos="mae" if native else None,
        remainder=conv_remainder(image_size, (ph, pw), dynamic and (native or fam.family in ("ViT", "DeiT"))))


def conv_remainder(image_size, patch, other_sizes: bool) -> str:
    """input.remainder of a peer whose only patchify is a strided conv (no size check beyond the
    model's image_size): it drops the pixels past the last whole patch at image_size, and at every
    size when it accepts others (`other_sizes`). "refuse" where that never happens."""
    return "drop" if other_sizes or any(s % p for s, p in zip(image_size, patch)) else "refuse"
