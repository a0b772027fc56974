"""Provenance and integrity (issue 12): a copied digest, an edited spec or graph, a mismatched .onnx/.ort
pair or weights saved for another spec are refused; the edge runtime verifies the whole file without onnx."""

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.fuzz import fuzz

import vitstem
from vitstem.runtime import integrity
from vitstem.spec import load_spec

SPEC = load_spec("vitstem_tiny_test")
IMAGES = np.random.default_rng(0).standard_normal(SPEC.input_shape(2)).astype(np.float32)


@pytest.fixture(scope="module")
def two_exports(tmp_path_factory):
    """Directory with w0/w1.safetensors and a0.onnx/a1.onnx exported from them."""
    d = tmp_path_factory.mktemp("prov")
    for seed in (0, 1):
        w = vitstem.init_weights(SPEC, seed=seed)
        vitstem.save_weights(w, d / f"w{seed}.safetensors", SPEC)
        vitstem.export_onnx(SPEC, w, d / f"a{seed}.onnx")
    return d


def _edit(src, dst, change, reseal):
    """Apply `change(model)` to the model at `src`; write it to `dst`, its digest recomputed or not."""
    import onnx

    model = onnx.load_model_from_string(src.read_bytes())
    change(model)
    stored = next(p for p in model.metadata_props if p.key == "vitstem.digest")
    if reseal:
        stored.value = integrity.PLACEHOLDER
        dst.write_bytes(integrity.seal(model.SerializeToString(deterministic=True)))
    else:
        dst.write_bytes(model.SerializeToString(deterministic=True))
    return dst


def _set(key, value):
    def change(model):
        next(p for p in model.metadata_props if p.key == "vitstem." + key).value = value
    return change


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "vitstem", *map(str, args)], capture_output=True, text=True, cwd=cwd)


@pytest.mark.slow
def test_a_copied_weights_digest_does_not_prove_provenance(two_exports, tmp_path):
    """a1's graph (weights seed 1) labelled with a0's weights digest and resealed: the digests all agree,
    but exporting w0 again gives other bytes."""
    from vitstem.export import check_onnx
    from vitstem.spec.exported import read_metadata as read

    d = two_exports
    copied = read(__import__("onnx").load(str(d / "a0.onnx")).metadata_props)["weights_digest"]
    forged = _edit(d / "a1.onnx", tmp_path / "forged.onnx", _set("weights_digest", copied), reseal=True)
    check_onnx(forged, mobile=False)  # every digest is consistent: only re-export can tell
    with pytest.raises(vitstem.ExportError, match="not exported from .*w0.safetensors"):
        check_onnx(forged, weights=d / "w0.safetensors", mobile=False)
    assert check_onnx(d / "a0.onnx", weights=d / "w0.safetensors", mobile=False)["weights"] == "match"
    result = _cli("check", "--no-mobile", "--weights", d / "w0.safetensors", forged)
    assert result.returncode == 2 and "not exported from" in result.stderr and result.stderr.count("\n") == 1


def _with_preprocessing(model):
    """The stored spec swapped for one that adds preprocessing (same input/output shapes), digest recomputed."""
    other = SPEC.replace(name="other", input={"layout": "NCHW", "preprocess": {
        "scale": 1 / 255, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}})
    _set("spec", other.to_json())(model)
    _set("spec_digest", other.digest())(model)


