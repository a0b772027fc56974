"""The exported encoder run in ONNX Runtime at every patch grid the whole file will feed it, vs the eager module.

torch.onnx can bake the traced token count (TorchScript: SigLIP's attention-pool head) or the traced grid
(TorchScript: rope's Concat) into a graph; such an encoder fails here at another grid instead of in the
user's deployed file.
"""

from __future__ import annotations

from ..spec.vocabulary import OUTPUT_NAME
from .rope import GRID_INPUT

ENCODER_INPUT = OUTPUT_NAME  # the stem's output is what the encoder takes


def check_grids(spec, sizes, by_grid: bool) -> list[tuple[int, int]]:
    """The patch grids the whole file feeds its encoder: each listed size's, or (any size, `sizes` None)
    the native grid and a larger non-square one. An encoder that takes z0 alone is checked once per token
    count (the first grid giving it); one that also takes the grid (`by_grid`), once per grid."""
    if sizes is None:
        gh, gw = spec.patch_grid()
        return [(gh, gw), (gh + 2, gw + 1)]
    first = {}
    for gh, gw in (spec.patch_grid(hw) for hw in sizes):
        first.setdefault((gh, gw) if by_grid else gh * gw, (gh, gw))
    return list(first.values())


def mismatch(data: bytes, encoder, spec, grids, tolerance: float) -> str | None:
    """None when the exported encoder, run by ONNX Runtime on seeded N(0, 1) z0 (batch 2) at each grid's
    token count (and that grid, if it takes one), matches the eager module within tolerance * max(1,
    max|ref|); else what went wrong."""
    import numpy as np
    import onnxruntime as ort
    import torch

    quiet = ort.SessionOptions()
    quiet.log_severity_level = 4  # the failure is returned, not logged
    # The graph's own semantics are checked: ORT's fusions would only add session time here.
    quiet.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    try:
        session = ort.InferenceSession(data, quiet, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's errors carry no common type
        return f"ONNX Runtime cannot load it ({str(exc).strip().splitlines()[0][:200]})"
    rng = np.random.default_rng(0)
    for gh, gw in grids:
        n = spec.num_prefix_tokens + gh * gw
        z0 = rng.standard_normal((2, n, spec.embed_dim)).astype(np.float32)
        feeds = {ENCODER_INPUT: z0}
        where = f"{n} tokens"
        if encoder.takes_grid:
            feeds[GRID_INPUT] = np.zeros((gh, gw), np.float32)
            where += f" (a {gh}x{gw} grid)"
        try:
            got = session.run(None, feeds)
        except Exception as exc:  # onnxruntime's errors carry no common type
            return f"it fails at {where} in ONNX Runtime ({str(exc).strip().splitlines()[0][:200]})"
        with torch.no_grad():
            want = [o.numpy() for o in encoder(*(torch.from_numpy(v) for v in feeds.values()))]
        for g, w in zip(got, want):
            if g.shape != w.shape or not np.abs(g - w).max() <= tolerance * max(1.0, float(np.abs(w).max())):
                return f"at {where} it differs from the peer's forward (shape {g.shape} vs {w.shape})"
    return None
