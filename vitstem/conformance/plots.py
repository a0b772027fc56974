"""PNG plots of the error distribution of one engine pair (matplotlib, Agg, imported when used)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..files import atomic_write_bytes

COLORS = {"fast": "tab:blue", "exact": "tab:green", "fp16": "tab:orange", "int8": "tab:purple"}


def plot_pair(path, title: str, kinds: dict) -> Path:
    """Two histograms over all the pair's cells, one colour per kind (exact, fast, fp16, int8):
    log10(|d| / bound) (fails right of the dashed line) and the float32 ULP distance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 2.8))
    for kind, comparisons in kinds.items():
        ratios = np.concatenate([c.ratio_sample for c in comparisons] or [np.zeros(0)])
        ulps = np.concatenate([c.ulp_sample for c in comparisons] or [np.zeros(0)])
        nonzero = ratios[(ratios > 0) & np.isfinite(ratios)]
        label = f"{kind} ({ratios.size - nonzero.size}/{ratios.size} equal)"
        if nonzero.size:
            left.hist(np.log10(nonzero), bins=40, color=COLORS.get(kind), alpha=0.6, label=label)
        else:
            left.plot([], [], color=COLORS.get(kind), label=label)
        if ulps.size and ulps.max() > 0:
            right.hist(np.log10(1 + ulps), bins=40, color=COLORS.get(kind), alpha=0.6, label=kind)
    left.axvline(0.0, color="tab:red", linestyle="--")
    left.set_title("log10(|d| / bound), sampled elements", fontsize=7)
    right.set_title("log10(1 + float32 ULP distance)", fontsize=7)
    for axis in (left, right):
        axis.tick_params(labelsize=7)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=72)
    plt.close(fig)
    return atomic_write_bytes(Path(path), buffer.getvalue())