@pytest.mark.parametrize("what, change", [
    ("spec swapped, its digest recomputed", _with_preprocessing),
    ("export options edited", _set("export_options", None)),
    ("an initializer edited", lambda m: m.graph.initializer[0].raw_data.__len__() and m.graph.initializer[0]
     .CopyFrom(__import__("onnx").numpy_helper.from_array(
         __import__("onnx").numpy_helper.to_array(m.graph.initializer[0]) + 1, m.graph.initializer[0].name))),
    ("a node added", lambda m: m.graph.node.append(__import__("onnx").helper.make_node(
        "Identity", ["z0"], ["extra"]))),
    ("the version edited", _set("version", "0.0.0")),
    ("doc string edited", lambda m: setattr(m, "doc_string", "x")),
])
def test_any_edit_without_a_new_digest_is_refused_by_check_and_runtime(two_exports, tmp_path, what, change):
    from vitstem.export import check_onnx
    from vitstem.runtime import load

    if what == "export options edited":  # a valid but different option set
        def change(model):
            options = json.loads(next(p.value for p in model.metadata_props if p.key == "vitstem.export_options"))
            options["ort_format"] = True
            _set("export_options", json.dumps(options))(model)
    path = _edit(two_exports / "a0.onnx", tmp_path / "m.onnx", change, reseal=False)
    with pytest.raises(vitstem.ExportError, match="m.onnx"):
        check_onnx(path, mobile=False)
    with pytest.raises(vitstem.ExportError, match="m.onnx"):
        load(path)(IMAGES)


