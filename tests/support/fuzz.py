"""Hypothesis settings and generators the fuzzers share: `fuzz` (example counts, VITSTEM_FUZZ_EXAMPLES for a
campaign), `valid_docs` (small valid spec documents exercising every field) and `images_for` (a batch for them)."""

import os

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from vitstem.spec.policies import NAMED_POLICIES

FUZZ_EXAMPLES = int(os.environ.get("VITSTEM_FUZZ_EXAMPLES", "0"))


def fuzz(default: int):
    """Hypothesis settings: `default` examples, or VITSTEM_FUZZ_EXAMPLES for a campaign."""
    return settings(max_examples=FUZZ_EXAMPLES or default, deadline=None, derandomize=not FUZZ_EXAMPLES,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# -- valid spec documents ---------------------------------------------------------------------
@st.composite
def valid_docs(draw, max_side: int = 5):
    """A small valid spec document exercising every field (sizes kept small so z0 is cheap)."""
    ph, pw = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    gh, gw = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    channels = draw(st.integers(1, 4))
    kind = draw(st.sampled_from(["learned", "sincos2d", "none"]))
    pe = {"kind": kind, "covers_prefix": draw(st.booleans())}
    if kind == "sincos2d":
        convention = draw(st.sampled_from(["big_vision", "timm", "mae"]))
        dim = 4 * draw(st.integers(2 if convention == "big_vision" else 1, 6))
        pe.update(sincos_convention=convention, temperature=draw(st.floats(1.0, 1e5)))
    else:
        dim = draw(st.integers(1, 24))
        if kind == "learned" and draw(st.booleans()):
            pe["grid"] = [draw(st.integers(1, max_side)), draw(st.integers(1, max_side))]
    # input.remainder: drop leaves up to a patch less one of pixels past the last whole patch
    remainder = draw(st.sampled_from(["refuse", "drop"]))
    rh, rw = (draw(st.integers(0, ph - 1)), draw(st.integers(0, pw - 1))) if remainder == "drop" else (0, 0)
    doc = {
        "spec_version": 1,
        "name": draw(st.text(max_size=12)),
        "image_size": [gh * ph + rh, gw * pw + rw],
        "in_channels": channels,
        "patch_size": [ph, pw],
        "embed_dim": dim,
        "patch_bias": draw(st.booleans()),
        "prefix": {"class_token": draw(st.booleans()), "dist_token": draw(st.booleans()),
                   "register_tokens": draw(st.integers(0, 3))},
        "position_embedding": pe,
        "pre_norm": draw(st.sampled_from([None, {}, {"eps": 1e-6}, {"eps": 0.1}, {"kind": "rms_norm"},
                                          {"kind": "rms_norm", "eps": 0.1}])),
        "patch_norm": draw(st.sampled_from([None, {"kind": "layer_norm"}, {"kind": "rms_norm", "eps": 1e-5},
                                            {"kind": "layer_norm", "eps": 0.1}])),
        "input": {"layout": draw(st.sampled_from(["NCHW", "NHWC"])), "preprocess": None, "remainder": remainder},
        "dynamic_image_size": draw(st.booleans()),
    }
    if draw(st.booleans()):
        doc["input"]["preprocess"] = {
            "scale": draw(st.sampled_from([1 / 255, 1 / 127.5, 1.0])),
            "mean": draw(st.lists(st.floats(-2, 2), min_size=channels, max_size=channels)),
            "std": draw(st.lists(st.floats(0.05, 2), min_size=channels, max_size=channels)),
        }
    policy = draw(st.sampled_from([*NAMED_POLICIES, "custom"]))
    if policy == "custom":
        coordinates = draw(st.sampled_from(["half_pixel", "align_corners"]))
        antialias = coordinates == "half_pixel" and draw(st.booleans())  # antialias needs half_pixel
        doc["resample"] = {"policy": "custom", "mode": draw(st.sampled_from(["bicubic", "bilinear"])),
                           "cubic_coeff_a": draw(st.sampled_from([-0.5, -0.75, -1.0, 0.0])),
                           "antialias": antialias, "coordinates": coordinates,
                           "exclude_outside": draw(st.booleans())}
        if not antialias and draw(st.booleans()):
            doc["resample"]["phase_steps"] = draw(st.sampled_from([None, 1, 7, 1024]))
    else:
        doc["resample"] = {"policy": policy}
    # Equivalent spellings the schema allows: a square size as one integer, integral floats.
    if ph == pw and draw(st.booleans()):
        doc["patch_size"] = float(ph) if draw(st.booleans()) else ph
    return doc


def images_for(spec, seed: int, grid=None, batch: int = 2):
    """A batch in the spec's layout and input dtype (uint8 pixels when it preprocesses); at another
    `grid`, with as many pixels past the last whole patch as the spec's own image_size has."""
    rng = np.random.default_rng(seed)
    gh, gw = grid or spec.patch_grid()
    (ph, pw), (h, w) = spec.patch_size, spec.image_size
    shape = spec.input_shape(batch, (gh * ph + h % ph, gw * pw + w % pw))
    if spec.input.preprocess is not None:
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return rng.standard_normal(shape).astype(np.float32)


# -- image files ---------------------------------------------------------------------------------
@st.composite
def image_files(draw, hw=(6, 8)):
    """A writer `case(directory) -> (path, expected)`: an image file at size `hw` in a drawn mode, frame count
    and EXIF orientation; `expected` is its exact 8-bit RGB pixels, or None when `vitstem run` must refuse it
    (samples wider than 8 bits, float, CMYK/LAB, several frames, a rotated orientation)."""
    from PIL import Image

    mode, suffix = draw(st.sampled_from([("RGB", ".png"), ("L", ".png"), ("P", ".png"), ("RGBA", ".png"),
                                         ("LA", ".png"), ("1", ".png"), ("I;16", ".png"), ("F", ".tif"),
                                         ("I", ".tif"), ("CMYK", ".tif"), ("LAB", ".tif"), ("RGB", ".tif")]))
    frames = draw(st.sampled_from([1, 1, 2])) if suffix == ".tif" else 1
    orientation = draw(st.sampled_from([None, 1, 3, 6, 8])) if suffix == ".tif" else None
    seed = draw(st.integers(0, 2**16))

    def case(directory):
        rng = np.random.default_rng(seed)
        base = Image.fromarray(rng.integers(0, 256, (*hw, 3), dtype=np.uint8))
        if mode == "I;16":
            image = Image.fromarray(rng.integers(256, 65536, hw).astype(np.uint16))
        elif mode in ("F", "I"):
            image = Image.fromarray(rng.integers(0, 1000, hw).astype(np.float32 if mode == "F" else np.int32))
        else:
            image = base.convert(mode)
        path = directory / f"x{suffix}"
        kwargs = {}
        if orientation is not None:
            exif = Image.Exif()
            exif[0x0112] = orientation
            kwargs["exif"] = exif
        if frames > 1:
            kwargs.update(save_all=True, append_images=[image.copy() for _ in range(frames - 1)])
        image.save(path, **kwargs)
        faithful = mode in ("RGB", "L", "P", "RGBA", "LA", "1") and frames == 1 and orientation in (None, 1)
        return path, (np.asarray(Image.open(path).convert("RGB")) if faithful else None)

    return case



# -- specs at the validator's edges -------------------------------------------------------------
EDGE_FLOATS = st.one_of(st.floats(1e-38, 1e-30), st.floats(1e-6, 1e6), st.floats(1e30, 3.4e38),
                        st.sampled_from([1e-45, 1.2e-38, 3.4e38, 1.0]))


@st.composite
def edge_docs(draw):
    """A `valid_docs` document with its numbers pushed to where the validator draws its lines (temperatures,
    preprocessing and eps from subnormal to float32's maximum, sin-cos widths below 4, big grids and
    register counts): many are refused, and whatever is accepted must run (issue 12)."""
    doc = draw(valid_docs(max_side=4))
    pe = doc["position_embedding"]
    if pe["kind"] == "sincos2d":
        pe["temperature"] = draw(st.one_of(st.just(pe["temperature"]), EDGE_FLOATS))
        doc["embed_dim"] = draw(st.one_of(st.just(doc["embed_dim"]), st.integers(1, 12)))
    elif pe["kind"] == "learned" and draw(st.booleans()):
        pe["grid"] = [draw(st.integers(1, 40)), draw(st.integers(1, 40))]
    if doc["input"]["preprocess"] and draw(st.booleans()):
        c = doc["in_channels"]
        doc["input"]["preprocess"] = {"scale": draw(EDGE_FLOATS), "std": [draw(EDGE_FLOATS) for _ in range(c)],
                                      "mean": [draw(st.one_of(EDGE_FLOATS, EDGE_FLOATS.map(lambda v: -v)))
                                               for _ in range(c)]}
    for key in ("pre_norm", "patch_norm"):
        if doc.get(key) is not None and draw(st.booleans()):
            doc[key] = {**doc[key], "eps": draw(EDGE_FLOATS)}
    if doc["resample"]["policy"] == "custom":
        doc["resample"]["cubic_coeff_a"] = draw(st.floats(-1, 0))
    doc["prefix"]["register_tokens"] = draw(st.one_of(st.just(doc["prefix"]["register_tokens"]), st.integers(0, 50)))
    return doc
