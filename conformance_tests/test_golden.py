"""The committed golden vectors: regenerating them gives the same bytes, and runtimes reproduce output_0.pb exactly."""

from pathlib import Path

import numpy as np
import pytest

from vitstem.conformance.golden import GOLDEN_SPECS, write_golden

GOLDEN = Path(__file__).parent / "golden"
FILES = ("model.onnx", "test_data_set_0/input_0.pb", "test_data_set_0/output_0.pb")


def _tensor(path: Path) -> np.ndarray:
    from onnx import TensorProto, numpy_helper

    proto = TensorProto()
    proto.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(proto)


def test_the_committed_set_is_the_golden_suite():
    assert sorted(p.name for p in GOLDEN.iterdir() if p.is_dir()) == sorted(GOLDEN_SPECS)
    for name in GOLDEN_SPECS:
        assert all((GOLDEN / name / f).is_file() for f in FILES)
        assert sum((GOLDEN / name / f).stat().st_size for f in FILES) < 32_000  # kilobytes, not megabytes


@pytest.mark.parametrize("name", sorted(GOLDEN_SPECS))
def test_regenerating_gives_the_same_bytes(name, tmp_path):
    doc, in_graph = GOLDEN_SPECS[name]
    write_golden(doc, tmp_path, preprocess_in_graph=in_graph)
    for f in FILES:
        assert (tmp_path / f).read_bytes() == (GOLDEN / name / f).read_bytes(), (
            f"{name}/{f} changed; if intended, run `vitstem golden --suite -o conformance_tests/golden`")


@pytest.mark.parametrize("name", sorted(GOLDEN_SPECS))
def test_onnxruntime_and_the_onnx_reference_reproduce_output_0_bit_for_bit(name):
    import onnx
    import onnxruntime as ort
    from onnx.reference import ReferenceEvaluator

    model = GOLDEN / name / "model.onnx"
    images, expected = (_tensor(GOLDEN / name / f) for f in FILES[1:])
    assert expected.dtype == np.float32
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: images})
    assert np.array_equal(got, expected)
    (got_ref,) = ReferenceEvaluator(onnx.load(str(model))).run(None, {session.get_inputs()[0].name: images})
    assert np.array_equal(got_ref, expected)


def test_the_uint8_golden_takes_nhwc_frames_and_the_others_float():
    assert _tensor(GOLDEN / "tiny_nhwc_uint8" / FILES[1]).dtype == np.uint8
    assert _tensor(GOLDEN / "tiny_nhwc_uint8" / FILES[1]).shape[-1] == 3  # NHWC frames
    assert _tensor(GOLDEN / "vitstem_tiny_test" / FILES[1]).dtype == np.float32
