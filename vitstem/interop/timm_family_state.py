"""timm family state dicts without timm: what a checkpoint's keys say about its stem, and the way back.

Reading (`vitstem import --format timm`): the stem keys are VisionTransformer's (patch_embed.proj.*,
cls_token, reg_token, pos_embed, norm_pre.*) in every family; what differs is read off the other keys:
- `blocks_token_only.*` (Cait): the class token joins after every block, so it is not in z0.
- `blocks.N.attn.gating_param` (ConVit's GPSA blocks, N < local_up_to_layer): the class token is
  prepended after them, so it is not in z0. (A ConVit with no GPSA block reads as cls + a table
  without a class row, which it is.)
- a 4-D pos_embed (1, gh, gw, D) (VisionTransformerSAM): flattened row-major, grid (gh, gw); SAM
  resamples it at any size (`timm` policy), so the spec is dynamic.
- config.json `architecture` qwen3_vit_*: the square table is resampled bilinearly with
  align_corners (`big_vision` policy) to every grid; the model takes any size.
Writing: `to_timm_family_state_dict` gives the stem keys a family's model loads (strict=False).
"""

from __future__ import annotations

import re
from typing import Mapping

import numpy as np

from ..backends.torch.names import CANONICAL_NAMES, TIMM_NAMES
from ..errors import SpecError
from ..spec import Spec, check_weights, load_spec
from .timm import timm_expressible, to_timm_state_dict

_GPSA = re.compile(r"blocks\.\d+\.attn\.gating_param$")


def family_checkpoint_facts(state: Mapping[str, np.ndarray], architecture: str) -> tuple[dict, dict]:
    """(the stem tensors of `state` (prefix stripped) as z0 sees them, extra import facts);
    `architecture`: config.json's, "" when unknown. Only the stem's tensors are looked up (read)."""
    names = list(state)
    facts: dict = {}
    state = {k: state[k] for k in names if k in CANONICAL_NAMES}
    if any(k.startswith("blocks_token_only.") for k in names) or any(_GPSA.search(k) for k in names):
        state.pop("cls_token", None)  # Cait / ConVit: joins after the first block(s)
    pos = state.get("pos_embed")
    if pos is not None and pos.ndim == 4:  # SAM: (1, gh, gw, D) grid
        facts.update(grid=(int(pos.shape[1]), int(pos.shape[2])), dynamic_image_size=True)
        state["pos_embed"] = np.ascontiguousarray(pos).reshape(1, -1, pos.shape[-1])
    if architecture.startswith("qwen3_vit"):
        facts.update(resample="big_vision", dynamic_image_size=True)
    return state, facts


# family -> (what its stem cannot hold: spec test -> reason)
_LIMITS = {
    "Eva": (),
    "Beit": ((lambda s: not s.prefix.class_token or s.prefix.register_tokens, "prefix", "Beit has exactly one class token"),
             (lambda s: s.position_embedding.kind != "none" and not s.position_embedding.covers_prefix,
              "position_embedding.covers_prefix", "Beit's table always has a class row")),
    "Cait": ((lambda s: s.num_prefix_tokens, "prefix", "Cait's z0 has no prefix tokens (its class token joins later)"),),
    "ConVit": ((lambda s: s.num_prefix_tokens, "prefix", "ConVit's class token joins after its GPSA blocks"),),
    "VisionTransformerRelPos": (
        (lambda s: s.prefix.register_tokens, "prefix.register_tokens", "VisionTransformerRelPos has no registers"),
        (lambda s: s.position_embedding.kind != "none", "position_embedding.kind",
         "VisionTransformerRelPos has no absolute table")),
    "VisionTransformerSAM": ((lambda s: s.num_prefix_tokens, "prefix", "VisionTransformerSAM has no prefix tokens"),),
}
_NO_PRE_NORM = ("Beit", "Cait", "ConVit", "VisionTransformerRelPos")
_FIXED_SIZE = ("Beit", "Cait", "ConVit", "VisionTransformerRelPos")


def timm_family_expressible(spec: Spec, family: str) -> None:
    """SpecError unless timm's `family` class can hold this stem with the same z0."""
    if family not in _LIMITS:
        raise SpecError(f"family must be one of {', '.join(_LIMITS)}, got {family!r}")
    problems = [(path, reason) for test, path, reason in _LIMITS[family] if test(spec)]
    if family in _NO_PRE_NORM and spec.pre_norm is not None:
        problems.append(("pre_norm", f"{family} has no norm before its blocks"))
    if family in _FIXED_SIZE and spec.dynamic_image_size:
        problems.append(("dynamic_image_size", f"{family} takes only its own image size"))
    if spec.prefix.dist_token:
        problems.append(("prefix.dist_token", f"{family} has no distillation token"))
    if spec.patch_norm is not None:
        problems.append(("patch_norm", f"{family} has no norm after the patch projection"))
    if problems:
        raise SpecError(problems)
    timm_expressible(spec)  # the VisionTransformer rules: native grid, no bias with pre-norm, policy, NCHW


def to_timm_family_state_dict(spec, weights: Mapping[str, np.ndarray], family: str) -> dict[str, np.ndarray]:
    """The stem keys of a timm `family` model (Eva, Beit, Cait, ConVit, VisionTransformerRelPos,
    VisionTransformerSAM) holding these weights; load with `load_state_dict(..., strict=False)`.

    Cait and ConVit keep their own class token (it is not part of z0). SpecError when the family
    cannot express the spec (see `timm_family_expressible`).
    """
    spec = load_spec(spec)
    weights = check_weights(weights, spec)
    timm_family_expressible(spec, family)
    state = to_timm_state_dict(spec, weights)
    if spec.position_embedding.kind == "none":
        state.pop(TIMM_NAMES["pos_embed"], None)
    if family == "VisionTransformerSAM" and TIMM_NAMES["pos_embed"] in state:
        gh, gw = spec.patch_grid()
        state[TIMM_NAMES["pos_embed"]] = state[TIMM_NAMES["pos_embed"]].reshape(1, gh, gw, spec.embed_dim)
    return state
