"""The static page web/index.html in real headless Chromium (Debian's), and the minimal Node snippet:
z0 and the golden verdict read back and compared with the NumPy reference."""

import functools
import http.server
import json
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from vitstem.backends.numpy import forward
from vitstem.conformance.golden import GOLDEN_SPECS
from vitstem.spec import init_weights, load_spec

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]
WEB = ROOT / "web"
GOLDEN = ROOT / "conformance_tests" / "golden" / "tiny_nhwc_uint8"  # exact profile, uint8 NHWC frames in


class _Quiet(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm"}

    def log_message(self, *args):
        pass


@pytest.fixture
def served_page():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(WEB)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()
        server.server_close()


def _reference(frame: np.ndarray) -> np.ndarray:
    spec = load_spec(GOLDEN_SPECS["tiny_nhwc_uint8"][0])
    return forward(spec, init_weights(spec, 0), frame[None], profile="exact")  # the golden set's weights


def test_the_page_in_chromium_shows_z0_and_the_golden_verdict(served_page, tmp_path):
    from PIL import Image

    frame = np.random.default_rng(7).integers(0, 256, (6, 10, 3), dtype=np.uint8)  # the model's size: no scaling
    Image.fromarray(frame).save(tmp_path / "frame.png")
    done = subprocess.run(["node", "drive_page.cjs", served_page, str(GOLDEN / "model.onnx"), str(tmp_path / "frame.png"),
                           str(GOLDEN / "test_data_set_0" / "input_0.pb"), str(GOLDEN / "test_data_set_0" / "output_0.pb")],
                          cwd=WEB, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    page = json.loads(done.stdout)
    assert page["errors"] == []
    assert page["texts"]["verdict"] == "PASS: all 128 elements of z0 bit-identical to the golden output"
    assert page["texts"]["verdictClass"] == "pass" and page["state"]["verdict"]["differ"] == 0
    expected = _reference(frame)
    z0 = np.array(page["state"]["z0"]["data"], np.float32).reshape(page["state"]["z0"]["dims"])
    assert z0.shape == expected.shape == (1, 16, 4)
    assert np.array_equal(z0, expected)  # the exact model in WASM, fed through the canvas: bit for bit
    assert page["texts"]["z0"].startswith("z0 shape [1, 16, 4] (batch, tokens, D); min ")
    assert f"max {float(expected.max()):.6g}" in page["texts"]["z0"]
    assert page["texts"]["model"].startswith("tiny_nhwc_uint8: 6x10 px, patches 2x2, D = 4, exact profile")


def test_the_minimal_node_snippet():
    done = subprocess.run(["node", "example_node.cjs", str(GOLDEN / "model.onnx"), "6", "10"], cwd=WEB,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    expected = _reference(np.full((6, 10, 3), 128, np.uint8))
    assert np.array_equal(np.array(out["data"], np.float32).reshape(out["dims"]), expected)
