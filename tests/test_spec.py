"""Spec validation (every class of invalid spec, with its message), round-trips, digests, presets, schema."""

import hashlib
import json

import pytest

import vitstem
from vitstem.spec import PRESETS, preset_names
from vitstem.spec.schema import schema, validate

BASE = {"spec_version": 1, "image_size": [32, 48], "patch_size": [8, 16], "embed_dim": 16}


def problems_of(doc):
    with pytest.raises(vitstem.SpecError) as info:
        vitstem.load_spec(doc)
    return info.value.problems


INVALID = [
    # (change to BASE, field path, words in the reason)
    ({"spec_version": 2}, "spec_version", "is not one of 1"),
    ({"image_size": [32, 45]}, "image_size[1]", "45 is not divisible by patch_size[1] = 16"),
    ({"image_size": [32]}, "image_size", "needs at least 2 items"),
    ({"image_size": [32, 48, 3]}, "image_size", "at most 2 items"),
    ({"image_size": [0, 48]}, "image_size[0]", "less than 1"),
    ({"image_size": "big"}, "image_size", "expected integer or array"),
    ({"patch_size": [8, 2.5]}, "patch_size[1]", "expected integer"),
    ({"embed_dim": True}, "embed_dim", "expected integer, got true"),
    ({"in_channels": -3}, "in_channels", "less than 1"),
    ({"patch_bias": "yes"}, "patch_bias", "expected boolean"),
    ({"colour": "red"}, "colour", "unknown field"),
    ({"prefix": {"register_tokens": -1}}, "prefix.register_tokens", "less than 0"),
    ({"prefix": {"cls": True}}, "prefix.cls", "unknown field"),
    ({"position_embedding": {"kind": "rope"}}, "position_embedding.kind", "is not one of"),
    ({"position_embedding": {"kind": "sincos2d"}}, "position_embedding.sincos_convention", "is required"),
    ({"embed_dim": 18, "position_embedding": {"kind": "sincos2d", "sincos_convention": "timm"}}, "embed_dim",
     "not divisible by 4"),
    ({"position_embedding": {"kind": "sincos2d", "sincos_convention": "mae", "grid": [2, 2]}},
     "position_embedding.grid", "must be null for sincos2d"),
    ({"position_embedding": {"kind": "learned", "sincos_convention": "mae"}}, "position_embedding.sincos_convention",
     "only applies to kind sincos2d"),
    ({"position_embedding": {"temperature": 0}}, "position_embedding.temperature", "greater than 0"),
    ({"pre_norm": {"eps": float("nan")}}, "pre_norm.eps", "not a finite number"),
    ({"pre_norm": {"eps": -1}}, "pre_norm.eps", "greater than 0"),
    ({"pre_norm": True}, "pre_norm", "expected null or object"),
    ({"pre_norm": {"kind": "batch_norm"}}, "pre_norm.kind", "is not one of"),
    ({"patch_norm": {"eps": 1e-6}}, "patch_norm.kind", "is required"),
    ({"patch_norm": {"kind": "rms_norm", "eps": 0}}, "patch_norm.eps", "greater than 0"),
    ({"patch_norm": {"kind": "layer_norm", "eps": 1e-300}}, "patch_norm.eps", "outside the float32 range"),
    ({"patch_norm": {"kind": "layer_norm", "bias": False}}, "patch_norm.bias", "unknown field"),
    ({"patch_norm": "layer_norm"}, "patch_norm", "expected null or object"),
    ({"input": {"layout": "CHW"}}, "input.layout", "is not one of"),
    ({"input": {"preprocess": {"mean": [0.5]}}}, "input.preprocess.std", "is required"),
    ({"input": {"preprocess": {"mean": [0.5], "std": [0.5, 0.5, 0.5]}}}, "input.preprocess.mean",
     "has 1 values but in_channels = 3"),
    ({"input": {"preprocess": {"mean": [0, 0, 0], "std": [1, 0, 1]}}}, "input.preprocess.std[1]", "greater than 0"),
    ({"resample": {"policy": "pil"}}, "resample.policy", "is not one of"),
    ({"resample": {"policy": "timm", "antialias": False}}, "resample.antialias", "contradicts policy 'timm'"),
    ({"resample": {"policy": "custom", "mode": "bilinear"}}, "resample.cubic_coeff_a", "required when policy is custom"),
    ({"dynamic_image_size": 1}, "dynamic_image_size", "expected boolean"),
    ({"embed_dim": 10**9}, "embed_dim", "over the limit"),
    ({"image_size": [65536 * 2, 48]}, "image_size[0]", "exceeds the maximum side"),
]


