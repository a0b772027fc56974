"""Whole models of families with a grid-dependent encoder: SigLIP's attention-pool head (TorchScript bakes
the traced token count into it, so "auto" must export with dynamo) and timm Eva's rotary embedding (rope:
at other sizes the encoder also takes the patch grid, made from the images' shape in the joined graph).
Tiny random peers; nothing is downloaded."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

import vitstem.runtime
from vitstem.deploy import build_model, export_model, verify
from vitstem.errors import ExportError
from vitstem.export import check_onnx


def siglip():
    from transformers import SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(0)
    return SiglipVisionModel(SiglipVisionConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
                                                num_attention_heads=2, intermediate_size=64)).eval()


def eva(**kwargs):
    import timm

    torch.manual_seed(0)
    model = timm.create_model("eva02_tiny_patch14_224", pretrained=False, img_size=32, patch_size=8, embed_dim=32,
                              depth=1, num_heads=2, num_classes=0, **kwargs).eval()
    with torch.no_grad():  # sharper attention than timm's init, so that rope visibly matters
        for name, p in model.named_parameters():
            if ".attn." in name and name.endswith("weight"):
                p.normal_(0.0, 0.5)
    return model


def rel_err(got, want) -> float:
    return float(np.abs(got.astype(np.float64) - want).max() / max(1.0, np.abs(want).max()))


@pytest.mark.slow
def test_siglip_attention_pool_head_at_two_other_sizes(tmp_path):
    model = siglip()
    # TorchScript alone bakes the 16 traced tokens into the head's reshapes: caught, not written
    with pytest.raises(ExportError, match=r"torch.onnx \(torchscript\) does not work at every size: it fails at 30 tokens"):
        build_model(model, image_size="dynamic", preprocess=None, exporter="torchscript")
    runtime = vitstem.runtime.load(export_model(model, tmp_path / "s.onnx", image_size="dynamic", preprocess=None))
    assert runtime.output_names == ["last_hidden_state", "pooler_output"]
    for hw in [(32, 32), (48, 40), (16, 40)]:  # native, larger non-square, smaller non-square
        x = np.random.default_rng(1).standard_normal((2, 3, *hw)).astype(np.float32)
        got = runtime(x)
        with torch.no_grad():
            want = model(torch.from_numpy(x), interpolate_pos_encoding=True)
        for name in runtime.output_names:
            assert got[name].shape == tuple(want[name].shape), (hw, name)
            assert rel_err(got[name], want[name].numpy()) <= 1e-4, (hw, name)


@pytest.mark.slow
def test_eva_with_rope_deploys_at_its_native_size(tmp_path):
    model = eva()
    assert model.rope is not None
    runtime = vitstem.runtime.load(export_model(model, tmp_path / "e.onnx", preprocess=None))
    x = np.random.default_rng(2).standard_normal((3, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
        pos_embed = model._pos_embed
        model._pos_embed = lambda t: (pos_embed(t)[0], None)  # the same model without its rope
        without_rope = model(torch.from_numpy(x)).numpy()
        del model._pos_embed
    got = runtime(x)["output"]
    assert rel_err(got, want) <= 1e-4
    assert rel_err(without_rope, want) > 1e-2  # so the file's rope is really the peer's


def transposed_rope(model):
    """The peer with rope computed at the transposed grid (gw, gh): what a file that swapped H and W would compute."""
    get_embed = model.rope.get_embed
    model.rope.get_embed = lambda shape=None, **k: get_embed(shape=(shape[1], shape[0]), **k)
    return model


@pytest.mark.slow
@pytest.mark.parametrize("class_token, image_size", [(True, "dynamic"), (False, [(32, 32), (48, 40), (16, 24)])])
def test_eva_with_rope_at_other_sizes_takes_the_grid_from_the_images(tmp_path, class_token, image_size):
    model = eva(dynamic_img_size=True, class_token=class_token)
    assert model.rope is not None and model.num_prefix_tokens == int(class_token)
    path = export_model(model, tmp_path / "e.onnx", image_size=image_size, preprocess=None)
    runtime = vitstem.runtime.load(path)
    assert [i.name for i in onnx.load_model(path).graph.input] == ["images"]
    assert check_onnx(path, mobile=False)["encoder"]["input"] == "z0"
    swapped = transposed_rope(eva(dynamic_img_size=True, class_token=class_token))
    for hw in [(32, 32), (48, 40), (16, 24)]:  # native, larger non-square (6x5 grid), smaller non-square (2x3)
        x = np.random.default_rng(2).standard_normal((2, 3, *hw)).astype(np.float32)
        with torch.no_grad():
            want, wrong = model(torch.from_numpy(x)).numpy(), swapped(torch.from_numpy(x)).numpy()
        got = runtime(x)["output"]
        assert got.shape == want.shape == (2, 32)
        assert rel_err(got, want) <= 1e-4, hw
        if hw[0] != hw[1]:  # the file's rope is the peer's at (gh, gw), not at (gw, gh)
            assert rel_err(wrong, want) > 1e-2, hw
    rows = verify(model, path)
    assert {tuple(r["size"]) for r in rows} == {(32, 32), (48, 40), (24, 24) if image_size == "dynamic" else (16, 24)}
    assert all(r["passed"] and r["rel"] <= 1e-4 for r in rows)


def test_rope_encoders_are_checked_at_grids_and_other_stem_layouts_are_refused_naming_why():
    # TorchScript bakes the traced 4x4 grid into rope's Concat: the check at other grids refuses it
    with pytest.raises(ExportError, match=r"torch.onnx \(torchscript\) does not work at every size: ONNX Runtime "
                                          r"cannot load it"):
        build_model(eva(dynamic_img_size=True), image_size="dynamic", preprocess=None, exporter="torchscript")
    import timm

    beit = timm.create_model("beit_base_patch16_224", pretrained=False, img_size=32, patch_size=8, embed_dim=32,
                             depth=1, num_heads=2).eval()
    with pytest.raises(ExportError, match="timm Beit computes its tokens inside forward_features.*vitstem compose"):
        build_model(beit, preprocess=None)
    deepseek = timm.create_model("deepseek_vit_412m_enc", pretrained=False, img_size=32, patch_size=8, embed_dim=32,
                                 depth=1, num_heads=2).eval()
    assert deepseek.rope is not None
    with pytest.raises(ExportError, match=r"timm DeepseekVitEncoder: its forward_features is not VisionTransformer's "
                                          r"or Eva's .*it has no patch_drop or norm_pre\) and reads the patch grid from "
                                          r"patch_embed's \(B, H, W, D\) output.*vitstem compose"):
        build_model(deepseek, preprocess=None)


def grid_echo_encoder(grid_shape=("gh", "gw")):
    """A toy two-input encoder: y = z0, hw = Shape(grid), i.e. the grid the join feeds it."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["z0"], ["y"]), helper.make_node("Shape", ["grid"], ["hw"])], "grid_echo",
        [helper.make_tensor_value_info("z0", TensorProto.FLOAT, ["b", "t", 8]),
         helper.make_tensor_value_info("grid", TensorProto.FLOAT, list(grid_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "t", 8]),
         helper.make_tensor_value_info("hw", TensorProto.INT64, [len(grid_shape)])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)


