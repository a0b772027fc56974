"""transformers ViT / DeiT (PyTorch) -> (spec, weights).

The stem is `ViTEmbeddings.forward` / `DeiTEmbeddings.forward`: conv patchify, [cls (, dist)]
prepended, the table (which covers the prefix slots) added, dropout (identity in eval). Neither
model has a norm before the encoder. `interpolate_pos_encoding=True` resamples the patch rows
with F.interpolate(bicubic, align_corners=False), no antialias: the `hf_pytorch` policy, from a
grid HF assumes square. The mask token only acts with `bool_masked_pos`, which z0 does not use.
The conv drops the pixels past the last whole patch (an image_size that is not a multiple of the
patch, or any size with interpolate_pos_encoding): the spec's input.remainder is then "drop".
"""

from __future__ import annotations

import numpy as np

from ..errors import SpecError
from ..spec import Spec
from .assemble import assemble, checked_preprocess, preprocess_doc

_KNOWN = ("ViTEmbeddings", "DeiTEmbeddings")


def _embeddings(model):
    """The embeddings module of a ViTModel/DeiTModel (or a model wrapping one), or the module itself."""
    for candidate in (model, getattr(model, "embeddings", None), getattr(getattr(model, "vit", None), "embeddings", None),
                      getattr(getattr(model, "deit", None), "embeddings", None)):
        if candidate is not None and type(candidate).__name__ in _KNOWN:
            return candidate
    raise SpecError(f"{type(model).__name__} is not a transformers ViT/DeiT model or embeddings module "
                    f"(expected {', '.join(_KNOWN)} or a model holding one)")


def processor_preprocess(processor, channels: int) -> dict | None:
    """{scale, mean, std} from a ViTImageProcessor-like object or its preprocessor_config.json dict.

    do_rescale / do_normalize are honoured; missing fields take ViTImageProcessor's defaults
    (rescale 1/255, mean = std = 0.5). Resizing and cropping are outside the stem.
    """
    if processor is None:
        return None
    get = processor.get if isinstance(processor, dict) else lambda key, default: getattr(processor, key, default)
    scale = float(get("rescale_factor", 1 / 255)) if get("do_rescale", True) else 1.0
    if get("do_normalize", True):
        mean, std = get("image_mean", 0.5), get("image_std", 0.5)
        mean = [mean] * channels if np.isscalar(mean) else list(mean)
        std = [std] * channels if np.isscalar(std) else list(std)
    else:
        mean, std = [0.0] * channels, [1.0] * channels
    return checked_preprocess(preprocess_doc(scale, mean, std), channels)


def from_hf(model, *, interpolate_pos_encoding: bool = False, image_processor=None,
            name: str | None = None) -> tuple[Spec, dict[str, np.ndarray]]:
    """(spec, canonical weights) reproducing the embeddings output of a transformers ViT/DeiT.

    interpolate_pos_encoding: the spec accepts other image sizes (dynamic_image_size) and
    resamples as HF does when called with interpolate_pos_encoding=True.
    image_processor: a ViTImageProcessor-like object whose rescale/normalise become the spec's
    preprocessing; without it the spec takes the processor's output (normalised floats).
    """
    emb = _embeddings(model)
    conv = emb.patch_embeddings.projection
    kernel = conv.weight
    d, c, ph, pw = kernel.shape
    if tuple(conv.stride) != (ph, pw) or any(conv.padding) or conv.groups != 1:
        raise SpecError(f"{type(emb).__name__}: the patch projection is not a conv with kernel = stride")
    image_size = tuple(int(s) for s in emb.image_size)
    grid = (image_size[0] // ph, image_size[1] // pw)
    if interpolate_pos_encoding:
        if not isinstance(emb.patch_size, int):
            raise SpecError(f"{type(emb).__name__}: interpolate_pos_encoding divides by an int patch size; "
                            f"this model has patch_size={emb.patch_size!r}")
        if grid[0] != grid[1]:
            raise SpecError(f"{type(emb).__name__}: interpolate_pos_encoding assumes a square table grid; "
                            f"this model's grid is {grid[0]}x{grid[1]}")
    dist = getattr(emb, "distillation_token", None)
    config = getattr(model, "config", None)
    default_name = getattr(config, "_name_or_path", "") or getattr(config, "model_type", "") or "hf_vit"
    return assemble(
        name=name or default_name, kernel=kernel, bias=conv.bias, image_size=image_size,
        cls=emb.cls_token, dist=dist, pos=emb.position_embeddings, covers_prefix=True,
        preprocess=processor_preprocess(image_processor, c), resample="hf_pytorch",
        dynamic_image_size=interpolate_pos_encoding,
        remainder=conv_remainder(image_size, (ph, pw), interpolate_pos_encoding))


def conv_remainder(image_size, patch, other_sizes: bool) -> str:
    """input.remainder of a peer whose only patchify is a strided conv (no size check beyond the
    model's image_size): it drops the pixels past the last whole patch at image_size, and at every
    size when it accepts others (interpolate_pos_encoding). "refuse" where that never happens."""
    return "drop" if other_sizes or any(s % p for s, p in zip(image_size, patch)) else "refuse"
