"""The install recipe: the wheel `make wheel` builds holds the package data and the documented extras, and
installed on its own (no torch, TensorFlow or onnx importable) it runs and checks a model on the edge runtime."""

import email
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import vitstem

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BLOCKER = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Block())
sys.path.insert(0, {site!r})
import vitstem
assert vitstem.__file__.startswith({site!r}), vitstem.__file__
from vitstem.cli import main
code = main(sys.argv[1:])
loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({blocked!r}))
assert not loaded, loaded
sys.exit(code)
"""


def test_wheel_contents_extras_and_an_edge_only_run(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "vitstem", src / "vitstem", ignore=shutil.ignore_patterns("__pycache__"))
    # what `make wheel` runs (no build isolation: nothing is downloaded)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w",
                    str(tmp_path / "dist"), "."], cwd=src, check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("vitstem-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = email.message_from_bytes(z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))))
        entry_points = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert {"vitstem/py.typed", "vitstem/spec/schema.json", "vitstem/runtime/stem.py", "vitstem/cli.py"} <= names
    assert "vitstem = vitstem.cli:main" in entry_points
    requires = meta.get_all("Requires-Dist")
    assert {r for r in requires if "extra ==" not in r} == {"numpy>=1.24", "pyyaml>=6", "safetensors>=0.4"}
    assert {r.split(";")[0] for r in requires if 'extra == "edge"' in r} == {"onnxruntime>=1.18", "pillow"}
    assert set(meta.get_all("Provides-Extra")) >= {"edge", "torch", "tf", "onnx", "interop", "all"}

    # installed alone, with torch, TensorFlow, onnx and the peers unimportable: run and check a model
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", "--target",
                    str(site), str(wheel)], check=True, capture_output=True)
    spec = vitstem.load_spec("vitstem_tiny_test")
    weights = vitstem.init_weights(spec)
    vitstem.export_onnx(spec, weights, tmp_path / "m.onnx")
    vitstem.save_weights(weights, tmp_path / "w.safetensors", spec)
    x = np.random.default_rng(0).standard_normal(spec.input_shape(2)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    blocked = ("torch", "tensorflow", "keras", "onnx", "timm", "transformers", "jax")
    script = BLOCKER.format(blocked=blocked, site=str(site))

    def edge(*argv):
        return subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, cwd=tmp_path)

    ran = edge("run", "m.onnx", "x.npy", "-o", "z.npy")
    assert ran.returncode == 0, ran.stderr
    np.testing.assert_allclose(np.load(tmp_path / "z.npy"), vitstem.forward(spec, weights, x), rtol=0, atol=1e-5)
    checked = edge("check", "m.onnx")
    assert checked.returncode == 0, checked.stderr
    assert "onnx is not installed" in checked.stdout and "image size 12x16 (fixed)" in checked.stdout
    needs = edge("export", "vitstem_tiny_test", "--weights", "w.safetensors", "-o", "e.onnx")
    assert needs.returncode == 2 and needs.stderr.strip().endswith("see Install in the README)"), needs.stderr
