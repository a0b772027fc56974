"""The error hierarchy: one base for every user-facing error, each also a ValueError, SpecError with its problems."""

import pytest

import vitstem
from vitstem import errors


@pytest.mark.parametrize("cls", [errors.SpecError, errors.WeightsError, errors.InputError, errors.ExportError])
def test_every_user_error_is_a_vitstem_error_and_a_value_error(cls):
    assert issubclass(cls, errors.VitstemError) and issubclass(cls, ValueError)
    assert getattr(vitstem, cls.__name__) is cls
    with pytest.raises(errors.VitstemError):  # what the CLI turns into one line and exit 2
        raise cls("bad")


def test_spec_error_keeps_every_problem_with_its_path():
    exc = errors.SpecError([("image_size[1]", "45 is not divisible by patch_size[1] = 16"), ("colour", "unknown field")])
    assert exc.problems == [("image_size[1]", "45 is not divisible by patch_size[1] = 16"), ("colour", "unknown field")]
    assert str(exc) == "image_size[1]: 45 is not divisible by patch_size[1] = 16; colour: unknown field"
    plain = errors.SpecError("not a mapping")
    assert plain.problems == [("", "not a mapping")] and str(plain) == "not a mapping"


def test_each_kind_of_bad_input_raises_its_own_error(tmp_path):
    import numpy as np

    spec = vitstem.load_spec("vitstem_tiny_test")
    with pytest.raises(errors.SpecError) as info:
        vitstem.load_spec({"spec_version": 1, "image_size": 16, "patch_size": 4, "embed_dim": 0, "colour": 1})
    assert [p for p, _ in info.value.problems] == ["embed_dim", "colour"]
    with pytest.raises(errors.WeightsError, match="missing weight 'patch_embed.weight'"):
        vitstem.forward(spec, {}, np.zeros(spec.input_shape(1), np.float32))
    with pytest.raises(errors.InputError, match="expected rank 4"):
        vitstem.forward(spec, vitstem.init_weights(spec), np.zeros((3, 12, 16), np.float32))
    with pytest.raises(errors.OutputError, match="does not exist"):
        vitstem.export_onnx(spec, vitstem.init_weights(spec), tmp_path / "absent" / "m.onnx")
