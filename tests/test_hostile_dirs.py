"""Directory outputs and late refusals (issue 12, round 2): `golden -o DIR` created missing parents and
replaced an input that was one of its files; `bench --json` replaced its own weights after minutes of timing;
`check --weights` on a whole model (vitstem compose) called its genuine stem "not exported from" them."""

import pytest

import vitstem
from vitstem.cli import main
from vitstem.errors import ExportError, OutputError
from vitstem.spec import load_spec

SPEC = load_spec("vitstem_tiny_test")


def test_golden_never_creates_parents_nor_replaces_an_input(tmp_path):
    from vitstem.conformance.golden import write_golden

    with pytest.raises(OutputError, match="does not exist"):
        write_golden(SPEC, tmp_path / "missing" / "deeper")
    assert not (tmp_path / "missing").exists()
    (tmp_path / "g").mkdir()
    weights = tmp_path / "g" / "model.onnx"  # the weights, named like the file golden writes
    vitstem.save_weights(vitstem.init_weights(SPEC), weights, SPEC)
    before = weights.read_bytes()
    with pytest.raises(OutputError, match="is an input of this command"):
        write_golden(SPEC, tmp_path / "g", weights=weights)
    assert weights.read_bytes() == before


def test_bench_refuses_its_json_output_before_timing(tmp_path, capsys):
    weights = tmp_path / "w.safetensors"
    vitstem.save_weights(vitstem.init_weights(SPEC), weights, SPEC)
    before = weights.read_bytes()
    for out, message in ((weights, "is an input of this command"), (tmp_path / "no" / "r.json", "does not exist")):
        assert main(["bench", "vitstem_tiny_test", "--weights", str(weights), "--runs", "1", "--warmup", "0",
                     "--only", "ort_vitstem", "--quiet", "--json", str(out)]) == 2
        assert message in capsys.readouterr().err
    assert weights.read_bytes() == before


def test_whole_model_provenance_is_its_stem_part(tmp_path):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from vitstem.deploy.join import compose
    from vitstem.export.checks import check_onnx

    for seed in (0, 1):
        vitstem.save_weights(vitstem.init_weights(SPEC, seed), tmp_path / f"w{seed}.safetensors", SPEC)
    vitstem.export_onnx(SPEC, vitstem.init_weights(SPEC, 0), tmp_path / "stem.onnx")
    tokens = SPEC.num_tokens(SPEC.image_size)
    encoder = helper.make_model(helper.make_graph(
        [helper.make_node("ReduceMean", ["z", "axes"], ["pooled"], keepdims=0)], "enc",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["b", tokens, SPEC.embed_dim])],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["b", SPEC.embed_dim])],
        [numpy_helper.from_array(np.array([1], np.int64), "axes")]), opset_imports=[helper.make_opsetid("", 18)])
    encoder.ir_version = 8
    onnx.save(encoder, tmp_path / "enc.onnx")
    compose(tmp_path / "stem.onnx", tmp_path / "enc.onnx", tmp_path / "whole.onnx")
    assert check_onnx(tmp_path / "whole.onnx", weights=tmp_path / "w0.safetensors", mobile=False)["weights"] == "match"
    with pytest.raises(ExportError, match="weights_digest mismatch"):
        check_onnx(tmp_path / "whole.onnx", weights=tmp_path / "w1.safetensors", mobile=False)
