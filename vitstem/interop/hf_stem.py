"""Facts shared by the transformers model and checkpoint paths: image size and resampling rules."""

from __future__ import annotations

from ..errors import SpecError
from .hf_families import HfFamily


def native_sincos(fam: HfFamily, config) -> bool:
    """AIMv2 with is_native: a 2-D sin-cos table built at every image size (transformers 5.24,
    build_2d_sinusoidal_position_embedding then its halves swapped): [sin x | cos x | sin y | cos y],
    omega = 1 / 10000 ** (k / (D / 4)), in float64 cast to the model's dtype, no prefix row: the
    spec's sin-cos convention `mae`, evaluated at each grid."""
    native = config.get("is_native") if isinstance(config, dict) else getattr(config, "is_native", False)
    return fam.family == "Aimv2Vision" and bool(native)


def check_native_table(fam: HfFamily, config, what: str) -> None:
    """The checkpoint path does not write sin-cos specs: AIMv2 is_native converts from the live model."""
    if native_sincos(fam, config):
        raise SpecError(f"{what}: Aimv2Vision with is_native (a sin-cos table built at every size, the spec's `mae` "
                        "convention) converts from the live model with from_hf; checkpoint import does not read it yet")


def check_divisible(image_size: tuple[int, int], patch: tuple[int, int], what: str) -> None:
    """The spec needs image sides that are multiples of the patch; the peers' convs drop the remainder."""
    if image_size[0] % patch[0] or image_size[1] % patch[1]:
        raise SpecError(f"{what}: image size {image_size[0]}x{image_size[1]} is not a multiple of the patch "
                        f"{patch[0]}x{patch[1]}; the peer's conv drops the remaining pixels (input.remainder: "
                        "drop), which the checkpoint import does not set yet: convert the model with from_hf")


def resample_facts(fam: HfFamily, has_table: bool, interpolate: bool | None, image_size: tuple[int, int],
                   patch: tuple[int, int], what: str) -> bool:
    """dynamic_image_size for a family, refusing what its interpolate_pos_encoding cannot do.

    interpolate None means the model's default: True where the peer resamples without being
    asked (or has no table), False where its forward needs interpolate_pos_encoding=True.
    """
    if fam.when == "never":
        if interpolate:
            raise SpecError(f"{what}: {fam.family} adds its table without resampling it; other image sizes fail "
                            "in the peer too")
        return False
    when = fam.when if has_table else "any"
    dynamic = (when != "flag") if interpolate is None else bool(interpolate)
    if dynamic and has_table:
        grid = (image_size[0] // patch[0], image_size[1] // patch[1])
        if grid[0] != grid[1]:
            raise SpecError(f"{what}: interpolate_pos_encoding assumes a square table grid; this model's grid is "
                            f"{grid[0]}x{grid[1]}")
        if patch[0] != patch[1]:
            raise SpecError(f"{what}: interpolate_pos_encoding divides the image by one patch side; this model's "
                            f"patch is {patch[0]}x{patch[1]}")
    return dynamic
