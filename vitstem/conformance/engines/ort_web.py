"""The `onnxruntime-web` engine: vitstem's exported .onnx and .ort files on ONNX Runtime Web's WASM
backend (the build browsers and web views run), in Node, through js/ort_web_runner.cjs.

One Node process per thread count serves every model of the Python process (started on first use,
ended at exit); tensors cross as raw little-endian files. npm installs onnxruntime-web from the
lockfile in web/ (`make setup`); VITSTEM_NODE_MODULES points elsewhere.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..matrix import LOWEST_OPSET
from .base import Prepared, Unsupported, register
from .onnx_export import EXACT_EXPORT_MAX_K, OnnxExportEngine, input_dtype, model_opset

RUNNER = Path(__file__).parents[1] / "js" / "ort_web_runner.cjs"
_DTYPES = {"float32": np.float32, "float16": np.float16, "uint8": np.uint8, "float64": np.float64}
_NO_KERNEL = re.compile(r"implementation for (\w+\(\d+\))")  # ORT's "Could not find an implementation for Op(ver) node"


def node_modules() -> Path:
    """Where onnxruntime-web is installed: $VITSTEM_NODE_MODULES, else web/node_modules of the checkout."""
    env = os.environ.get("VITSTEM_NODE_MODULES")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "web" / "node_modules"


def missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not on PATH"
    if not (node_modules() / "onnxruntime-web" / "package.json").is_file():
        return f"onnxruntime-web is not installed in {node_modules()} (run `npm ci` in web/)"
    return None


class NodeRunner:
    """One `node ort_web_runner.cjs` process: JSON requests in, JSON answers out, one at a time."""

    def __init__(self, threads: int = 1):
        self.threads = threads
        self.process = subprocess.Popen(["node", str(RUNNER), str(node_modules()), str(threads)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        text=True, bufsize=1)
        self.scratch = Path(tempfile.mkdtemp(prefix="vitstem-ortweb-"))

    def request(self, **fields) -> dict:
        if self.process.poll() is not None:
            raise RuntimeError(f"the onnxruntime-web runner exited (code {self.process.returncode})")
        self.process.stdin.write(json.dumps(fields) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the onnxruntime-web runner exited (code {self.process.wait()})")
        answer = json.loads(line)
        if not answer.pop("ok"):
            raise OrtWebError(answer["error"])
        return answer

    def _write(self, x: np.ndarray) -> dict:
        path = self.scratch / "input.bin"
        np.ascontiguousarray(x).astype(x.dtype.newbyteorder("<"), copy=False).tofile(path)
        return {"input": str(path), "dtype": x.dtype.name, "dims": list(x.shape)}

    def run(self, model: Path, x: np.ndarray) -> np.ndarray:
        """The model's first output for input `x` (its dtype is the tensor type sent)."""
        out = self.scratch / "output.bin"
        answer = self.request(run=str(model), output=str(out), **self._write(x))
        return np.fromfile(out, dtype=np.dtype(_DTYPES[answer["dtype"]]).newbyteorder("<")).reshape(answer["dims"])

    def time(self, model: Path, x: np.ndarray, *, warmup: int = 2, repeat: int = 10) -> list[float]:
        """Seconds per run of `model` on `x`, measured inside Node (no file transfer counted)."""
        return self.request(time=str(model), warmup=warmup, repeat=repeat, **self._write(x))["seconds"]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.scratch, ignore_errors=True)


class OrtWebError(RuntimeError):
    """onnxruntime-web refused or failed a model (its first message line)."""


_RUNNERS: dict[int, NodeRunner] = {}


def runner(threads: int = 1) -> NodeRunner:
    """The shared runner for `threads` WASM threads (started on first use)."""
    current = _RUNNERS.get(threads)
    if current is None or current.process.poll() is not None:
        current = _RUNNERS[threads] = NodeRunner(threads)
    return current


@atexit.register
def _close_runners() -> None:
    for r in _RUNNERS.values():
        r.close()
    _RUNNERS.clear()


def graph_input_dtype(path: Path) -> str:
    return input_dtype(path).name


class OrtWebEngine(OnnxExportEngine):
    """At LOWEST_OPSET it runs the .onnx file; at the exporter's default opset the .ort file
    onnxruntime converts it to (what ORT Mobile and the web ship), so both formats are in every run."""

    def __init__(self):
        super().__init__("onnxruntime-web", ("onnx", "onnxruntime"),
                         "ONNX Runtime Web (WASM, Node) on vitstem.export_onnx (.onnx at opset 13, .ort at the default)")

    def missing(self):
        return missing() or super().missing()

    def prepare(self, ws, spec, cell, opset):
        if cell.profile == "exact" and spec.patch_dim > EXACT_EXPORT_MAX_K and not ws.full:
            raise Unsupported(f"deferred to --full: the exact graph sums the K = {spec.patch_dim} patch terms one by "
                              "one in float64, which WASM runs at ~6 s per batch of 3 at K = 768 (plus ~9 s to load "
                              f"each model); K <= {EXACT_EXPORT_MAX_K} runs by default")
        path, resampled, note = self.model(ws, spec, cell, opset)
        dtype = graph_input_dtype(path)
        model = path
        if opset != LOWEST_OPSET:
            model = self.ort_file(ws, path)
            note = "; ".join(filter(None, [note, f"ran the ORT-format file {model.name}"]))

        def run(images):
            if dtype == "uint8" and images.dtype != np.uint8:
                raise Unsupported("the graph takes uint8 pixels but the batch is float")
            try:
                return runner().run(model, images.astype(_DTYPES[dtype], copy=False)).astype(np.float32)
            except OrtWebError as exc:
                lacking = _NO_KERNEL.search(str(exc))
                if lacking:  # the WASM build leaves out kernels the CPU build has: say which one
                    raise Unsupported(f"the WASM build of onnxruntime-web has no kernel for {lacking.group(1)} "
                                      f"({model.name}): {exc}") from None
                raise

        return Prepared(run, model_opset(path), resampled, note)

    @staticmethod
    def ort_file(ws, path: Path) -> Path:
        target = path.with_suffix(".ort")
        if not target.exists():
            from ...export.edge import write_ort_of

            write_ort_of(path.read_bytes(), target)
        return target


register(OrtWebEngine())
