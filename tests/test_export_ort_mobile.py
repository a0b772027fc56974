"""--ort writes the reduced-build operator config of the .ort file: the operators ORT Mobile must keep."""

import onnx

from vitstem import export_onnx
from vitstem.spec import init_weights, load_spec


def test_the_operator_config_lists_the_ort_models_operators_with_types(tmp_path):
    spec = load_spec("vitstem_tiny_test")
    path = export_onnx(spec, init_weights(spec), tmp_path / "stem.onnx", ort_format=True, precision="int8")
    config = tmp_path / "stem.required_operators_and_types.config"
    lines = [l for l in config.read_text().splitlines() if l and not l.startswith("#")]
    ops = {entry.split("{")[0] for line in lines for entry in line.split(";")[2].split("},") if entry}
    domains = {line.split(";")[0] for line in lines}
    graph_ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert domains <= {"ai.onnx", "com.microsoft"}
    assert "stem.ort" in config.read_text().splitlines()[1]
    # ORT may fuse QDQ pairs into its own kernels, but every standard op it keeps comes from the graph
    standard = {entry.split("{")[0] for line in lines if line.startswith("ai.onnx;")
                for entry in line.split(";")[2].split("},") if entry}
    assert standard and standard <= graph_ops | {"Shape", "Gather", "Unsqueeze"}
    assert ops & {"Conv", "QLinearConv", "ConvInteger", "MatMulInteger", "QLinearMatMul", "DynamicQuantizeLinear",
                  "QuantizeLinear"}
