"""Whole-model rows of the conformance report: vitstem.deploy files in ONNX Runtime vs each peer's own forward.

Small seeded peers (depth 1, D 32, patch 8, native 32x32; random weights, nothing downloaded), one per
family that exports today, each exported with image_size="dynamic" and verified at the native size, a
larger non-square and a smaller size (vitstem.deploy.verify; bound: TOLERANCE[precision] * max(1, max|ref|)).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

PEERS = ("timm VisionTransformer", "transformers ViTModel", "transformers DeiTModel")
PIXELS = {"scale": 1 / 255, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}


def build_peer(name: str, seed: int = 0):
    import torch

    torch.manual_seed(seed)
    if name == "timm VisionTransformer":
        import timm

        return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, embed_dim=32,
                                 depth=1, num_heads=2, num_classes=5, dynamic_img_size=True).eval()
    from transformers import DeiTConfig, DeiTModel, ViTConfig, ViTModel

    cls, config = {"transformers ViTModel": (ViTModel, ViTConfig),
                   "transformers DeiTModel": (DeiTModel, DeiTConfig)}[name]
    return cls(config(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=64)).eval()


def whole_model_rows(peers=PEERS, precisions=("fp32",), seed: int = 0) -> list[dict]:
    """One row per (peer, precision, size, output), with the report's field names."""
    from ..deploy import export_model, verify

    rows = []
    with tempfile.TemporaryDirectory(prefix="vitstem-whole-") as tmp:
        for name in peers:
            model = build_peer(name, seed)
            for precision in precisions:
                path = export_model(model, Path(tmp) / "m.onnx", image_size="dynamic", precision=precision,
                                    preprocess=PIXELS)
                for r in verify(model, path, seed=seed):
                    rows.append({"engines": ["onnxruntime (whole model)", f"{name} forward"], "precision": precision,
                                 "image_size": r["size"], "output": r["output"], "max_abs_diff": r["max_abs"],
                                 "bound": r["bound"], "max_ratio": r["max_abs"] / r["bound"], "rel": r["rel"],
                                 "passed": r["passed"]})
    return rows


def table(rows) -> list[str]:
    lines = ["whole models (vitstem.deploy file in ONNX Runtime vs the peer's forward):"]
    for r in rows:
        size = f"{r['image_size'][0]}x{r['image_size'][1]}"
        lines.append(f"  {r['engines'][1]:<36} {r['precision']:<5} {size:>7} {r['output']:<18} "
                     f"max|d| {r['max_abs_diff']:.3g}  {r['max_ratio']:.3g} of bound  {'pass' if r['passed'] else 'FAIL'}")
    return lines