@pytest.mark.slow
def test_the_runtime_verifies_without_onnx_and_has_an_opt_out(two_exports, tmp_path):
    """Only the digest catches an edited initializer at load (the graph still runs, computing other z0)."""
    import onnx

    from vitstem.runtime import load

    def bump(model):
        t = model.graph.initializer[-1]
        t.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(t) + 1, t.name))

    path = _edit(two_exports / "a0.onnx", tmp_path / "m.onnx", bump, reseal=False)
    with pytest.raises(vitstem.ExportError, match="vitstem.digest mismatch"):
        load(path)
    edited = load(path, verify=False)(IMAGES)
    assert not np.array_equal(edited, load(two_exports / "a0.onnx")(IMAGES))
    np.save(tmp_path / "x.npy", IMAGES)
    refused = _cli("run", path, tmp_path / "x.npy", "-o", tmp_path / "z.npy")
    assert refused.returncode == 2 and "vitstem.digest mismatch" in refused.stderr
    assert not (tmp_path / "z.npy").exists()
    assert _cli("run", "--no-verify", path, tmp_path / "x.npy", "-o", tmp_path / "z.npy").returncode == 0
    np.testing.assert_array_equal(np.load(tmp_path / "z.npy"), edited)
    # the check itself imports neither onnx nor anything but hashlib
    code = ("import sys; from vitstem.runtime import load; load(sys.argv[1]); "
            "assert 'onnx' not in sys.modules, 'onnx imported'")
    ok = subprocess.run([sys.executable, "-c", code, str(two_exports / "a0.onnx")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr


@fuzz(25)
@given(at=st.floats(0, 1, exclude_max=True), xor=st.integers(1, 255))
def test_any_flipped_byte_is_refused_at_load(two_exports, tmp_path_factory, at, xor):
    """Every byte of the file is covered: flipping any one of them never loads silently."""
    from vitstem.runtime import load

    data = bytearray((two_exports / "a0.onnx").read_bytes())
    i = int(len(data) * at)
    data[i] ^= xor
    path = tmp_path_factory.mktemp("flip") / "m.onnx"
    path.write_bytes(bytes(data))
    with pytest.raises(vitstem.ExportError):
        load(path)


def test_an_old_file_without_digest_needs_the_opt_out(two_exports, tmp_path):
    from vitstem.runtime import load

    def drop(model):
        keep = [p for p in model.metadata_props if p.key != "vitstem.digest"]
        del model.metadata_props[:]
        model.metadata_props.extend(keep)
        model.metadata_props.add(key="vitstem.digest", value="x")  # _edit looks it up; then remove it
        model.metadata_props.pop()

    import onnx

    model = onnx.load(str(two_exports / "a0.onnx"))
    drop(model)
    path = tmp_path / "old.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(vitstem.ExportError, match="no vitstem.digest .*verify=False"):
        load(path)
    assert load(path, verify=False)(IMAGES).shape == (2, SPEC.num_tokens(SPEC.image_size), SPEC.embed_dim)


def test_a_mismatched_onnx_ort_pair_is_detected(tmp_path):
    """An export killed between the .onnx and the .ort: a new .onnx beside the old .ort (and the reverse)."""
    from vitstem.export import check_onnx
    from vitstem.runtime import load

    w0, w1 = vitstem.init_weights(SPEC, seed=0), vitstem.init_weights(SPEC, seed=1)
    vitstem.export_onnx(SPEC, w0, tmp_path / "m.onnx", ort_format=True)
    np.testing.assert_allclose(load(tmp_path / "m.ort")(IMAGES), load(tmp_path / "m.onnx")(IMAGES), atol=1e-6)
    old_ort = (tmp_path / "m.ort").read_bytes()
    vitstem.export_onnx(SPEC, w1, tmp_path / "m.onnx", ort_format=True)
    new_ort = (tmp_path / "m.ort").read_bytes()
    (tmp_path / "m.ort").write_bytes(old_ort)  # the second write never happened
    with pytest.raises(vitstem.ExportError, match="mismatched .onnx/.ort pair"):
        check_onnx(tmp_path / "m.onnx", mobile=False)
    with pytest.raises(vitstem.ExportError, match="mismatched .onnx/.ort pair"):
        load(tmp_path / "m.ort")
    (tmp_path / "m.ort").write_bytes(new_ort)
    check_onnx(tmp_path / "m.onnx", mobile=False)
    load(tmp_path / "m.ort")
    (tmp_path / "m.onnx").unlink()  # a device ships the .ort alone
    load(tmp_path / "m.ort")


def test_weights_saved_for_another_spec_are_refused(tmp_path):
    """Same shapes, another spec (adds preprocessing): the weights file's stored spec digest tells."""
    from vitstem.spec import load_weights

    other = SPEC.replace(name="other")
    vitstem.save_weights(vitstem.init_weights(other), tmp_path / "w.safetensors", other)
    with pytest.raises(vitstem.WeightsError, match="saved for spec 'other' sha256:[0-9a-f]{64}, not for this spec"):
        load_weights(tmp_path / "w.safetensors", SPEC)
    assert load_weights(tmp_path / "w.safetensors", SPEC, other_spec=True).keys() == vitstem.init_weights(SPEC).keys()
    (tmp_path / "s.json").write_text(SPEC.to_json())
    result = _cli("export", tmp_path / "s.json", "--weights", tmp_path / "w.safetensors", "-o", tmp_path / "m.onnx")
    assert result.returncode == 2 and "saved for spec 'other'" in result.stderr


def test_external_data_is_refused(two_exports, tmp_path):
    import onnx

    from vitstem.export import check_onnx
    from vitstem.runtime import load

    model = onnx.load(str(two_exports / "a0.onnx"))
    onnx.save_model(model, tmp_path / "ext.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.data", size_threshold=0)
    with pytest.raises(vitstem.ExportError, match="external data"):
        check_onnx(tmp_path / "ext.onnx", mobile=False)
    with pytest.raises(vitstem.ExportError, match="ext.onnx"):
        load(tmp_path / "ext.onnx")


@pytest.mark.slow
def test_check_gives_the_same_answer_whatever_the_cwd(two_exports, tmp_path):
    rel = _cli("check", "--no-mobile", "a0.onnx", cwd=two_exports)
    other = _cli("check", "--no-mobile", two_exports / "a0.onnx", cwd=tmp_path)
    assert rel.returncode == other.returncode == 0
    assert rel.stdout.replace("a0.onnx", str(two_exports / "a0.onnx"), 1) == other.stdout


def test_a_file_of_another_vitstem_version_is_not_called_foreign(two_exports, monkeypatch):
    """Export bytes change between versions (0.2.0 gathers patches where 0.1.0 ran a Conv): a file of another
    version is not 'not exported from W' but named as needing that version to prove provenance."""
    from vitstem.export import check_onnx

    d, exported_by = two_exports, vitstem.__version__
    monkeypatch.setattr(vitstem, "__version__", "9.9.9")
    with pytest.raises(vitstem.ExportError, match=rf"exported by vitstem {exported_by}, this is 9\.9\.9: provenance "
                                                  r"is proven by exporting again with the same version"):
        check_onnx(d / "a0.onnx", weights=d / "w0.safetensors", mobile=False)
