"""Issue 16, item by item: a new user's first tries, run as typed (subprocesses of the CLI), each giving a
clear answer or the right result. Peers are built from small random configs; nothing is downloaded."""

import json
import os
import typing

import numpy as np
import pytest
import torch
from support.newcomer_files import ARCH, photo, save_timm_checkpoint, tiny_hf_dir, tiny_timm_model, typed

import vitstem
from vitstem.cli import build_parser, main


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """A user's folder: model.safetensors (timm), vit-hf/ (transformers), cat.jpg, and an imported stem."""
    d = tmp_path_factory.mktemp("user")
    model = tiny_timm_model()
    save_timm_checkpoint(model, d / "model.safetensors")
    tiny_hf_dir(d / "vit-hf")
    photo(d / "cat.jpg")
    assert main(["import", str(d / "model.safetensors"), "--format", "timm", "--arch", ARCH, "-o", str(d / "stem")]) == 0
    np.save(d / "x.npy", np.random.default_rng(0).integers(0, 256, (2, 3, 224, 224), dtype=np.uint8))
    return d, model


def one_line_error(result, *words):
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    for word in words:
        assert word in result.stderr, (word, result.stderr)
    return result.stderr


# 1. a whole peer checkpoint where canonical weights are expected
@pytest.mark.slow
@pytest.mark.parametrize("line", [
    "vitstem export vit_base_patch16_224 --weights model.safetensors -o m.onnx",
    "vitstem forward vit_base_patch16_224 x.npy --weights model.safetensors -o z.npy",
    "vitstem conform vit_base_patch16_224 --weights model.safetensors",
])
def test_peer_checkpoint_gets_one_line_naming_import(user, line):
    err = one_line_error(typed(line, user[0]), "timm checkpoint",
                         "vitstem import model.safetensors --format timm -o DIR")
    assert len(err) < 300 and "blocks." not in err


@pytest.mark.slow
def test_hf_checkpoint_names_the_hf_import(user):
    one_line_error(typed("vitstem export vit_base_patch16_224 --weights vit-hf/model.safetensors -o m.onnx", user[0]),
                   "transformers checkpoint", "--format hf")


# 2. import and from_timm agree, and import says where the preprocessing came from
@pytest.mark.slow
def test_import_agrees_with_from_timm_and_names_its_source(user):
    from vitstem.interop import from_timm

    d, model = user
    result = typed(f"vitstem import model.safetensors --format timm --arch {ARCH} -o out --json", d)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    spec, _ = from_timm(model)
    assert report["spec"] == spec.to_dict() and report["spec_digest"] == spec.digest()
    assert report["preprocess_source"] == f"timm's default pretrained_cfg for {ARCH}"
    assert report["run_flags"] == "--resize shortest-edge --crop-pct 0.9 --crop center --interpolation bicubic"
    bare = typed("vitstem import model.safetensors --format timm -o bare", d)
    assert bare.returncode == 0 and "preprocess: none" in bare.stdout and "--arch NAME" in bare.stdout
    with pytest.raises(vitstem.SpecError, match="not a model name timm knows"):
        from vitstem.interop.checkpoint import import_checkpoint

        import_checkpoint(d / "model.safetensors", "timm", arch="not_a_vit")


# 3. export, check and runtime agree on sizes
@pytest.mark.slow
def test_dynamic_size_needs_the_spec_and_the_cli_says_how(user):
    d = user[0]
    one_line_error(typed("vitstem export stem/spec.yaml --weights stem/weights.safetensors -o m.onnx "
                         "--image-size dynamic", d), "--dynamic-image-size")
    err = one_line_error(typed("vitstem export stem/spec.yaml --weights stem/weights.safetensors -o m.onnx "
                               "--image-size 224,288", d), "--dynamic-image-size")
    assert "spec.replace" not in err.split("Python:")[0]
    ok = typed("vitstem export stem/spec.yaml --weights stem/weights.safetensors -o dyn.onnx --image-size dynamic "
               "--dynamic-image-size", d)
    assert ok.returncode == 0, ok.stderr
    checked = typed("vitstem check dyn.onnx --no-mobile", d)
    assert checked.returncode == 0 and "image size dynamic" in checked.stdout
    np.save(d / "wide.npy", np.random.default_rng(1).integers(0, 256, (1, 3, 224, 288), dtype=np.uint8))
    ran = typed("vitstem run dyn.onnx wide.npy -o z.npy --json", d)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["shape"] == [1, 1 + 14 * 18, 32]


