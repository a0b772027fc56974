"""PNG plots of the error distribution of one engine pair (matplotlib, Agg, imported when used)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..files import atomic_write_bytes


def plot_pair(path, title: str, comparisons) -> Path:
    """Two histograms over the pair's cells: |d| / bound (log10) and the float32 ULP distance."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratios = np.concatenate([c.ratio_sample for c in comparisons if c.ratio_sample is not None] or [np.zeros(0)])
    ulps = np.concatenate([c.ulp_sample for c in comparisons if c.ulp_sample is not None] or [np.zeros(0)])
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    nonzero = ratios[ratios > 0]
    if nonzero.size:
        left.hist(np.log10(nonzero[np.isfinite(nonzero)]), bins=40, color="tab:blue")
        left.axvline(0.0, color="tab:red", linestyle="--", label="bound")
        left.legend()
    left.set_title(f"log10(|d| / bound), {ratios.size - nonzero.size} of {ratios.size} exactly 0", fontsize=9)
    left.set_xlabel("log10 ratio (fails right of the line)")
    if ulps.size:
        top = max(1, int(ulps.max()))
        right.hist(ulps, bins=min(top + 1, 50), range=(-0.5, top + 0.5), color="tab:green")
        right.set_yscale("log")
    right.set_title("float32 ULP distance", fontsize=9)
    right.set_xlabel("ULPs")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return atomic_write_bytes(Path(path), buffer.getvalue())
