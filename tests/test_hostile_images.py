"""Image files `vitstem run` used to read silently wrong (issue 12, round 2): samples wider than 8 bits in an
8-bit mode (a 48-bit PNG, a 16-bit PPM: Pillow keeps the high byte), the first frame of an animation or
multi-page file, and pixels stored rotated (EXIF orientation). Each is refused; what converts exactly is read."""

import struct
import types
import zlib

import numpy as np
import pytest
from hypothesis import given
from support.fuzz import fuzz, image_files

from vitstem.errors import InputError
from vitstem.runtime.cli import read_image
from vitstem.spec import load_spec

SPEC = load_spec({"spec_version": 1, "name": "pre", "image_size": [6, 8], "patch_size": 2, "embed_dim": 4,
                  "input": {"layout": "NCHW", "preprocess": {"scale": 1 / 255, "mean": [0.5] * 3, "std": [0.5] * 3}}})
STEM = types.SimpleNamespace(spec=SPEC, sizes=None)


def _png16(path, pixels):
    """A 16-bit-per-sample RGB PNG (Pillow cannot write one)."""
    h, w, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[i].astype(">u2").tobytes() for i in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_sixteen_bit_samples_in_an_8_bit_mode_are_refused(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 65536, (6, 8, 3)).astype(np.uint16)
    _png16(tmp_path / "x.png", pixels)
    (tmp_path / "x.ppm").write_bytes(b"P6 8 6 65535\n" + pixels.astype(">u2").tobytes())
    for name in ("x.png", "x.ppm"):
        with pytest.raises(InputError, match="16- or 32-bit samples"):
            read_image(str(tmp_path / name), STEM)


@fuzz(12)
@given(image_files())
def test_image_files_are_read_exactly_or_refused(tmp_path_factory, case):
    """Whatever the mode, frame count and orientation: 8-bit single-frame upright files give Pillow's exact
    8-bit RGB pixels; every other file is refused with InputError naming it."""
    path, expected = case(tmp_path_factory.mktemp("img"))
    if expected is None:
        with pytest.raises(InputError, match=str(path.name)):
            read_image(str(path), STEM)
    else:
        np.testing.assert_array_equal(read_image(str(path), STEM), expected)


@pytest.mark.parametrize("frames", [2, 3])
@pytest.mark.parametrize("suffix", [".gif", ".tif", ".png", ".webp"])
def test_animations_and_multi_page_files_are_refused(tmp_path, suffix, frames):
    from PIL import Image

    rng = np.random.default_rng(frames)
    images = [Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)) for _ in range(frames)]
    path = tmp_path / f"a{suffix}"
    images[0].save(path, save_all=True, append_images=images[1:], **({"lossless": True} if suffix == ".webp" else {}))
    with pytest.raises(InputError, match=f"{frames} frames"):
        read_image(str(path), STEM)


@pytest.mark.parametrize("orientation", [2, 3, 4])
def test_exif_orientation_is_refused(tmp_path, orientation):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(tmp_path / "r.jpg", exif=exif)
    with pytest.raises(InputError, match=f"EXIF orientation {orientation}"):
        read_image(str(tmp_path / "r.jpg"), STEM)
