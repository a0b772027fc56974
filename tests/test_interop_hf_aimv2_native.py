"""transformers AIMv2 with is_native: its sin-cos table, built at every image size with its halves swapped, is the
spec's `mae` convention. z0 against the peer's own embeddings at the native size, a larger non-square size and a
size that is not a multiple of the patch (dropped, as its conv does); exact bit-identical on every backend and in
ONNX. The checkpoint path still refuses it, naming from_hf."""

import json

import numpy as np
import pytest
import torch

import vitstem
from support.reference import assert_agrees, assert_backends_and_onnx
from vitstem.interop import from_hf, import_checkpoint


def aimv2():
    from transformers import Aimv2VisionConfig, Aimv2VisionModel

    torch.manual_seed(0)
    return Aimv2VisionModel(Aimv2VisionConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1,
                                              num_attention_heads=2, intermediate_size=32, is_native=True)).eval()


@pytest.mark.parametrize("hw", [(32, 32), (48, 40), (36, 44)])
def test_native_sincos_matches_the_peer_at_every_size(hw):
    model = aimv2()
    spec, weights = from_hf(model)
    pe = spec.position_embedding
    assert (pe.kind, pe.sincos_convention, pe.temperature, spec.dynamic_image_size) == ("sincos2d", "mae", 1e4, True)
    assert spec.patch_norm.kind == "rms_norm" and "pos_embed" not in weights
    x = np.random.default_rng(1).standard_normal((2, 3, *hw)).astype(np.float32)
    with torch.no_grad():
        peer = model.embeddings(torch.from_numpy(x)).numpy()
    assert peer.shape == (2, (hw[0] // 8) * (hw[1] // 8), 16)
    assert_agrees(spec, weights, x, peer)
    assert_backends_and_onnx(spec, weights, x, resampled=False)


def test_the_checkpoint_path_refuses_it_naming_from_hf(tmp_path):
    from safetensors.torch import save_file

    model = aimv2()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(model.config.to_dict()))
    with pytest.raises(vitstem.SpecError, match="is_native .*converts from the live model with from_hf"):
        import_checkpoint(tmp_path, "hf")
