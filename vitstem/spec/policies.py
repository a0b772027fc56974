"""Named resampling policies: how each peer library resizes a learned position table.

Each reproduces the peer's own call exactly (see tests/test_policies.py, which runs the peer):
- timm `resample_abs_pos_embed`: F.interpolate(bicubic, antialias=True, align_corners=False);
  PyTorch's antialiased bicubic uses a = -0.5 and only in-range taps, renormalised.
- hf_pytorch, transformers ViT `interpolate_pos_encoding`: F.interpolate(bicubic, align_corners=False),
  no antialias, so a = -0.75 with the border index clamped (edge replicated). In transformers 5.24 every
  vision family with an absolute table makes this same call on the patch rows (size=(H // P, W // P),
  class row split off; DINOv2 in float32, having dropped its old +0.1 scale_factor offset; CLIP, SigLIP,
  BLIP, OwlViT, MetaCLIP2, BEiT, Data2Vec, ViTMAE, ViTMSN, IJepa and the CLIP/BLIP copies in the table's dtype), except
  Dinov2WithRegisters, which adds antialias=True in float32: timm's call, hence the `timm` policy
  (see vitstem/interop/hf_families.py; tests/test_interop_hf_families.py checks each against the peer).
- hf_tensorflow, transformers 4.x TF ViT: tf.image.resize(bicubic) (TF's ResizeBicubic kernel): Keys
  a = -0.5, half-pixel centres, out-of-range taps dropped and the rest renormalised, and the
  sub-pixel position rounded to 1/1024 (its coefficient table), hence phase_steps = 1024.
- hf_dpt, transformers 5.24 DPT `DPTViTEmbeddings._resize_pos_embed`: F.interpolate(mode="bilinear"),
  align_corners=False, no antialias, on every forward (the patch rows; the class row split off).
- big_vision `resample_posemb`: scipy.ndimage.zoom(order=1): linear, corner-aligned.
"""

from __future__ import annotations

POLICY_FIELDS = ("mode", "cubic_coeff_a", "antialias", "coordinates", "exclude_outside", "phase_steps")

NAMED_POLICIES: dict[str, dict] = {
    "timm": dict(mode="bicubic", cubic_coeff_a=-0.5, antialias=True, coordinates="half_pixel", exclude_outside=True, phase_steps=None),
    "hf_pytorch": dict(mode="bicubic", cubic_coeff_a=-0.75, antialias=False, coordinates="half_pixel", exclude_outside=False, phase_steps=None),
    "hf_tensorflow": dict(mode="bicubic", cubic_coeff_a=-0.5, antialias=False, coordinates="half_pixel", exclude_outside=True, phase_steps=1024),
    "hf_dpt": dict(mode="bilinear", cubic_coeff_a=-0.75, antialias=False, coordinates="half_pixel", exclude_outside=False, phase_steps=None),
    "big_vision": dict(mode="bilinear", cubic_coeff_a=-0.75, antialias=False, coordinates="align_corners", exclude_outside=False, phase_steps=None),
}
