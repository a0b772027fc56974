"""Badly typed fields in the configs beside a checkpoint (config.json, preprocessor_config.json, timm's
pretrained_cfg): one SpecError line naming the file and the field path, never a traceback or a silently
wrong spec; null counts as absent; fields the tensors also state must agree with them."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.fuzz import fuzz

import vitstem
from vitstem.interop import import_checkpoint, to_hf_state_dict
from vitstem.interop.timm import to_timm_state_dict
from vitstem.spec import load_spec

SPEC = load_spec({"spec_version": 1, "image_size": 16, "patch_size": 4, "embed_dim": 8})
WEIGHTS = vitstem.init_weights(SPEC, seed=4)
HF_CONFIG = {"model_type": "vit", "image_size": 16, "patch_size": 4, "hidden_size": 8, "num_channels": 3,
             "layer_norm_eps": 1e-12}
PROCESSOR = {"image_processor_type": "ViTImageProcessor", "do_rescale": True, "rescale_factor": 1 / 255,
             "do_normalize": True, "image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.25, 0.5], "do_resize": True,
             "resample": 2}
TIMM_CONFIG = {"architecture": "vit_test", "pretrained_cfg": {
    "input_size": [3, 16, 16], "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.5], "crop_pct": 0.9,
    "crop_mode": "center", "interpolation": "bicubic"}}

# (format, file, field path, kind): every field the import reads from a config.
FIELDS = [
    ("hf", "config.json", "image_size", "size"), ("hf", "config.json", "patch_size", "size"),
    ("hf", "config.json", "hidden_size", "int"), ("hf", "config.json", "num_channels", "int"),
    ("hf", "config.json", "layer_norm_eps", "positive"), ("hf", "config.json", "rms_norm_eps", "positive"),
    ("hf", "config.json", "mask_ratio", "ratio"), ("hf", "config.json", "is_native", "bool"),
    ("hf", "config.json", "model_type", "text"), ("hf", "config.json", "_name_or_path", "text"),
    ("hf", "config.json", "vision_config", "object"),
    ("hf", "preprocessor_config.json", "do_rescale", "bool"), ("hf", "preprocessor_config.json", "do_normalize", "bool"),
    ("hf", "preprocessor_config.json", "do_resize", "bool"),
    ("hf", "preprocessor_config.json", "rescale_factor", "positive"),
    ("hf", "preprocessor_config.json", "image_mean", "numbers"), ("hf", "preprocessor_config.json", "image_std", "numbers"),
    ("hf", "preprocessor_config.json", "resample", "resample"),
    ("hf", "preprocessor_config.json", "image_processor_type", "text"),
    ("timm", "config.json", "architecture", "text"), ("timm", "config.json", "pretrained_cfg", "object"),
    ("timm", "config.json", "pretrained_cfg.input_size", "triple"),
    ("timm", "config.json", "pretrained_cfg.mean", "numbers"), ("timm", "config.json", "pretrained_cfg.std", "numbers"),
    ("timm", "config.json", "pretrained_cfg.crop_pct", "positive"),
    ("timm", "config.json", "pretrained_cfg.crop_mode", "text"),
    ("timm", "config.json", "pretrained_cfg.interpolation", "text"),
]

_ANY = st.recursive(st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats(allow_nan=True) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                    max_leaves=8)
_NOT_NUMBER = st.booleans() | st.text(max_size=8) | st.lists(_ANY, max_size=3) | st.dictionaries(st.text(max_size=3), _ANY, max_size=2)
_BAD_INT = (_NOT_NUMBER | st.floats() | st.integers(-10**30, 0) | st.integers(2**31, 10**400)
            | st.sampled_from(["224", "16", 224.0, 16.5, [16, "a"], [True], [None, 4]]))


def _garbage(kind: str):
    """JSON values (never null: null is absent) that are not a `kind`."""
    finite_bad = st.floats(allow_nan=True).filter(lambda v: not np.isfinite(v)) | st.sampled_from([float("inf"), 1e400])
    return {
        "size": _BAD_INT.filter(lambda v: not (isinstance(v, list) and 1 <= len(v) <= 2 and all(
            isinstance(s, int) and not isinstance(s, bool) and 1 <= s < 2**31 for s in v))) | st.just([16, 16, 16]),
        "int": _BAD_INT,
        "triple": (_BAD_INT | st.just([3, 16]) | st.just([3, 16, "16"]) | st.just([3, 16, 16.0])).filter(
            lambda v: not (isinstance(v, list) and len(v) == 3 and v[0] == 3 and all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in v))),
        "positive": _NOT_NUMBER | finite_bad | st.floats(max_value=0) | st.integers(max_value=0) | st.just("1/255"),
        "ratio": _NOT_NUMBER | finite_bad | st.floats(min_value=1.0001, allow_infinity=False) | st.floats(max_value=-1e-9),
        "bool": st.integers() | st.floats() | st.text(max_size=6) | st.sampled_from(["false", "true", 0, 1, [True]]),
        "text": st.booleans() | st.integers() | st.floats() | st.lists(st.text(max_size=3), min_size=0, max_size=2),
        "object": st.booleans() | st.integers() | st.text(max_size=5) | st.lists(st.integers(), max_size=2),
        "numbers": (st.text(max_size=5) | st.booleans() | finite_bad | st.sampled_from([[0.5, 0.5], [0.5] * 4, ["x"] * 3,
                    [0.5, None, 0.5], [[0.5]] * 3, {"r": 0.5}, [True, 0.5, 0.5]])
                    | st.lists(st.floats(-1, 1), min_size=4, max_size=6)),
        "resample": _BAD_INT.filter(lambda v: v != 0) | st.integers(6, 100) | st.just("bicubic"),
    }[kind]


def _write(directory, fmt, hf_config=None, processor=None, timm_config=None):
    directory.mkdir(parents=True, exist_ok=True)
    state = to_hf_state_dict(SPEC, WEIGHTS, "ViT") if fmt == "hf" else to_timm_state_dict(SPEC, WEIGHTS)
    from safetensors.numpy import save_file

    save_file(state, str(directory / "model.safetensors"))
    if fmt == "hf":
        (directory / "config.json").write_text(json.dumps(HF_CONFIG if hf_config is None else hf_config))
        (directory / "preprocessor_config.json").write_text(json.dumps(PROCESSOR if processor is None else processor))
    else:
        (directory / "config.json").write_text(json.dumps(TIMM_CONFIG if timm_config is None else timm_config))
    return directory / "model.safetensors"


def _with(doc: dict, dotted: str, value) -> dict:
    doc = json.loads(json.dumps(doc))
    *parents, key = dotted.split(".")
    target = doc
    for parent in parents:
        target = target[parent]
    target[key] = value
    return doc


def _configs(fmt, file, field, value):
    if fmt == "timm":
        return {"timm_config": _with(TIMM_CONFIG, field, value)}
    if file == "config.json":
        return {"hf_config": _with(HF_CONFIG, field, value)}
    return {"processor": _with(PROCESSOR, field, value)}


@pytest.mark.slow
@fuzz(150)
@given(case=st.sampled_from(FIELDS).flatmap(lambda f: st.tuples(st.just(f), _garbage(f[3]))))
def test_a_badly_typed_field_is_one_line_naming_the_file_and_the_field(case, tmp_path_factory):
    (fmt, file, field, kind), value = case
    if field == "model_type" and isinstance(value, str):
        return
    checkpoint = _write(tmp_path_factory.mktemp("ckpt"), fmt, **_configs(fmt, file, field, value))
    with pytest.raises(vitstem.SpecError) as info:
        import_checkpoint(checkpoint, fmt)
    message = str(info.value)
    assert message.startswith(f"{checkpoint.with_name(file)}: {field}"), (value, message)
    assert "\n" not in message and len(message) < 400, message


@pytest.mark.parametrize("fmt, file, field, kind", FIELDS)
def test_null_is_absent(tmp_path, fmt, file, field, kind):
    """A null field gives the spec the file without that field gives (the peers' None default)."""
    with_null = import_checkpoint(_write(tmp_path / "null", fmt, **_configs(fmt, file, field, None)), fmt)
    doc = {"timm_config": TIMM_CONFIG} if fmt == "timm" else (
        {"hf_config": HF_CONFIG} if file == "config.json" else {"processor": PROCESSOR})
    name, *rest = field.split(".")
    absent = json.loads(json.dumps(next(iter(doc.values()))))
    (absent[name] if rest else absent).pop(rest[0] if rest else name, None)
    without = import_checkpoint(_write(tmp_path / "absent", fmt, **{next(iter(doc)): absent}), fmt)
    assert with_null[0] == without[0]


def test_well_typed_configs_give_the_spec_they_state(tmp_path):
    """The typed reader accepts the peers' files and reads every field faithfully."""
    spec, weights = import_checkpoint(_write(tmp_path / "hf", "hf"), "hf")
    pre = spec.input.preprocess
    assert pre.scale == 1 / 255 and pre.mean == (0.5, 0.4, 0.3) and pre.std == (0.2, 0.25, 0.5)
    assert spec.image_size == (16, 16) and spec.embed_dim == 8
    assert all(np.array_equal(weights[k], WEIGHTS[k]) for k in WEIGHTS)
    scalar = import_checkpoint(_write(tmp_path / "scalar", "hf", processor={**PROCESSOR, "image_mean": 0.25,
                                                                          "do_rescale": False}), "hf")[0]
    assert scalar.input.preprocess.mean == (0.25,) * 3 and scalar.input.preprocess.scale == 1.0
    plain = import_checkpoint(_write(tmp_path / "plain", "hf", processor={**PROCESSOR, "do_normalize": False}), "hf")[0]
    assert plain.input.preprocess.mean == (0.0,) * 3 and plain.input.preprocess.std == (1.0,) * 3
    explain = {}
    timm = import_checkpoint(_write(tmp_path / "timm", "timm"), "timm", explain=explain)[0]
    assert timm.input.preprocess.mean == (0.5, 0.4, 0.3) and timm.image_size == (16, 16)
    assert explain["run_flags"] == "--resize shortest-edge --crop-pct 0.9 --crop center --interpolation bicubic"
    explain = {}
    import_checkpoint(_write(tmp_path / "nearest", "hf", processor={**PROCESSOR, "resample": 0}), "hf", explain=explain)
    assert explain["run_flags"] is None  # `vitstem run` has no nearest resize: no flags rather than wrong ones


@pytest.mark.parametrize("fmt, file, field, value, words", [
    ("hf", "config.json", "hidden_size", 16, "hidden_size: 16, but the patch kernel's D is 8"),
    ("hf", "config.json", "num_channels", 1, "num_channels: 1, but the patch kernel's channel count is 3"),
    ("hf", "config.json", "patch_size", [4, 8], "patch_size: 4x8, but the patch kernel's size is 4x4"),
    ("timm", "config.json", "pretrained_cfg.input_size", [1, 16, 16],
     "pretrained_cfg.input_size: 1 channels, but the patch kernel takes 3"),
    ("hf", "preprocessor_config.json", "image_mean", [0.5, 0.5], "image_mean: 2 values, expected 3"),
])
def test_fields_the_tensors_also_state_must_agree(tmp_path, fmt, file, field, value, words):
    checkpoint = _write(tmp_path, fmt, **_configs(fmt, file, field, value))
    with pytest.raises(vitstem.SpecError) as info:
        import_checkpoint(checkpoint, fmt)
    assert str(info.value).startswith(f"{checkpoint.with_name(file)}: {words}"), str(info.value)


@pytest.mark.slow
@pytest.mark.parametrize("file, field, value", [("config.json", "image_size", "224"),
                                                ("config.json", "hidden_size", -5),
                                                ("preprocessor_config.json", "image_mean", "x"),
                                                ("config.json", "vision_config", {"image_size": [16, "a"]})])
def test_cli_says_one_line_and_exits_2(tmp_path, file, field, value):
    checkpoint = _write(tmp_path / "ckpt", "hf", **_configs("hf", file, field, value))
    result = subprocess.run([sys.executable, "-m", "vitstem", "import", str(checkpoint), "--format", "hf", "-o",
                             str(tmp_path / "out")], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    shown = "vision_config.image_size" if field == "vision_config" else field
    assert result.stderr.startswith(f"vitstem: error: {checkpoint.with_name(file)}: {shown}"), result.stderr
    assert not (tmp_path / "out").exists()


def test_a_processor_object_is_read_by_the_same_rule():
    """from_hf / deploy pass transformers' processor objects: their attributes get the same typed reading."""
    from vitstem.interop.hf import processor_preprocess

    class Processor:
        do_rescale, rescale_factor, do_normalize = True, np.float32(0.5), True
        image_mean, image_std = (0.5, 0.5, 0.5), [np.float64(0.25)] * 3

    assert processor_preprocess(Processor(), 3) == {"scale": 0.5, "mean": [0.5] * 3, "std": [0.25] * 3}
    Processor.do_normalize = "yes"
    with pytest.raises(vitstem.SpecError, match=r"^the image processor: do_normalize: expected true or false, got 'yes'"):
        processor_preprocess(Processor(), 3)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["/dev/zero", "fifo"])
def test_a_config_that_is_not_a_regular_file_is_refused_unread(tmp_path, target):
    """--config /dev/zero would never end and a FIFO would block: refused from stat, one line, exit 2."""
    if target == "fifo":
        target = tmp_path / "fifo"
        os.mkfifo(target)
    checkpoint = _write(tmp_path / "ckpt", "timm")
    result = subprocess.run([sys.executable, "-m", "vitstem", "import", str(checkpoint), "--format", "timm",
                             "--config", str(target), "-o", str(tmp_path / "out")], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert result.returncode == 2 and result.stderr == (f"vitstem: error: cannot read {target}: not a regular file "
                                                        "(a device, FIFO or socket)\n"), result.stderr