def test_check_refuses_a_model_whose_sizes_its_spec_refuses(user, tmp_path):
    from vitstem.export import build_onnx
    from vitstem.spec import exported as meta

    spec = vitstem.load_spec(user[0] / "stem" / "spec.yaml")
    weights = vitstem.load_weights(user[0] / "stem" / "weights.safetensors", spec)
    model = build_onnx(spec.replace(dynamic_image_size=True), weights, image_size="dynamic")
    props = {p.key: p for p in model.metadata_props}  # as files written before export refused this
    props["vitstem.spec"].value = spec.to_json()
    props["vitstem.spec_digest"].value = spec.digest()
    (tmp_path / "old.onnx").write_bytes(model.SerializeToString())
    assert meta.read_metadata(model.metadata_props)["spec_digest"] == spec.digest()
    with pytest.raises(vitstem.ExportError, match="dynamic_image_size: false.*--dynamic-image-size"):
        from vitstem.export.checks import check_onnx

        check_onnx(tmp_path / "old.onnx", mobile=False)


# 5. TensorFlow stays quiet unless --verbose
@pytest.mark.slow
def test_tensorflow_log_lines_only_with_verbose(user):
    d = user[0]
    line = "vitstem forward stem/spec.yaml x.npy --weights stem/weights.safetensors -o z.npy --backend tensorflow"
    quiet = typed(line, d)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    loud = typed(line + " --verbose", d)
    assert loud.returncode == 0 and loud.stderr.strip() != ""  # TensorFlow's own start-up lines
    spec = vitstem.load_spec(d / "stem" / "spec.yaml")
    ref = vitstem.forward(spec, vitstem.load_weights(d / "stem" / "weights.safetensors", spec), np.load(d / "x.npy"))
    np.testing.assert_allclose(np.load(d / "z.npy"), ref, rtol=0, atol=1e-5 * np.abs(ref).max())


# 6. messages that say what the file is
@pytest.mark.slow
def test_messages_name_what_the_file_is(user):
    d = user[0]
    one_line_error(typed("vitstem forward stem/spec.yaml cat.jpg --weights stem/weights.safetensors -o z.npy", d),
                   "it is a JPEG image", "vitstem run")
    torch.save({"patch_embed.proj.weight": torch.zeros(2)}, d / "model.pth")
    one_line_error(typed("vitstem export stem/spec.yaml --weights model.pth -o m.onnx", d),
                   "PyTorch checkpoint", "never unpickles", "torch.load('model.pth', weights_only=True)")
    assert main(["export", str(d / "stem" / "spec.yaml"), "--weights", str(d / "stem" / "weights.safetensors"),
                 "-o", str(d / "ortm.onnx"), "--ort"]) == 0
    checked = typed("vitstem check ortm.ort --weights stem/weights.safetensors", d)
    assert checked.returncode == 0, checked.stderr
    assert "ORT format" in checked.stdout and "(proven: exporting --weights again" in checked.stdout
    tampered = (d / "ortm.ort").read_bytes().replace(b"vitstem.spec_digest", b"vitstem.spec_digesX")
    (d / "bad.ort").write_bytes(tampered)
    one_line_error(typed("vitstem check bad.ort", d), "bad.ort")


# 7. dtypes follow the framework's conventions
@pytest.mark.parametrize("dtype, ulps", [(torch.float16, 2.0**-11), (torch.bfloat16, 2.0**-8)])
def test_torch_module_computes_in_its_dtype(user, dtype, ulps):
    from vitstem.backends.torch import VitStem

    d, model = user
    spec = vitstem.load_spec(d / "stem" / "spec.yaml")
    weights = vitstem.load_weights(d / "stem" / "weights.safetensors", spec)
    x = torch.from_numpy(np.load(d / "x.npy"))
    with torch.no_grad():
        ref = VitStem.from_weights(spec, weights)(x)
        z = VitStem.from_weights(spec, weights).to(dtype)(x)
        timm_z = model.to(dtype).norm_pre(model._pos_embed(model.patch_embed(((x / 255 - 0.5) / 0.5).to(dtype))))
        model.float()
    assert z.dtype == dtype and timm_z.dtype == dtype
    bound = 8 * ulps * ref.abs().max().item()
    assert (z.float() - ref).abs().max().item() <= bound
    assert (z.float() - timm_z.float()).abs().max().item() <= bound


def test_torch_autocast_matches_timm(user):
    from vitstem.backends.torch import VitStem

    d, model = user
    spec = vitstem.load_spec(d / "stem" / "spec.yaml")
    stem = VitStem.from_weights(spec, vitstem.load_weights(d / "stem" / "weights.safetensors", spec))
    x = torch.from_numpy(np.load(d / "x.npy"))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        z = stem(x)
        timm_z = model.norm_pre(model._pos_embed(model.patch_embed((x.float() / 255 - 0.5) / 0.5)))
    assert z.dtype == timm_z.dtype == torch.float32
    assert (z - timm_z).abs().max().item() <= 8 * 2.0**-8 * timm_z.abs().max().item()


