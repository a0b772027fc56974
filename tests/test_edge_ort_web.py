"""onnxruntime-web (WASM, in Node): the golden vectors bit for bit, .ort = .onnx, and a missing kernel named."""

from pathlib import Path

import numpy as np
import pytest

from vitstem import export_onnx
from vitstem.conformance.engines import ort_web
from vitstem.conformance.engines import ENGINES, Unsupported, Workspace
from vitstem.conformance.matrix import Cell, sample_images
from vitstem.spec import init_weights, load_spec, save_weights

pytestmark = pytest.mark.slow

GOLDEN = Path(__file__).parents[1] / "conformance_tests" / "golden"


def _tensor(path: Path) -> np.ndarray:
    from onnx import TensorProto, numpy_helper

    proto = TensorProto()
    proto.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(proto)


def test_installed_here():
    assert ort_web.missing() is None
    assert ENGINES["onnxruntime-web"].missing() is None


@pytest.mark.parametrize("name", ["vitstem_tiny_test", "tiny_nhwc_uint8", "tiny_registers_prenorm"])
def test_wasm_reproduces_the_golden_output_bit_for_bit(name):
    images, expected = (_tensor(GOLDEN / name / "test_data_set_0" / f) for f in ("input_0.pb", "output_0.pb"))
    got = ort_web.runner().run(GOLDEN / name / "model.onnx", images)
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.array_equal(got, expected)


def test_the_ort_file_runs_as_the_onnx_file(tmp_path):
    spec = load_spec("vitstem_tiny_test")
    weights = init_weights(spec, 3)
    path = export_onnx(spec, weights, tmp_path / "m.onnx", ort_format=True)
    images = sample_images(spec, 2, spec.image_size, seed=1)
    from_onnx = ort_web.runner().run(path, images)
    from_ort = ort_web.runner().run(path.with_suffix(".ort"), images)
    assert np.array_equal(from_onnx, from_ort)
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert np.allclose(from_onnx, session.run(None, {"images": images})[0], rtol=0, atol=1e-5)


def test_a_kernel_the_wasm_build_lacks_is_named_not_failed(tmp_path, monkeypatch):
    """The engine turns ORT's 'no implementation for Op(version)' into a refusal naming the op."""
    import onnx
    from onnx import TensorProto, helper

    # A float64 Resize: the CPU kernels (and so the WASM build) have none (see the exporter's refusal).
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [1, 1, 2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [1, 1, 4, 4])],
                              [helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)
    onnx.save(model, tmp_path / "resize64.onnx")
    with pytest.raises(ort_web.OrtWebError, match=r"implementation for Resize\(13\)"):
        ort_web.runner().run(tmp_path / "resize64.onnx", np.zeros((1, 1, 2, 2)))

    engine = ENGINES["onnxruntime-web"]
    spec = load_spec("vitstem_tiny_test")
    ws = Workspace(save_weights(init_weights(spec, 0), tmp_path / "w.safetensors", spec), tmp_path)
    cell = Cell("fast", "fp32", 1, spec.input.layout, spec.image_size)
    monkeypatch.setattr(engine, "model", lambda *a: (tmp_path / "resize64.onnx", False, ""))
    monkeypatch.setattr(ort_web, "graph_input_dtype", lambda path: "float64")
    prepared = engine.prepare(ws, spec, cell, 13)
    with pytest.raises(Unsupported, match=r"WASM build of onnxruntime-web has no kernel for Resize\(13\)"):
        prepared.run(np.zeros((1, 1, 2, 2)))