@pytest.mark.parametrize("change,path,reason", INVALID, ids=[p for _, p, _ in INVALID])
def test_invalid_spec_names_field_and_reason(change, path, reason):
    problems = problems_of({**BASE, **change})
    assert any(p == path and reason in r for p, r in problems), problems


def test_missing_required_fields_are_all_reported():
    problems = problems_of({"spec_version": 1})
    assert {p for p, _ in problems} == {"image_size", "patch_size", "embed_dim"}


def test_every_problem_at_once_with_the_readme_example():
    problems = problems_of({**BASE, "image_size": [224, 225], "patch_size": 16, "embed_dim": "x", "extra": 1})
    text = str(vitstem.SpecError(problems))
    assert "image_size[1]: 225 is not divisible by patch_size[1] = 16" in text
    assert "embed_dim: expected integer" in text and "extra: unknown field" in text


def test_round_trip_and_digest():
    for name in preset_names():
        spec = vitstem.load_spec(name)
        again = vitstem.load_spec(spec.to_dict())
        assert again == spec and again.digest() == spec.digest()
        # the canonical JSON is to_dict() without the post-v1 fields at their "as before" values
        data = spec.to_dict()
        assert data.pop("patch_norm") is None
        if data["input"]["remainder"] == "refuse":  # drop (vit_so400m_patch14_siglip_384) stays in
            del data["input"]["remainder"]
        if data["pre_norm"] is not None:
            assert data["pre_norm"].pop("kind") == "layer_norm"
        assert json.loads(spec.to_json()) == data
        # the digest is the SHA-256 of the canonical JSON, computed independently here
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        assert spec.digest() == "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def test_spec_is_immutable_and_readable():
    spec = vitstem.load_spec(BASE)
    assert spec.input_layout == "NCHW" and spec.patch_grid() == (4, 3) and spec.num_tokens() == 13
    assert spec.patch_dim == 3 * 8 * 16 and spec.prefix_tokens == ("cls_token",)
    with pytest.raises(AttributeError):
        spec.embed_dim = 3


def test_yaml_and_json_files_load_the_same(tmp_path):
    yaml_text = """
spec_version: 1
name: mine
image_size: [32, 48]
patch_size: [8, 16]
embed_dim: 16
prefix: {class_token: true, register_tokens: 2}
position_embedding: {kind: learned, covers_prefix: false}
resample: {policy: hf_pytorch}
"""
    (tmp_path / "s.yaml").write_text(yaml_text)
    spec = vitstem.load_spec(tmp_path / "s.yaml")
    (tmp_path / "s.json").write_text(json.dumps(spec.to_dict()))
    assert vitstem.load_spec(str(tmp_path / "s.json")) == spec
    assert spec.prefix_tokens == ("cls_token", "reg_tokens[0]", "reg_tokens[1]") and spec.pos_prefix_rows == 0
    (tmp_path / "broken.yaml").write_text("image_size: [1, 2\n")
    with pytest.raises(vitstem.SpecError, match="not valid YAML"):
        vitstem.load_spec(tmp_path / "broken.yaml")
    with pytest.raises(vitstem.SpecError, match="neither a spec file nor a preset"):
        vitstem.load_spec("vit_gigantic_patch3_7")


def test_a_preset_name_always_means_the_preset(tmp_path, monkeypatch):
    """A file in the working directory named like a preset does not shadow it; ./NAME, a Path or a
    .yaml suffix load the file."""
    monkeypatch.chdir(tmp_path)
    shadow = json.dumps({**BASE, "name": "shadow"})
    for name in ("vitstem_tiny_test", "vitstem_tiny_test.yaml", "odd_name"):
        (tmp_path / name).write_text(shadow)
    assert vitstem.load_spec("vitstem_tiny_test").name == "vitstem_tiny_test"
    assert vitstem.load_spec("vitstem_tiny_test").image_size == (12, 16)
    for path in ("./vitstem_tiny_test", str(tmp_path / "vitstem_tiny_test"), "vitstem_tiny_test.yaml", "odd_name"):
        assert vitstem.load_spec(path).name == "shadow", path
    from pathlib import Path

    assert vitstem.load_spec(Path("vitstem_tiny_test")).name == "shadow"
    assert vitstem.load_spec(Path("vitstem_tiny_test")).image_size == (32, 48)
    with pytest.raises(vitstem.SpecError, match="'./vit_base_patch16_224' is neither a spec file nor a preset"):
        vitstem.load_spec("./vit_base_patch16_224")


