"""ONNX Runtime pieces of the benchmark: the bare-MatMul floor model and sessions with the
thread count and graph-optimization level under test (imports onnx/onnxruntime: load lazily).

All sessions of a benchmark share ONE global intra-op pool: ORT's workers spin after each run,
and with a pool per session the idle spinners of one candidate steal the cores of the next
(measured: a 1.1 ms MatMul took 2-30 ms interleaved with five other sessions).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

FLOOR_OPSET = 17
LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def bare_matmul_model(rows: int, k: int, d: int, seed: int = 0) -> onnx.ModelProto:
    """x (rows, K) @ E (K, D) with E a constant initializer: the one multiply every stem must do."""
    kernel = np.random.default_rng(seed).standard_normal((k, d)).astype(np.float32) / np.float32(np.sqrt(k))
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "E"], ["y"])], "bare_matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, d])],
        initializer=[numpy_helper.from_array(kernel, "E")])
    opsets = [helper.make_opsetid("", FLOOR_OPSET)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))


_global_threads: int | None = None


def use_global_threads(threads: int) -> None:
    """Create the process-wide ORT pool of `threads` (once: ORT cannot resize it later). Call it
    only in a process of its own: afterwards every session in the process must use that pool."""
    global _global_threads
    if _global_threads == threads:
        return
    if _global_threads is not None:
        raise RuntimeError(f"ORT's global thread pool already has {_global_threads} threads; "
                           f"measure {threads} threads in a fresh process")
    ort.set_global_thread_pool_sizes(threads, 1)
    _global_threads = threads


def session_options(threads: int, level: str = "all") -> ort.SessionOptions:
    """Sequential execution at the given optimization level, on the global pool when this process
    made one (`use_global_threads`, which must then have `threads`), else on a pool of its own."""
    options = ort.SessionOptions()
    if _global_threads is None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    elif _global_threads != threads:
        raise RuntimeError(f"this process's ORT pool has {_global_threads} threads, not {threads}")
    else:
        options.use_per_session_threads = False
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = LEVELS[level]
    options.log_severity_level = 3
    return options


def ort_session(model, threads: int, level: str = "all") -> ort.InferenceSession:
    """A CPU session on a ModelProto, serialized bytes or a path."""
    if isinstance(model, onnx.ModelProto):
        model = model.SerializeToString()
    return ort.InferenceSession(model, session_options(threads, level), providers=["CPUExecutionProvider"])
