"""timm family checkpoints without timm (`vitstem import --format timm`) and the way back
(`to_timm_family_state_dict`): both checked against the peer's own first-block input.

Peers are the tiny random models of support.timm_peers (as in test_interop_timm_families); checkpoints are
their state dicts written as safetensors (with a timm hub config.json where the family needs one).
"""

import json

import numpy as np
import pytest
import torch

import vitstem
from support.reference import assert_agrees
from support.timm_peers import PEERS, first_block_input, random_stem as _random_stem
from vitstem.interop import from_timm, import_checkpoint, to_timm_family_state_dict

pytestmark = pytest.mark.slow


def _images(shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("peer", sorted(set(PEERS) - {"gemma4_encoder_fixed_size"}))
def test_family_checkpoint_import_equals_from_timm(tmp_path, peer):
    from safetensors.torch import save_file

    model = _random_stem(PEERS[peer]())
    spec, weights = from_timm(model, preprocess=None)
    save_file({f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()},
              str(tmp_path / "model.safetensors"))
    architecture = "qwen3_vit_88m_enc" if peer.startswith("qwen3") else type(model).__name__.lower()
    (tmp_path / "config.json").write_text(json.dumps({"architecture": architecture}))
    imported, imported_weights = import_checkpoint(
        tmp_path / "model.safetensors", "timm", image_size=spec.image_size, preprocess=None,
        dynamic_image_size=spec.dynamic_image_size, pre_norm_eps=spec.pre_norm.eps if spec.pre_norm else 1e-5)
    assert imported.replace(name="x") == spec.replace(name="x")
    assert imported_weights.keys() == weights.keys()
    assert all(np.array_equal(imported_weights[k], v) for k, v in weights.items())


WAY_BACK = ["beit_abs_pos", "beit_shared_rel_pos_only", "cait", "convit_cls_late", "eva_cls_reg_rope_dynamic",
            "eva_no_embed_class_pre_norm", "relpos_cls", "sam_pre_norm"]


@pytest.mark.parametrize("peer", WAY_BACK)
def test_to_timm_family_state_dict_loads_and_reproduces_z0(peer):
    source = _random_stem(PEERS[peer](), seed=3)
    spec, weights = from_timm(source, preprocess=None)
    target = PEERS[peer]().eval()  # timm's own init: different stem values until loaded
    state = to_timm_family_state_dict(spec, weights, type(target).__name__)
    missing, unexpected = target.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
    assert not unexpected
    assert not [k for k in missing if k.split(".")[0] in ("patch_embed", "pos_embed", "reg_token", "norm_pre")]
    x = _images(spec.input_shape(2))
    assert_agrees(spec, weights, x, first_block_input(target, x))


def test_family_state_dict_refuses_what_the_family_cannot_hold():
    tiny = vitstem.load_spec("vitstem_tiny_test")  # cls + dist + registers, dynamic
    for family, field in [("Cait", "prefix"), ("Beit", "dist_token"), ("VisionTransformerRelPos", "kind"),
                          ("VisionTransformerSAM", "prefix")]:
        with pytest.raises(vitstem.SpecError, match=field):
            to_timm_family_state_dict(tiny, vitstem.init_weights(tiny), family)
    with pytest.raises(vitstem.SpecError, match="family must be one of"):
        to_timm_family_state_dict(tiny, vitstem.init_weights(tiny), "Swin")


def test_gemma4_checkpoint_import_says_to_use_from_timm(tmp_path):
    from safetensors.torch import save_file

    model = PEERS["gemma4_encoder_fixed_size"]()
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "m.safetensors"))
    with pytest.raises(vitstem.SpecError, match="Gemma 4 checkpoint.*from_timm"):
        import_checkpoint(tmp_path / "m.safetensors", "timm")