def test_presets_cover_the_family_and_variants():
    names = set(preset_names())
    for size in ("tiny", "small", "base", "large", "huge"):
        for patch, images in ((14, (224, 336)), (16, (224, 384)), (32, (224, 384))):
            assert {f"vit_{size}_patch{patch}_{i}" for i in images} <= names
    deit = vitstem.load_spec("deit_base_distilled_patch16_224")
    assert deit.prefix_tokens == ("cls_token", "dist_token") and vitstem.weight_shapes(deit)["pos_embed"] == (1, 198, 768)
    reg = vitstem.load_spec("vit_base_patch14_reg4_dinov2")
    assert reg.prefix.register_tokens == 4 and vitstem.weight_shapes(reg)["pos_embed"] == (1, 37 * 37, 768)
    clip = vitstem.load_spec("vit_base_patch16_clip_224")
    assert clip.pre_norm is not None and "patch_embed.bias" not in vitstem.weight_shapes(clip)
    siglip = vitstem.load_spec("vit_base_patch16_siglip_224")
    assert siglip.num_prefix_tokens == 0 and vitstem.weight_shapes(siglip)["pos_embed"] == (1, 196, 768)
    mae = vitstem.load_spec("mae_vit_base_patch16_224")
    assert mae.position_embedding.kind == "sincos2d" and "pos_embed" not in vitstem.weight_shapes(mae)
    assert vitstem.load_spec("vit_large_patch16_384").num_tokens() == 577


def test_schema_interpreter_agrees_with_jsonschema():
    """Our small interpreter of schema.json agrees with the jsonschema library on presets and broken documents."""
    import jsonschema

    checker = jsonschema.Draft202012Validator(schema())
    docs = [PRESETS[n] for n in preset_names()] + [{**BASE, **change} for change, _, _ in INVALID]
    for doc in docs:
        ours = validate(doc)
        theirs = [e.message for e in checker.iter_errors(doc)]
        if any("not a finite number" in reason for _, reason in ours):
            assert not theirs  # our one deliberate extension: JSON has no NaN, YAML does (.nan)
            continue
        assert bool(ours) == bool(theirs), (doc, ours, theirs)


def test_replace_revalidates():
    spec = vitstem.load_spec(BASE)
    assert spec.replace(embed_dim=32).embed_dim == 32
    with pytest.raises(vitstem.SpecError, match="image_size"):
        spec.replace(image_size=[33, 48])


def test_norm_fields_post_v1():
    """patch_norm and pre_norm.kind at their "as before" values leave the canonical JSON (and digest) as v1
    wrote it; any other value enters the digest and names its weights."""
    clip = vitstem.load_spec("vit_base_patch16_clip_224")
    explicit = clip.replace(patch_norm=None, pre_norm={"eps": 1e-5, "kind": "layer_norm"})
    assert explicit == clip and explicit.digest() == clip.digest()
    assert "patch_norm" not in clip.to_json() and json.loads(clip.to_json())["pre_norm"] == {"eps": 1e-5}
    rms = clip.replace(patch_norm={"kind": "rms_norm"}, pre_norm={"eps": 1e-5, "kind": "rms_norm"})
    assert rms.patch_norm.kind == "rms_norm" and rms.patch_norm.eps == 1e-6  # timm's default eps
    assert json.loads(rms.to_json())["patch_norm"] == {"kind": "rms_norm", "eps": 1e-6}
    assert json.loads(rms.to_json())["pre_norm"] == {"kind": "rms_norm", "eps": 1e-5}
    assert len({clip.digest(), rms.digest(), clip.replace(patch_norm={"kind": "layer_norm"}).digest()}) == 3
    shapes = vitstem.weight_shapes(rms)
    assert [n for n in shapes if "norm" in n] == ["patch_embed.norm.weight", "norm_pre.weight"]
    ln = vitstem.weight_shapes(clip.replace(patch_norm={"kind": "layer_norm", "eps": 1e-5}))
    assert ln["patch_embed.norm.weight"] == ln["patch_embed.norm.bias"] == ln["norm_pre.bias"] == (768,)
