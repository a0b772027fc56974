"""`import vitstem` pulls in no heavy framework: the frameworks are optional extras."""

import subprocess
import sys


def test_import_vitstem_imports_no_framework():
    code = ("import sys, vitstem, vitstem.spec, vitstem.backends.numpy, vitstem.cli; "
            "vitstem.load_spec('vit_base_patch16_224'); "
            "heavy = [m for m in ('torch', 'tensorflow', 'onnx', 'onnxruntime', 'keras', 'jax', 'timm', 'transformers') "
            "if m in sys.modules]; print(','.join(heavy))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
