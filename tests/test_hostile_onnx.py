"""Hostile ONNX files: truncated, corrupted or tampered exports make `vitstem check` and the edge
runtime fail loudly (ExportError naming the mismatch); whatever passes the check computes the
exported z0 exactly."""

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
from vitstem.spec import load_spec

SPEC = load_spec("vitstem_tiny_test")
IMAGES = np.random.default_rng(0).standard_normal(SPEC.input_shape(2)).astype(np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(model bytes, its z0, path of the weights file it was exported from)."""
    from vitstem.runtime import load

    d = tmp_path_factory.mktemp("export")
    weights = vitstem.init_weights(SPEC)
    vitstem.save_weights(weights, d / "w.safetensors", SPEC)
    vitstem.export_onnx(SPEC, weights, d / "m.onnx")
    return (d / "m.onnx").read_bytes(), load(d / "m.onnx")(IMAGES), d / "w.safetensors"


def _check_and_run(path):
    """('ok', z0) when the file passes check and runs; ('refused', message) on ExportError."""
    from vitstem.export import check_onnx
    from vitstem.runtime import load

    try:
        check_onnx(path, mobile=False)
    except vitstem.ExportError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
        checked = str(exc)
    else:
        checked = None
    try:
        z0 = load(path)(IMAGES)
    except vitstem.ExportError as exc:
        assert str(path) in str(exc)
        return "refused", checked or str(exc)
    return ("refused", checked) if checked else ("ok", z0)


@fuzz(40)
@given(fraction=st.floats(0, 1, exclude_max=True))
def test_truncated_models_are_refused(exported, tmp_path_factory, fraction):
    data = exported[0]
    path = tmp_path_factory.mktemp("t") / "m.onnx"
    path.write_bytes(data[: int(len(data) * fraction)])
    verdict, message = _check_and_run(path)
    assert verdict == "refused"


@fuzz(60)
@given(flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=3))
def test_corrupted_models_are_refused_or_compute_the_exported_z0(exported, tmp_path_factory, flips):
    """A flip the check lets through (a doc string, a producer name) must not change z0 by one bit."""
    data = bytearray(exported[0])
    for where, mask in flips:
        data[int(where * len(data))] ^= mask
    path = tmp_path_factory.mktemp("c") / "m.onnx"
    path.write_bytes(bytes(data))
    verdict, result = _check_and_run(path)
    if verdict == "ok":
        np.testing.assert_array_equal(result, exported[1])


@fuzz(30)
@given(data=st.binary(max_size=200))
def test_random_bytes_are_not_a_model(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("r") / "m.onnx"
    path.write_bytes(data)
    assert _check_and_run(path)[0] == "refused"


def _tampered(exported, tmp_path, change):
    import onnx

    model = onnx.load_model_from_string(exported[0])
    change(model)
    path = tmp_path / "tampered.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def _set_meta(key, value):
    def change(model):
        for prop in model.metadata_props:
            if prop.key == "vitstem." + key:
                prop.value = value if not callable(value) else value(prop.value)
    return change


def _drop_meta(key):
    def change(model):
        kept = [p for p in model.metadata_props if p.key != "vitstem." + key]
        del model.metadata_props[:]
        model.metadata_props.extend(kept)
    return change


def _scale_initializer(model):
    from onnx import numpy_helper

    init = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1.001, init.name))


def _spec_with(**changes):
    def edit(text):
        doc = json.loads(text)
        doc.update(changes)
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return edit


TAMPERING = [
    ("an initializer scaled", _scale_initializer, "vitstem.graph_digest mismatch"),
    ("a node renamed", lambda m: setattr(m.graph.node[0], "name", "evil"), "vitstem.graph_digest mismatch"),
    ("spec changed, digest kept", _set_meta("spec", _spec_with(name="other")), "vitstem.spec_digest mismatch"),
    ("spec made invalid", _set_meta("spec", _spec_with(embed_dim=-1)), "vitstem.spec does not load"),
    ("spec not JSON", _set_meta("spec", lambda v: v[:-1]), "vitstem.spec does not load"),
    ("spec digest changed", _set_meta("spec_digest", "sha256:" + "0" * 64), "vitstem.spec_digest mismatch"),
    ("graph digest changed", _set_meta("graph_digest", "sha256:" + "0" * 64), "vitstem.graph_digest mismatch"),
    ("spec missing", _drop_meta("spec"), "metadata lacks vitstem.spec"),
    ("weights digest missing", _drop_meta("weights_digest"), "metadata lacks vitstem.weights_digest"),
]


@pytest.mark.slow
@pytest.mark.parametrize("what, change, words", TAMPERING, ids=[t[0] for t in TAMPERING])
def test_tampered_models_fail_check_naming_the_mismatch(exported, tmp_path, what, change, words):
    from vitstem.export import check_onnx

    path = _tampered(exported, tmp_path, change)
    with pytest.raises(vitstem.ExportError, match=words):
        check_onnx(path, mobile=False)
    result = _cli("check", "--no-mobile", str(path))
    assert result.returncode == 2 and words in result.stderr and len(result.stderr.strip().splitlines()) == 1, \
        result.stderr


def test_spec_metadata_that_no_longer_matches_the_graph_is_refused_by_the_runtime(exported, tmp_path):
    """A stored spec edited to another (valid) one with its digest recomputed: the graph still makes
    D=8 tokens; the runtime must not trust the new spec silently."""
    from vitstem.runtime import load

    other = SPEC.replace(prefix={"class_token": True, "dist_token": False, "register_tokens": 2})

    def change(model):
        _set_meta("spec", other.to_json())(model)
        _set_meta("spec_digest", other.digest())(model)

    path = _tampered(exported, tmp_path, change)
    from vitstem.export import check_onnx

    with pytest.raises(vitstem.ExportError):
        check_onnx(path, mobile=False)
    with pytest.raises(vitstem.VitstemError):
        load(path)(IMAGES)


@pytest.mark.parametrize("where", [b"images", b"vitstem.spec_digest", b"vitstem.version"])
def test_invalid_utf8_in_names_or_metadata_is_refused(exported, tmp_path, where):
    """One byte 0xff in the graph input's name or a metadata key: onnx.checker raised UnicodeDecodeError,
    read_metadata TypeError (protobuf hands back bytes), and the runtime's get_modelmeta UnicodeDecodeError."""
    from vitstem.export import check_onnx
    from vitstem.runtime import load

    data = exported[0]
    i = data.index(where)
    path = tmp_path / "m.onnx"
    path.write_bytes(data[:i] + b"\xff" + data[i + 1:])
    with pytest.raises(vitstem.ExportError, match="m.onnx"):
        check_onnx(path, mobile=False)
    with pytest.raises(vitstem.ExportError, match="m.onnx"):
        load(path)


def test_weights_that_are_not_the_exported_ones(exported, tmp_path):
    from vitstem.export import check_onnx

    path = tmp_path / "m.onnx"
    path.write_bytes(exported[0])
    assert check_onnx(path, weights=exported[2], mobile=False)["weights"] == "match"
    other = tmp_path / "other.safetensors"
    vitstem.save_weights(vitstem.init_weights(SPEC, seed=1), other, SPEC)
    with pytest.raises(vitstem.ExportError, match=f"vitstem.weights_digest mismatch: stored sha256:[0-9a-f]+, {other}"):
        check_onnx(path, weights=other, mobile=False)
    result = _cli("check", "--no-mobile", "--weights", str(other), str(path))
    assert result.returncode == 2 and "weights_digest mismatch" in result.stderr
    wrong_spec = tmp_path / "wrong.safetensors"
    tiny = load_spec({"spec_version": 1, "image_size": 4, "patch_size": 2, "embed_dim": 4})
    vitstem.save_weights(vitstem.init_weights(tiny), wrong_spec, tiny)
    with pytest.raises(vitstem.WeightsError, match="saved for spec .* not for this spec"):
        check_onnx(path, weights=wrong_spec, mobile=False)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "vitstem", *args], capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


