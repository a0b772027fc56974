"""Whole-model rows of the conformance report (vitstem conform --whole-models)."""

import json

import pytest

from vitstem.cli import main

pytestmark = pytest.mark.slow


def test_conform_whole_models_adds_passing_rows_per_peer_size_and_output(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["conform", "vitstem_tiny_test", "--engines", "numpy", "--profiles", "fast", "--precisions", "fp32",
                 "--whole-models", "--json", str(out), "-q"]) == 0
    report = json.loads(out.read_text())
    rows = report["whole_models"]
    peers = {r["engines"][1] for r in rows}
    assert peers == {"timm VisionTransformer forward", "transformers ViTModel forward", "transformers DeiTModel forward"}
    sizes = {tuple(r["image_size"]) for r in rows}
    assert sizes == {(32, 32), (48, 40), (24, 24)}  # native, larger non-square, smaller
    assert len(rows) == 3 * (1 + 2 + 2)  # timm: output; transformers: last_hidden_state + pooler_output, per size
    for r in rows:  # the target: max|d| <= 1e-4 * max(1, max|ref|)
        assert r["passed"] and r["rel"] <= 1e-4 and r["max_abs_diff"] <= r["bound"]
    assert report["verdict"] == "pass" and "whole models" in capsys.readouterr().out