@pytest.mark.parametrize("layout, remainder, in_graph, image_size, hw", [
    ("NCHW", "refuse", False, "dynamic", (20, 6)),  # 4x2 patches: a 5x3 grid
    ("NHWC", "drop", True, "dynamic", (14, 11)),  # uint8 NHWC frames; a 3x5 grid and 2 + 1 pixels left over
    ("NCHW", "refuse", False, [(12, 16), (8, 4)], (8, 4)),  # a list of sizes: a 2x2 grid
])
def test_the_join_feeds_the_grid_input_the_patch_grid_of_the_images(layout, remainder, in_graph, image_size, hw):
    import onnxruntime as ort

    from vitstem import init_weights, load_spec
    from vitstem.deploy.join import join
    from vitstem.export.api import build_onnx

    pre = {"scale": 1 / 255, "mean": [0.5] * 3, "std": [0.25] * 3}
    spec = load_spec("vitstem_tiny_test").replace(input={"layout": layout, "remainder": remainder, "preprocess": pre})
    stem = build_onnx(spec, init_weights(spec), image_size=image_size, preprocess_in_graph=in_graph)
    whole = join(stem, grid_echo_encoder(), {"peer": "onnx", "class": "grid_echo", "version": "1"}, grid_input="grid")
    assert [i.name for i in whole.graph.input] == ["images"]
    session = ort.InferenceSession(whole.SerializeToString(), providers=["CPUExecutionProvider"])
    channels_last = in_graph or layout == "NHWC"
    x = np.random.default_rng(0).integers(0, 256, (2, *hw, 3) if channels_last else (2, 3, *hw), dtype=np.uint8)
    y, grid = session.run(None, {"images": x if in_graph else x.astype(np.float32)})
    gh, gw = hw[0] // 4, hw[1] // 2
    assert grid.tolist() == [gh, gw] == list(spec.patch_grid(hw))
    assert y.shape == (2, spec.num_prefix_tokens + gh * gw, 8)
    bad = {"grid_shape": ("gh", "gw", "c")}
    with pytest.raises(ExportError, match=r"encoder input grid must be float32 \(gh, gw\).*rank 3"):
        join(stem, grid_echo_encoder(**bad), {"peer": "onnx", "class": "x", "version": "1"}, grid_input="grid")
    single = grid_echo_encoder()
    single.graph.input.pop()  # z0 alone
    single.graph.node.pop()
    single.graph.output.pop()
    with pytest.raises(ExportError, match=r"the encoder has no grid input 'grid' \(inputs: z0\)"):
        join(stem, single, {"peer": "onnx", "class": "x", "version": "1"}, grid_input="grid")