@pytest.mark.parametrize("name", ["", "\x00", "名前\nx", "a" * 5000])
def test_every_valid_spec_name_exports(tmp_path, name):
    """name: "" is a valid spec; export_onnx raised onnx's ValidationError (graph name must be non-empty)."""
    from vitstem.runtime import load

    spec = SPEC.replace(name=name)
    vitstem.export_onnx(spec, vitstem.init_weights(spec), tmp_path / "m.onnx")
    assert load(tmp_path / "m.onnx").spec == spec


@pytest.mark.parametrize("options", ['[]', "null", '{"sizes": 5}', '{"sizes": [[1]]}', '{"io_dtype": "int64"}',
                                     '{"batch": "x"}'])
def test_tampered_export_options_are_refused(exported, tmp_path, options):
    """vitstem.export_options is covered by no digest and not validated: check_onnx passed all of these and the
    runtime crashed (AttributeError, TypeError, KeyError) or took them at their word."""
    from vitstem.export import check_onnx
    from vitstem.runtime import load

    path = _tampered(exported, tmp_path, _set_meta("export_options", options))
    with pytest.raises(vitstem.ExportError, match="export_options"):
        check_onnx(path, mobile=False)
    with pytest.raises(vitstem.ExportError, match="export_options"):
        load(path)
