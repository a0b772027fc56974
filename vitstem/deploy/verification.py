"""`verify`: the exported file in ONNX Runtime vs the peer's own forward (torch, or keras-hub's call), on the
same images, per size.

The images are seeded uint8 pixels (or N(0, 1) floats when the spec takes normalised inputs). The
file gets them in its input format (pixels in the spec's layout, or uint8 NHWC frames with
preprocessing in the graph); the peer gets them normalised as its own pipeline does (pixels *
scale, minus mean, over std, in float32, NCHW; keras-hub: in the spec's layout). Each output is
compared by name: max |diff|, max |reference|, and the bound `TOLERANCE[precision] * max(1, max |reference|)`.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from ..errors import ExportError

# Relative to max(1, max|reference|). fp32: the agreement the whole-model export promises at every size.
# fp16 / int8: the largest relative error measured on the test families with a margin (README,
# "Deploying a whole model"), not a guarantee for every model.
TOLERANCE = {"fp32": 1e-4, "fp16": 5e-3, "int8": 0.15}


def default_sizes(spec, options) -> list[tuple[int, int]]:
    """The native size, plus (when the file takes other sizes) a larger non-square and a smaller size."""
    if options["sizes"] is not None:
        return [tuple(s) for s in options["sizes"]]
    (ph, pw), (h, w) = spec.patch_size, spec.image_size
    gh, gw = spec.patch_grid()
    return [(h, w), ((gh + 2) * ph, (gw + 1) * pw), (max(1, gh - 1) * ph, max(1, gw - 1) * pw)]


def _images(spec, hw, batch, seed):
    rng = np.random.default_rng(seed)
    shape = (batch, spec.in_channels, *hw)
    if spec.input.preprocess is None:
        x = rng.standard_normal(shape).astype(np.float32)
        return x, x
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    pre = spec.input.preprocess
    c = (1, -1, 1, 1)
    scale = np.float32(pre.scale)
    mean, std = np.asarray(pre.mean, np.float32).reshape(c), np.asarray(pre.std, np.float32).reshape(c)
    return pixels, (pixels.astype(np.float32) * scale - mean) / std


def _as_file_input(pixels, runtime):
    x = pixels.transpose(runtime.layout.from_nchw)  # the peer's NCHW pixels in the file's layout
    return np.ascontiguousarray(x if runtime.preprocess_in_graph else x.astype(np.float32))


@contextlib.contextmanager
def _peer_reference(model, spec):
    """Within the block, (pixels, normalised) NCHW numpy -> {output name: array}: the peer's own forward
    (a torch peer in eval mode, its training flag restored after; keras-hub: keras_hub.reference)."""
    from . import keras_hub

    if keras_hub.is_keras(model):
        yield keras_hub.reference(model, spec)
        return
    import torch

    from .families import family_of

    family = family_of(model)

    def forward(pixels, normalised):
        with torch.no_grad():
            out = family.forward(model, torch.from_numpy(np.ascontiguousarray(normalised)), spec)
        return {name: value.float().numpy() for name, value in out}

    was = model.training
    model.eval()
    try:
        yield forward
    finally:
        model.train(was)


def verify(model, path: str | os.PathLike, sizes=None, *, batch: int = 2, seed: int = 0,
           threads: int | None = None) -> list[dict]:
    """One row per (size, output): size, output, max_abs, max_ref, rel (max_abs / max(1, max_ref)), bound,
    passed. `sizes`: (H, W) pairs or ints (square); default: `default_sizes`."""
    from ..runtime import Model, load

    runtime = load(path, threads=threads)
    if not isinstance(runtime, Model):
        raise ExportError(f"{path}: a stem, not a whole model; verify a file from vitstem deploy / export_model")
    spec, precision = runtime.spec, runtime.options["precision"]
    if runtime.batch is not None:
        batch = runtime.batch
    sizes = default_sizes(spec, runtime.options) if sizes is None else [
        (int(s), int(s)) if np.isscalar(s) else (int(s[0]), int(s[1])) for s in sizes]
    rows = []
    with _peer_reference(model, spec) as forward:
        for hw in sizes:
            pixels, normalised = _images(spec, hw, batch, seed)
            got = runtime(_as_file_input(pixels, runtime))
            want = forward(pixels, normalised)
            for name in runtime.output_names:
                if name not in want:
                    raise ExportError(f"{path}: output {name} is not among the peer's outputs ({', '.join(want)})")
                ref = want[name]
                if ref.shape != got[name].shape:
                    raise ExportError(f"{path}: output {name} has shape {got[name].shape} at {hw[0]}x{hw[1]}; "
                                      f"the peer returns {ref.shape}")
                max_abs = float(np.abs(got[name].astype(np.float64) - ref).max())
                max_ref = float(np.abs(ref).max())
                bound = TOLERANCE[precision] * max(1.0, max_ref)
                rows.append({"size": list(hw), "output": name, "max_abs": max_abs, "max_ref": max_ref,
                             "rel": max_abs / max(1.0, max_ref), "bound": bound, "passed": max_abs <= bound})
    return rows


def table(rows) -> str:
    """The rows as aligned text, one line each."""
    lines = [f"{'size':>9}  {'output':<20} {'max|diff|':>10} {'max|ref|':>10} {'rel':>10}  verdict"]
    for r in rows:
        lines.append(f"{r['size'][0]:>4}x{r['size'][1]:<4}  {r['output']:<20} {r['max_abs']:>10.3g} {r['max_ref']:>10.3g} "
                     f"{r['rel']:>10.3g}  {'ok' if r['passed'] else 'FAIL (bound %.3g)' % r['bound']}")
    return "\n".join(lines)
