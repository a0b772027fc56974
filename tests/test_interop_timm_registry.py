"""A sample of timm's whole ViT-family registry: every name whose stem the spec can express converts,
and its z0 is within the bound of the tensor the model feeds its first block; the rest are refused
with the specific feature the spec lacks. (benchmarks/timm_registry_sweep.py runs every name.)

Models are built on the meta device with depth 1, materialised uninitialised and given random stem
parameters (tests/timm_registry.py): full-width stems at their registered sizes, nothing downloaded.
"""

import re

import pytest

from support.timm_registry import VIT_MODULES, check_native, vit_family_names

pytestmark = pytest.mark.slow

# Refusals the spec cannot avoid: a CNN stem, NaFlex patch sequences, an image size the patch does not divide.
CANNOT_EXPRESS = ("HybridEmbed: a CNN backbone", "variable-length, variable-aspect patch sequences",
                  "is not a multiple of the patch")
# Large models cost seconds each even at depth 1; the sample keeps to the smaller widths.
LARGE = re.compile(r"large|huge|giant|gigantic|enormous|so400m|so150m|sapiens|_\d+b|samvit_base_patch16$")


def _sample() -> list[str]:
    import timm.models._registry as registry

    every = vit_family_names()
    names = [n for n in every if not LARGE.search(n)]
    picked = set(names[::9])
    for module in VIT_MODULES:  # every module at least once (its smallest-looking name)
        picked.add(next(n for n in names + every if registry._model_to_module[n] == module))
    return sorted(picked)


@pytest.mark.parametrize("name", _sample())
def test_registered_name_converts_or_names_what_is_missing(name):
    _, refusal = check_native(name)
    if refusal is not None:
        assert any(reason in refusal for reason in CANNOT_EXPRESS), f"{name}: {refusal}"
