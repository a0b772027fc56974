"""Whole-model files: `vitstem compose` (and its refusals), `vitstem check`, the runtime, `vitstem deploy` from files."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

import vitstem.runtime
from support.import_blocker import BLOCKER
from support.whole_models import hf_vit, normalised, pixels, timm_vit
from vitstem.cli import main
from vitstem.deploy import compose, export_model
from vitstem.errors import ExportError
from vitstem.export import check_onnx, export_onnx
from vitstem.interop import from_timm

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def timm_parts(tmp_path_factory):
    """A tiny timm ViT, its stem exported by vitstem (opset 18) and its encoder by torch.onnx (opset 17)."""
    tmp = tmp_path_factory.mktemp("compose")
    model = timm_vit(depth=1, dynamic_img_size=True)
    spec, weights = from_timm(model)
    stem = export_onnx(spec, weights, tmp / "stem.onnx", image_size="dynamic")
    fixed_stem = export_onnx(spec, weights, tmp / "fixed.onnx")

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vit = model

        def forward(self, h):
            return self.vit.forward_head(self.vit.norm(self.vit.blocks(h)))

    encoder = tmp / "encoder.onnx"
    torch.onnx.export(Encoder().eval(), (torch.zeros(2, 17, 32),), str(encoder), dynamo=False, opset_version=17,
                      input_names=["hidden"], output_names=["logits"],
                      dynamic_axes={"hidden": {0: "b", 1: "t"}, "logits": {0: "b"}})
    return model, spec, stem, fixed_stem, encoder, tmp


def toy_encoder(path, shape, dtype=TensorProto.FLOAT, extra_input=False, opset=18):
    """An encoder that returns its input (Identity), with the given input shape (ints or symbols)."""
    inputs = [helper.make_tensor_value_info("h", dtype, shape)]
    if extra_input:
        inputs.append(helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["b", "t"]))
    graph = helper.make_graph([helper.make_node("Identity", ["h"], ["y"])], "toy", inputs,
                              [helper.make_tensor_value_info("y", dtype, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    onnx.save_model(model, path)
    return path


def test_compose_joins_a_stem_and_a_user_encoder(timm_parts):
    model, spec, stem, _, encoder, tmp = timm_parts
    path = compose(stem, encoder, tmp / "whole.onnx")
    whole = onnx.load_model(path)
    assert [o.version for o in whole.opset_import if o.domain == ""] == [18]  # the encoder was converted up
    runtime = vitstem.runtime.load(path)
    assert runtime.output_names == ["logits"] and runtime.encoder["peer"] == "onnx"
    assert runtime.encoder["input"] == "hidden"
    for hw in [(32, 32), (24, 40)]:
        p = pixels(hw)
        with torch.no_grad():
            want = model(torch.from_numpy(normalised(p))).numpy()
        got = runtime(p.astype(np.float32))["logits"]
        assert np.abs(got - want).max() <= 1e-4 * max(1, np.abs(want).max())
    report = check_onnx(path, mobile=False)
    assert report["encoder"]["outputs"] == ["logits"] and report["encoder"]["digest"].startswith("sha256:")
    # the stem alone, joined to an identity encoder, still gives the stem's z0
    ident = compose(stem, toy_encoder(tmp / "id.onnx", ["b", "t", 32]), tmp / "id_whole.onnx")
    p = pixels((32, 32)).astype(np.float32)
    np.testing.assert_array_equal(vitstem.runtime.load(ident)(p)["y"], vitstem.runtime.load(stem)(p))


@pytest.mark.parametrize("shape, kwargs, fixed, message", [
    (["b", "t", 7], {}, False, "width 7, but the stem's z0 has D = 32"),
    (["b", "t", 32], {"dtype": TensorProto.FLOAT16}, False, "is float16; the stem's z0 is float32"),
    (["b", "t"], {}, False, r"must take z0 as \(batch, tokens, 32\)"),
    (["b", 5, 32], {}, True, "takes exactly 5 tokens, but the stem's size 32x32 gives 17"),
    (["b", 17, 32], {}, False, "takes exactly 17 tokens, but the stem takes any image size"),
    ([3, "t", 32], {}, False, "static batch 3"),
    (["b", "t", 32], {"extra_input": True}, False, "has 2 inputs"),
])
def test_compose_refuses_encoders_that_do_not_take_z0(timm_parts, shape, kwargs, fixed, message):
    _, _, stem, fixed_stem, _, tmp = timm_parts
    encoder = toy_encoder(tmp / "bad.onnx", shape, **kwargs)
    with pytest.raises(ExportError, match=message):
        compose(fixed_stem if fixed else stem, encoder, tmp / "bad_whole.onnx")
    assert not (tmp / "bad_whole.onnx").exists()


def test_compose_cli_and_its_errors(timm_parts, capsys):
    _, _, stem, _, encoder, tmp = timm_parts
    assert main(["compose", str(stem), str(encoder), "-o", str(tmp / "cli.onnx"), "--encoder-input", "hidden"]) == 0
    assert main(["compose", str(stem), str(encoder), "-o", str(tmp / "x.onnx"), "--encoder-input", "nope"]) == 2
    assert "the encoder has no input 'nope' (inputs: hidden)" in capsys.readouterr().err
    assert main(["compose", str(tmp / "cli.onnx"), str(encoder), "-o", str(tmp / "x.onnx")]) == 2
    assert "already a whole model" in capsys.readouterr().err
    assert main(["check", str(tmp / "cli.onnx"), "--no-mobile"]) == 0
    assert "whole model: stem + onnx" in capsys.readouterr().out


def test_check_and_runtime_refuse_tampered_whole_models(timm_parts):
    _, _, stem, _, encoder, tmp = timm_parts
    model = onnx.load_model(compose(stem, encoder, tmp / "t.onnx"))
    init = next(i for i in model.graph.initializer if i.name.startswith("encoder/") and i.data_type == 1)
    arr = onnx.numpy_helper.to_array(init).copy()
    arr.flat[0] += 1
    init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
    onnx.save_model(model, tmp / "tampered.onnx")
    with pytest.raises(ExportError, match="graph_digest mismatch"):
        check_onnx(tmp / "tampered.onnx", mobile=False)
    model = onnx.load_model(tmp / "t.onnx")
    entry = next(p for p in model.metadata_props if p.key == "vitstem.encoder")
    entry.value = entry.value.replace('"outputs":["logits"]', '"outputs":["scores"]')
    onnx.save_model(model, tmp / "renamed.onnx")
    # (the runtime's digest check would refuse the edit first: verify=False reaches the structural check)
    for load in (lambda p: check_onnx(p, mobile=False), lambda p: vitstem.runtime.load(p, verify=False)):
        with pytest.raises(ExportError, match=r"outputs \['logits'\] are not the ones vitstem.encoder names"):
            load(tmp / "renamed.onnx")


def test_runtime_runs_whole_models_with_numpy_and_onnxruntime_only(timm_parts):
    _, spec, stem, _, encoder, tmp = timm_parts
    path = compose(stem, encoder, tmp / "edge.onnx")
    x = pixels((24, 40)).astype(np.float32)
    np.save(tmp / "x.npy", x)
    code = BLOCKER.split("import numpy as np")[0] + (
        "import numpy as np\nimport vitstem.runtime\nm = vitstem.runtime.load(sys.argv[1])\n"
        "np.save(sys.argv[3], m(np.load(sys.argv[2]))['logits'])\n"
        "heavy = sorted(k for k in sys.modules if Block.blocked(k))\nassert not heavy, heavy\n")
    result = subprocess.run([sys.executable, "-c", code, str(path), str(tmp / "x.npy"), str(tmp / "y.npy")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp / "y.npy"), vitstem.runtime.load(path)(x)["logits"])
    assert main(["run", str(path), str(tmp / "x.npy"), "-o", str(tmp / "y2.npz")]) == 0
    with np.load(tmp / "y2.npz", allow_pickle=False) as saved:
        np.testing.assert_array_equal(saved["logits"], np.load(tmp / "y.npy"))


def test_deploy_cli_from_a_timm_checkpoint_and_an_hf_directory(tmp_path, capsys):
    from safetensors.torch import save_file
    from timm.models import register_model
    from timm.models.vision_transformer import VisionTransformer

    @register_model
    def vitstem_test_deploy_tiny(pretrained=False, **kwargs):
        model = VisionTransformer(img_size=32, patch_size=8, embed_dim=16, depth=1, num_heads=2,
                                  num_classes=kwargs["num_classes"], dynamic_img_size=kwargs["dynamic_img_size"])
        model.pretrained_cfg = {"mean": (0.5,) * 3, "std": (0.5,) * 3}  # what timm's hub configs carry
        return model

    import timm

    torch.manual_seed(0)
    source = timm.create_model("vitstem_test_deploy_tiny", num_classes=4, dynamic_img_size=True).eval()
    save_file(source.state_dict(), str(tmp_path / "ckpt.safetensors"))
    args = ["deploy", "--timm", "vitstem_test_deploy_tiny", "--weights", str(tmp_path / "ckpt.safetensors"),
            "--dynamic-img-size", "--image-size", "dynamic", "-o", str(tmp_path / "t.onnx")]
    assert main(args + ["--verify", "32,24x40"]) == 0
    out = capsys.readouterr().out
    assert "verify: ok" in out and "24x40" in out
    p = pixels((24, 40))
    with torch.no_grad():
        want = source(torch.from_numpy(normalised(p))).numpy()
    assert np.abs(vitstem.runtime.load(tmp_path / "t.onnx")(p.astype(np.float32))["output"] - want).max() <= 1e-4

    hf = hf_vit("vit", num_hidden_layers=1)
    hf.save_pretrained(tmp_path / "hf")
    (tmp_path / "hf" / "preprocessor_config.json").write_text('{"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}')
    assert main(["deploy", "--hf", str(tmp_path / "hf"), "-o", str(tmp_path / "h.onnx"), "--verify"]) == 0
    assert "last_hidden_state" in capsys.readouterr().out
    assert vitstem.runtime.load(tmp_path / "h.onnx").spec.input.preprocess is not None  # pixels in

    assert main(["deploy", "--timm", "vitstem_test_deploy_tiny", "-o", str(tmp_path / "x.onnx")]) == 2
    assert "--timm needs --weights" in capsys.readouterr().err
    save_file({"head.weight": torch.zeros(4, 16)}, str(tmp_path / "bad.safetensors"))
    assert main(["deploy", "--timm", "vitstem_test_deploy_tiny", "--weights", str(tmp_path / "bad.safetensors"),
                 "-o", str(tmp_path / "x.onnx")]) == 2
    assert "does not fit timm's vitstem_test_deploy_tiny: missing" in capsys.readouterr().err
    assert main(["deploy", "--hf", str(tmp_path), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "no config.json" in capsys.readouterr().err
