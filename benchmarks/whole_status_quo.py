"""The status quo, measured: torch.onnx.export(dynamo=True) of a whole ViT with dynamic H, W vs vitstem.deploy.

Tiny random models (depth 1, D 32, patch 8, native 32x32; no download): timm with dynamic_img_size=True,
transformers ViTModel and DeiTModel with interpolate_pos_encoding=True. Each is exported both ways
(dynamic batch, H and W; dynamo: H, W as multiples of the patch), then run in ONNX Runtime at the
export size and two others; each cell says whether it ran and max |output - PyTorch| / max(1, max |PyTorch|).

    .venv/bin/python benchmarks/whole_status_quo.py --json benchmarks/results/whole_status_quo.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
SIZES = [(32, 32), (48, 40), (16, 40)]


def models():
    import timm
    import torch
    from transformers import DeiTConfig, DeiTModel, ViTConfig, ViTModel

    torch.manual_seed(0)
    cfg = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=64)
    yield "timm VisionTransformer (dynamic_img_size)", timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2,
        num_classes=5, dynamic_img_size=True).eval()
    yield "transformers ViTModel (interpolate_pos_encoding)", ViTModel(ViTConfig(**cfg)).eval()
    yield "transformers DeiTModel (interpolate_pos_encoding)", DeiTModel(DeiTConfig(**cfg)).eval()


def peer(model, x):
    import torch

    with torch.no_grad():
        if type(model).__module__.startswith("timm"):
            return model(x).numpy()
        return model(x, interpolate_pos_encoding=True).last_hidden_state.numpy()


def dynamo_export(model, path):
    import torch

    class Whole(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, x):
            if type(model).__module__.startswith("timm"):
                return self.m(x)
            return self.m(x, interpolate_pos_encoding=True).last_hidden_state

    gh, gw = torch.export.Dim("gh", min=1, max=64), torch.export.Dim("gw", min=1, max=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Whole().eval(), (torch.randn(2, 3, 32, 32),), str(path), dynamo=True, verbose=False,
                          input_names=["x"], dynamic_shapes=({0: torch.export.Dim("batch"), 2: 8 * gh, 3: 8 * gw},))


def run_cells(run, model):
    import numpy as np

    cells = {}
    for hw in SIZES:
        x = np.random.default_rng(1).standard_normal((2, 3, *hw)).astype(np.float32)
        want = peer(model, __import__("torch").from_numpy(x))
        try:
            got = run(x)
            cells[f"{hw[0]}x{hw[1]}"] = {"ran": True, "rel": float(np.abs(got - want).max() / max(1, np.abs(want).max()))}
        except Exception as exc:  # ORT's failure at a size the graph baked in is the finding
            cells[f"{hw[0]}x{hw[1]}"] = {"ran": False, "error": str(exc).strip().splitlines()[0][:160]}
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json")
    args = parser.parse_args()
    import onnxruntime as ort

    import vitstem.runtime
    from vitstem.deploy import export_model

    tmp = Path(tempfile.mkdtemp(prefix="vitstem-statusquo-"))
    rows = []
    for name, model in models():
        row = {"model": name}
        t = time.perf_counter()
        try:
            dynamo_export(model, tmp / "d.onnx")
            row["dynamo_export_s"] = time.perf_counter() - t
            s = ort.InferenceSession(str(tmp / "d.onnx"), providers=["CPUExecutionProvider"])
            row["dynamo"] = run_cells(lambda x: s.run(None, {"x": x})[0], model)
        except Exception as exc:
            row["dynamo"] = {"export": {"ran": False, "error": str(exc).strip().splitlines()[0][:160]}}
        t = time.perf_counter()
        export_model(model, tmp / "v.onnx", image_size="dynamic", preprocess=None)
        row["vitstem_export_s"] = time.perf_counter() - t
        m = vitstem.runtime.load(tmp / "v.onnx")
        row["vitstem"] = run_cells(lambda x: next(iter(m(x).values())), model)
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
