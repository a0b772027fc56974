"""`vitstem check` and the export CLI: a sound file passes; corrupt, truncated and tampered files exit 2
with one line naming the mismatch."""

from __future__ import annotations

import json

import numpy as np
import pytest

from support.export_cases import images, small_spec, spec_and_weights
from vitstem.cli import main
from vitstem.spec import save_weights


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("check")
    spec, weights = spec_and_weights(small_spec())
    (tmp / "spec.json").write_text(spec.to_json())
    save_weights(weights, tmp / "w.safetensors", spec)
    save_weights(spec_and_weights(spec, seed=1)[1], tmp / "other.safetensors", spec)
    assert main(["export", str(tmp / "spec.json"), "--weights", str(tmp / "w.safetensors"), "-o", str(tmp / "m.onnx"),
                 "--opset", "17", "--image-size", "16x24,8x8", "--batch", "4"]) == 0
    return tmp


def run_check(capsys, *args):
    code = main(["check", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err.strip()


def test_sound_model_passes_every_check(exported, capsys):
    code, out, err = run_check(capsys, exported / "m.onnx", "--weights", exported / "w.safetensors", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["checker"] == "ok" and report["weights"] == "match" and report["opset"] == 17
    assert report["ir_version"] == 8 and report["options"]["sizes"] == [[16, 24], [8, 8]]
    assert report["options"]["batch"] == 4
    assert isinstance(report["mobile"]["nnapi_or_coreml_worth_trying"], bool) and report["mobile"]["analysis"]
    code, out, _ = run_check(capsys, exported / "m.onnx", "--no-mobile")
    assert code == 0 and out.startswith("ok: ") and "mobile" not in out


def _one_line_error(capsys, path, *extra):
    code, _, err = run_check(capsys, path, "--no-mobile", *extra)
    assert code == 2 and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("cut", [0, 100, 0.5, -10])
def test_truncated_files_exit_2(exported, tmp_path, capsys, cut):
    data = (exported / "m.onnx").read_bytes()
    n = int(len(data) * cut) if isinstance(cut, float) else cut
    (tmp_path / "cut.onnx").write_bytes(data[:n])
    err = _one_line_error(capsys, tmp_path / "cut.onnx")
    assert "not a readable ONNX file" in err or "onnx checker" in err or "graph_digest mismatch" in err


def _tamper(exported, tmp_path, change):
    import onnx

    model = onnx.load(exported / "m.onnx")
    change(model)
    path = tmp_path / "tampered.onnx"
    onnx.save(model, path)
    return path


def _set_meta(key, value):
    def change(model):
        for p in model.metadata_props:
            if p.key == key:
                p.value = value
    return change


def test_tampered_graph_is_named(exported, tmp_path, capsys):
    from onnx import numpy_helper

    def change(model):
        table = next(i for i in model.graph.initializer if i.name == "table/stacked")
        array = numpy_helper.to_array(table).copy()
        array[0, 0] += 1
        table.CopyFrom(numpy_helper.from_array(array, table.name))

    err = _one_line_error(capsys, _tamper(exported, tmp_path, change))
    assert "vitstem.graph_digest mismatch" in err


def test_tampered_spec_is_named(exported, tmp_path, capsys):
    spec = json.loads(small_spec().to_json())
    spec["embed_dim"] = 32
    err = _one_line_error(capsys, _tamper(exported, tmp_path, _set_meta("vitstem.spec", json.dumps(spec))))
    assert "vitstem.spec_digest mismatch" in err
    err = _one_line_error(capsys, _tamper(exported, tmp_path, _set_meta("vitstem.spec", "{not json")))
    assert "vitstem.spec does not load" in err


def test_missing_metadata_and_other_weights_are_named(exported, tmp_path, capsys):
    err = _one_line_error(capsys, _tamper(exported, tmp_path, lambda m: m.metadata_props.pop()))
    assert "metadata lacks vitstem." in err
    err = _one_line_error(capsys, exported / "m.onnx", "--weights", exported / "other.safetensors")
    assert "vitstem.weights_digest mismatch" in err


def test_checker_failure_is_named(exported, tmp_path, capsys):
    from vitstem.export.metadata import graph_digest

    def change(model):
        model.graph.node[0].op_type = "NoSuchOp"
        _set_meta("vitstem.graph_digest", graph_digest(model.graph))(model)

    err = _one_line_error(capsys, _tamper(exported, tmp_path, change))
    assert "onnx checker" in err and "NoSuchOp" in err


def test_export_cli_writes_int8_fp16_and_ort(exported, tmp_path, capsys):
    spec_json, weights = exported / "spec.json", exported / "w.safetensors"
    calib = tmp_path / "calib.npy"
    np.save(calib, images(small_spec(), batch=3))
    assert main(["export", str(spec_json), "--weights", str(weights), "-o", str(tmp_path / "q.onnx"),
                 "--precision", "int8", "--calibration", str(calib), "--ort"]) == 0
    assert (tmp_path / "q.ort").stat().st_size > 0
    assert main(["export", str(spec_json), "--weights", str(weights), "-o", str(tmp_path / "h.onnx"),
                 "--precision", "fp16", "--io-dtype", "float16", "--image-size", "dynamic"]) == 0
    for name in ("q.onnx", "h.onnx"):
        assert run_check(capsys, tmp_path / name, "--no-mobile")[0] == 0
    assert main(["export", str(spec_json), "--weights", str(weights), "-o", str(tmp_path / "x.onnx"),
                 "--profile", "exact", "--precision", "fp16"]) == 2
    assert "profile 'fast'" in capsys.readouterr().err
    assert main(["export", str(spec_json), "--weights", str(weights), "-o", str(tmp_path / "x.onnx"),
                 "--image-size", "16x2x4"]) == 2
    assert "is not N or HxW" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
