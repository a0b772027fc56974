"""Export inputs that used to give a silently broken file or an unclear message (issue 12, round 2): weights
whose folded or rounded constants overflow the compute dtype (every image then gave inf), calibration
images the graph cannot take (another size, an integer dtype for a float spec, float64 beyond float32), and
an int8 refusal that claimed a bound it had met."""

import numpy as np
import pytest

import vitstem
from vitstem.errors import ExportError
from vitstem.export import build_onnx
from vitstem.spec import load_spec

SPEC = load_spec("vitstem_tiny_test")


@pytest.mark.parametrize("precision, scaled", [
    ("fp16", lambda v: v * np.float32(1e7)),  # the kernel beyond 65504 once rounded to float16
    ("fp32", lambda v: np.full_like(v, 3e38)),  # the position rows plus the bias: 6e38 in the folded table
])
def test_constants_that_overflow_are_refused(precision, scaled):
    weights = {k: scaled(v) for k, v in vitstem.init_weights(SPEC).items()}
    assert all(np.isfinite(v).all() for v in weights.values())
    with pytest.raises(ExportError, match=f"^{precision}: the graph constant .* non-finite values"):
        build_onnx(SPEC, weights, precision=precision)


@pytest.mark.parametrize("images, match", [
    (np.zeros((2, 3, 16, 16), np.float32), "size 16x16 is not one the model is exported for"),
    (np.zeros((2, 3, 12, 16), np.uint8), "dtype uint8; this spec takes normalised float images"),
    (np.full((2, 3, 12, 16), 1e39), "beyond float32's range"),
    (np.zeros((2, 3, 12, 16), np.complex64), "dtype complex64"),
])
def test_calibration_images_the_graph_cannot_take_are_refused(images, match):
    with pytest.raises(ExportError, match=match) as info:
        build_onnx(SPEC, vitstem.init_weights(SPEC), precision="int8", calibration=images)
    assert "\n" not in str(info.value)


def test_an_int8_refusal_names_only_the_part_of_the_bound_it_missed():
    """All-one-value calibration misses the cosine on the synthetic images; the message used to say
    'max |d| = 0 max|z| > 0.1' as well."""
    with pytest.raises(ExportError, match=r"min token cosine -?[0-9.]+ < 0\.98\)") as info:
        build_onnx(SPEC, vitstem.init_weights(SPEC), precision="int8",
                   calibration=np.full((2, 3, 12, 16), 0.5, np.float32))
    assert "max |d|" not in str(info.value)
