"""A script that runs the edge runtime with every heavy import blocked: argv model, input .npy, output .npy.
It prints the spec's name and fails if any blocked module was imported."""

BLOCKER = """
import sys
class Block:
    BLOCKED = {"torch", "torchvision", "tensorflow", "keras", "jax", "onnx", "onnxscript", "safetensors", "yaml",
               "timm", "transformers", "scipy", "PIL"}
    # vitstem's own packages the edge runtime must not need (the exporter, the framework backends).
    BLOCKED_VITSTEM = ("vitstem.export", "vitstem.backends.torch", "vitstem.backends.tensorflow", "vitstem.deploy")
    @classmethod
    def blocked(cls, name):
        return name.split(".")[0] in cls.BLOCKED or any(name == p or name.startswith(p + ".") for p in cls.BLOCKED_VITSTEM)
    def find_spec(self, name, path=None, target=None):
        if self.blocked(name):
            raise ImportError(f"blocked import of {name}")
        return None
sys.meta_path.insert(0, Block())
import numpy as np
import vitstem.runtime
stem = vitstem.runtime.load(sys.argv[1])
z = stem(np.load(sys.argv[2]))
np.save(sys.argv[3], z)
heavy = sorted(m for m in sys.modules if Block.blocked(m))
assert not heavy, heavy
print(stem.spec.name)
"""