@pytest.mark.slow
@pytest.mark.parametrize("policy, ulps", [("mixed_float16", 2.0**-11), ("mixed_bfloat16", 2.0**-8)])
def test_keras_mixed_precision_computes_in_the_policy_dtype(policy, ulps):
    import keras

    import vitstem.backends.tensorflow as vtf

    spec = vitstem.load_spec("vitstem_tiny_test")
    w = vitstem.init_weights(spec)
    x = np.random.default_rng(0).random((2, 3, 12, 16)).astype("float32")
    ref = vitstem.forward(spec, w, x)
    keras.mixed_precision.set_global_policy(policy)
    try:
        layer = vtf.VitStemLayer.from_weights(spec, w)
        z = layer(x)
        inp = keras.Input((3, 12, 16))
        predicted = keras.Model(inp, layer(inp)).predict(x, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert z.dtype == policy.split("_")[1] == str(predicted.dtype).replace("bfloat16", "bfloat16")
    assert layer.stem_variables["pos_embed"].dtype == "float32"
    bound = 8 * ulps * np.abs(ref).max()
    assert np.abs(np.asarray(z, np.float32) - ref).max() <= bound
    assert np.abs(predicted.astype(np.float32) - ref).max() <= bound


# 8. API consistency
def test_api_accepts_preset_names_and_is_typed(tmp_path):
    weights = vitstem.init_weights("vitstem_tiny_test", seed=3)
    spec = vitstem.load_spec("vitstem_tiny_test")
    assert all(np.array_equal(weights[k], v) for k, v in vitstem.init_weights(spec, seed=3).items())
    vitstem.save_weights(weights, tmp_path / "w.safetensors", spec)
    loaded = vitstem.load_weights(tmp_path / "w.safetensors", "vitstem_tiny_test")
    assert loaded.keys() == weights.keys() and all(np.array_equal(loaded[k], weights[k]) for k in weights)
    assert vitstem.weight_shapes("vitstem_tiny_test") == vitstem.weight_shapes(spec)
    assert os.path.isfile(os.path.join(os.path.dirname(vitstem.__file__), "py.typed"))
    hints = typing.get_type_hints(vitstem.forward, globalns=vars(vitstem), localns={"Spec": vitstem.Spec, "np": np,
                                                                                     "os": os, "Any": typing.Any,
                                                                                     "Mapping": typing.Mapping})
    assert set(hints) == {"spec", "weights", "images", "backend", "profile", "return"}
    from vitstem.backends.torch import VitStem

    assert VitStem.forward.__doc__ and vitstem.forward.__doc__


@pytest.mark.slow
def test_every_command_and_option_is_described():
    import argparse

    parser = build_parser()

    def walk(p, path):
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, path + [name])
            elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)) and \
                    action.help != argparse.SUPPRESS:
                yield path, action

    missing = [f"{' '.join(path)} {action.dest}" for path, action in walk(parser, []) if not action.help]
    assert not missing
    for name in ("export", "run", "check", "init", "forward", "import"):
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
        assert sub.description, name
    shown = typed("vitstem run --help", ".")
    assert shown.returncode == 0 and "--resize" in shown.stdout and "edge runtime" in shown.stdout


# 9. reports
@pytest.mark.slow
def test_conform_report_explains_ulps_and_times_the_command(user, capsys):
    d = user[0]
    result = typed("vitstem conform vitstem_tiny_test --engines numpy onnxruntime --profiles fast "
                   "--precisions fp32 fp16 -q --json r.json", d)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((d / "r.json").read_text())
    assert report["command_seconds"] >= report["seconds"] > 0
    assert "for the command, imports included" in result.stdout
    huge = [r for r in report["results"] if r["passed"] and r["ulp_max"] > 1e4]
    assert huge  # fp16 cells: elements near zero are many float32 steps apart
    assert "ULP distances count the float32 values between two results" in result.stdout
    for n in report["not_run"]:
        assert " ".join(n["reason"].split()) in " ".join(result.stdout.split())  # never cut


# --json on every command a script reads
def test_json_everywhere(user, capsys):
    d = user[0]
    cases = {
        ("export", str(d / "stem" / "spec.yaml"), "--weights", str(d / "stem" / "weights.safetensors"),
         "-o", str(d / "j.onnx")): "files",
        ("init", "vitstem_tiny_test", "-o", str(d / "j.safetensors")): "spec_digest",
        ("spec", "validate", "vitstem_tiny_test"): "ok",
        ("check", str(d / "j.onnx"), "--no-mobile"): "options",
        ("run", str(d / "j.onnx"), str(d / "cat.jpg"), "--resize", "shortest-edge", "--crop", "center",
         "-o", str(d / "j.npy")): "shape",
    }
    for argv, key in cases.items():
        assert main([*argv, "--json"]) == 0, argv
        assert key in json.loads(capsys.readouterr().out), argv
