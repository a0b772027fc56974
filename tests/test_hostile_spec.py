"""Hostile specs: random valid specs round-trip and keep fast within the error bound of exact;
random invalid ones raise SpecError naming the field; junk never escapes as anything else.

Example counts are small for `make test`; VITSTEM_FUZZ_EXAMPLES=N runs every property N times.
"""

import json
import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import vitstem
from vitstem.spec import PRESETS, load_spec
from vitstem.spec.policies import NAMED_POLICIES
from vitstem.spec.schema import schema, validate
from support.fuzz import fuzz, images_for, valid_docs


@pytest.mark.slow
@fuzz(60)
@given(doc=valid_docs())
def test_valid_specs_round_trip_with_a_stable_digest(doc):
    spec = load_spec(doc)
    again = load_spec(spec.to_dict())
    assert again == spec and again.digest() == spec.digest()
    assert load_spec(json.loads(spec.to_json())) == spec
    assert spec.in_channels == doc["in_channels"] and spec.embed_dim == doc["embed_dim"]
    assert spec.num_tokens() == spec.num_prefix_tokens + spec.patch_grid()[0] * spec.patch_grid()[1]


@fuzz(40)
@given(doc=valid_docs(), seed=st.integers(0, 2**32 - 1), other_grid=st.booleans())
def test_valid_specs_fast_z0_within_the_bound_of_exact(doc, seed, other_grid):
    from vitstem.backends.numpy.bound import fast_error_bound

    spec = load_spec(doc)
    grid = None
    if other_grid and spec.dynamic_image_size:  # a runtime grid other than the native one: resampling
        grid = (spec.patch_grid()[0] % 4 + 1, spec.patch_grid()[1] % 3 + 2)
    weights = vitstem.init_weights(spec, seed=seed % 1000)
    images = images_for(spec, seed, grid)
    fast = vitstem.forward(spec, weights, images, profile="fast")
    exact = vitstem.forward(spec, weights, images, profile="exact")
    bound = fast_error_bound(spec, weights, images)
    assert fast.shape == exact.shape == (2, spec.num_tokens(images.shape[1:3] if spec.input.layout == "NHWC"
                                                              else images.shape[2:]), spec.embed_dim)
    assert np.isfinite(exact).all() and np.isfinite(bound).all()
    excess = np.abs(fast.astype(np.float64) - exact) - bound
    assert excess.max() <= 0, f"fast exceeds the bound by {excess.max()} at {np.unravel_index(excess.argmax(), excess.shape)}"


# -- invalid spec documents: one mutation, its field path ---------------------------------------
def _set(doc, path, value):
    """doc with the dotted `path` set to `value` (creating nested objects)."""
    doc = json.loads(json.dumps(doc))
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[last] = value
    return doc


def _without(doc, key):
    doc = dict(doc)
    doc.pop(key)
    return doc


NASTY_NUMBERS = [float("nan"), float("inf"), -float("inf")]
WRONG_TYPES = ["8", [8], {"v": 8}, True, None]


@st.composite
def invalid_docs(draw):
    """(document, field path the SpecError must name) from one mutation of a valid document."""
    doc = draw(valid_docs())
    doc["image_size"] = list(doc["image_size"])
    doc["patch_size"] = [int(doc["patch_size"])] * 2 if not isinstance(doc["patch_size"], list) else doc["patch_size"]
    axis = draw(st.integers(0, 1))
    pre = doc["input"]["preprocess"] or {"scale": 1.0, "mean": [0.0] * doc["in_channels"],
                                         "std": [1.0] * doc["in_channels"]}
    choices = [
        # wrong types
        lambda: (_set(doc, "embed_dim", draw(st.sampled_from(WRONG_TYPES + [2.5]))), "embed_dim"),
        lambda: (_set(doc, "in_channels", draw(st.sampled_from(WRONG_TYPES + [1.5]))), "in_channels"),
        lambda: (_set(doc, "patch_bias", draw(st.sampled_from([1, 0, "true", None]))), "patch_bias"),
        lambda: (_set(doc, "prefix.class_token", draw(st.sampled_from([1, "yes", None]))), "prefix.class_token"),
        lambda: (_set(doc, "prefix.register_tokens", draw(st.sampled_from(WRONG_TYPES))), "prefix.register_tokens"),
        lambda: (_set(doc, "name", draw(st.sampled_from([1, None, ["a"]]))), "name"),
        lambda: (_set(doc, "dynamic_image_size", draw(st.sampled_from([1, "no"]))), "dynamic_image_size"),
        lambda: (_set(doc, "image_size", draw(st.sampled_from(["224", {"h": 4}, True, None, [4], [4, 4, 4]]))),
                 "image_size"),
        # zero, negative and non-divisible sizes
        lambda: (_set(doc, f"image_size", [draw(st.integers(-5, 0)) if i == axis else v
                                           for i, v in enumerate(doc["image_size"])]), f"image_size[{axis}]"),
        lambda: (_set(doc, "patch_size", [draw(st.integers(-5, 0)) if i == axis else v
                                          for i, v in enumerate(doc["patch_size"])]), f"patch_size[{axis}]"),
        lambda: (_set(doc, "embed_dim", draw(st.integers(-5, 0))), "embed_dim"),
        lambda: (_set(doc, "in_channels", draw(st.integers(-5, 0))), "in_channels"),
        lambda: (_set(doc, "prefix.register_tokens", draw(st.integers(-5, -1))), "prefix.register_tokens"),
        lambda: (_set(doc, "image_size", [v * 7 + 1 if i == axis else v * 7 for i, v in enumerate(doc["image_size"])])
                 if doc["patch_size"][axis] > 1 else _set(doc, "patch_size", "x"),
                 f"image_size[{axis}]" if doc["patch_size"][axis] > 1 else "patch_size"),
        # unknown fields, top level and nested
        lambda: (_set(doc, draw(st.sampled_from(["colour", "patch", "Embed_dim"])), 1),
                 None),  # path filled below
        lambda: (_set(doc, "prefix.cls", True), "prefix.cls"),
        lambda: (_set(doc, "position_embedding.size", 3), "position_embedding.size"),
        lambda: (_set(doc, "input.channels_last", True), "input.channels_last"),
        lambda: (_set(doc, "resample.method", "bicubic"), "resample.method"),
        # wrong enum values
        lambda: (_set(doc, "spec_version", draw(st.sampled_from([0, 2, "1", True]))), "spec_version"),
        lambda: (_set(doc, "position_embedding.kind", draw(st.sampled_from(["rope", "Learned", "", 1]))),
                 "position_embedding.kind"),
        lambda: (_set(doc, "input.layout", draw(st.sampled_from(["CHW", "nchw", "NHCW", 0]))), "input.layout"),
        lambda: (_set(doc, "resample.policy", draw(st.sampled_from(["pil", "TIMM", None]))), "resample.policy"),
        lambda: (_set(_set(doc, "position_embedding.kind", "sincos2d"), "position_embedding.sincos_convention",
                      draw(st.sampled_from(["jax", "MAE", 4]))), "position_embedding.sincos_convention"),
        # mean/std lengths
        lambda: (_set(doc, "input.preprocess", {**pre, "mean": pre["mean"] + [0.0]}), "input.preprocess.mean"),
        lambda: (_set(doc, "input.preprocess", {**pre, "std": pre["std"][:-1]}), "input.preprocess.std"),
        lambda: (_set(doc, "input.preprocess", {"scale": 1.0, "mean": pre["mean"]}), "input.preprocess.std"),
        # non-finite and out-of-range numbers
        lambda: (_set(doc, "pre_norm", {"eps": draw(st.sampled_from(NASTY_NUMBERS + [0.0, -1e-5, 1e-300, 1e39]))}),
                 "pre_norm.eps"),
        lambda: (_set(doc, "patch_norm", {"kind": "rms_norm",
                                          "eps": draw(st.sampled_from(NASTY_NUMBERS + [0.0, -1e-5, 1e-300, 1e39]))}),
                 "patch_norm.eps"),
        lambda: (_set(doc, "patch_norm", {"kind": draw(st.sampled_from(["batch_norm", "LayerNorm", None, 1]))}),
                 "patch_norm.kind"),
        lambda: (_set(doc, "position_embedding.temperature", draw(st.sampled_from(NASTY_NUMBERS + [0, -1.0, 1e-320]))),
                 "position_embedding.temperature"),
        lambda: (_set(doc, "input.preprocess", {**pre, "scale": draw(st.sampled_from(NASTY_NUMBERS + [0.0, 1e-50]))}),
                 "input.preprocess.scale"),
        lambda: (_set(doc, "input.preprocess", {**pre, "mean": [draw(st.sampled_from(NASTY_NUMBERS + [1e39]))]
                                                + pre["mean"][1:]}), "input.preprocess.mean[0]"),
        lambda: (_set(doc, "input.preprocess", {**pre, "std": [draw(st.sampled_from(NASTY_NUMBERS + [0.0, -1.0, 1e-45]))]
                                                + pre["std"][1:]}), "input.preprocess.std[0]"),
        lambda: (_set(doc, "resample", {**NAMED_POLICIES["timm"], "policy": "custom",
                                        "cubic_coeff_a": draw(st.sampled_from(NASTY_NUMBERS))}), "resample.cubic_coeff_a"),
        lambda: (_set(doc, "resample", {"policy": "timm", "antialias": False}), "resample.antialias"),
        lambda: (_set(doc, "resample", {**NAMED_POLICIES["timm"], "policy": "custom", "coordinates": "align_corners"}),
                 "resample.antialias"),
        lambda: (_set(doc, "resample", {**NAMED_POLICIES["timm"], "policy": "custom",
                                        "phase_steps": draw(st.sampled_from([0, 1, 1024, 10**20, "8", 2.5]))}),
                 "resample.phase_steps"),
        # huge sizes
        lambda: (_set(doc, "embed_dim", draw(st.sampled_from([10**9, 2**40, 10**30]))), "embed_dim"),
        lambda: (_set(doc, "image_size", [10**6 if i == axis else v for i, v in enumerate(doc["image_size"])]),
                 f"image_size[{axis}]"),
        lambda: (_set(doc, "prefix.register_tokens", 10**9), "position_embedding"),
        lambda: (_set(_set(doc, "position_embedding.kind", "learned"), "position_embedding.grid", [10**5, 10**5]),
                 "position_embedding"),
        # missing required fields
        lambda: (_without(doc, key := draw(st.sampled_from(["spec_version", "image_size", "patch_size", "embed_dim"]))),
                 key),
    ]
    mutated, path = draw(st.sampled_from(choices))()
    if path is None:
        path = next(k for k in mutated if k not in doc)
    return mutated, path


def _names(problem_path: str, field: str) -> bool:
    return problem_path == field or problem_path.startswith((field + ".", field + "["))


@pytest.mark.slow
@fuzz(150)
@given(case=invalid_docs())
def test_invalid_specs_raise_spec_error_naming_the_field(case):
    doc, field = case
    with pytest.raises(vitstem.SpecError) as info:
        load_spec(doc)
    paths = [path for path, _ in info.value.problems]
    assert any(_names(p, field) for p in paths), (field, info.value.problems)
    assert all(reason for _, reason in info.value.problems)
    assert field in str(info.value)


# -- junk anywhere: SpecError or a Spec, and the same verdict as jsonschema -------------------------
JSON_SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(-2**80, 2**80)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
FIELD_PATHS = ["spec_version", "name", "image_size", "in_channels", "patch_size", "embed_dim", "patch_bias",
               "prefix", "prefix.class_token", "prefix.dist_token", "prefix.register_tokens",
               "position_embedding", "position_embedding.kind", "position_embedding.covers_prefix",
               "position_embedding.grid", "position_embedding.sincos_convention", "position_embedding.temperature",
               "pre_norm", "pre_norm.eps", "pre_norm.kind", "patch_norm", "patch_norm.kind", "patch_norm.eps", "input", "input.layout", "input.preprocess", "input.preprocess.scale",
               "input.preprocess.mean", "input.preprocess.std", "resample", "resample.policy", "resample.mode",
               "resample.cubic_coeff_a", "resample.phase_steps", "dynamic_image_size", "extra"]


@pytest.mark.slow
@fuzz(200)
@given(doc=valid_docs(), edits=st.lists(st.tuples(st.sampled_from(FIELD_PATHS), JSON_VALUES), min_size=1, max_size=3))
def test_junk_values_give_a_spec_or_spec_error_and_agree_with_jsonschema(doc, edits):
    import jsonschema

    for path, value in edits:
        doc = _set(doc, path, value)
    try:
        spec = load_spec(doc)
    except vitstem.SpecError as exc:
        assert exc.problems and all(reason for _, reason in exc.problems)
    else:
        assert load_spec(spec.to_dict()) == spec
    ours = validate(doc)
    theirs = list(jsonschema.Draft202012Validator(schema()).iter_errors(doc))
    if any("too large for a floating-point number" in reason for _, reason in ours):
        return  # our one extension for JSON documents: a number must fit a double (Python would overflow)
    assert bool(ours) == bool(theirs), (doc, ours, [e.message for e in theirs])


# -- absurd sizes: refused before anything is allocated -------------------------------------------
BASE = {"spec_version": 1, "image_size": 16, "patch_size": 4, "embed_dim": 8}
ABSURD = [
    ({"embed_dim": 10**9}, "embed_dim"),
    ({"embed_dim": 10**9, "position_embedding": {"kind": "none"}}, "embed_dim"),
    ({"image_size": 10**6, "patch_size": 1}, "image_size[0]"),
    ({"image_size": [16, 10**6], "patch_size": [4, 1]}, "image_size[1]"),
    ({"image_size": 65536, "patch_size": 1, "embed_dim": 8}, "position_embedding"),
    ({"prefix": {"register_tokens": 10**12}}, "position_embedding"),
    ({"position_embedding": {"grid": [10**6, 10**6]}}, "position_embedding"),
    ({"in_channels": 10**9, "input": {"preprocess": None}}, "embed_dim"),
    ({"image_size": 8192, "patch_size": 8192, "in_channels": 3, "embed_dim": 768}, "embed_dim"),
    ({"embed_dim": 10**400}, "embed_dim"),
    ({"embed_dim": 10**5000}, "embed_dim"),
    ({"image_size": 10**5000}, "image_size[0]"),
    ({"prefix": {"register_tokens": 10**5000}}, "position_embedding"),
]


@pytest.mark.parametrize("change, field", ABSURD)
def test_absurd_specs_are_refused_without_allocating(change, field):
    tracemalloc.start()
    try:
        with pytest.raises(vitstem.SpecError) as info:
            load_spec({**BASE, **change})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert any(_names(p, field) for p, _ in info.value.problems), info.value.problems
    assert peak < 2**20, f"validation allocated {peak} bytes"


def test_largest_presets_validate_without_allocating_their_tables():
    tracemalloc.start()
    try:
        specs = [load_spec(name) for name in ("vit_huge_patch14_336", "vit_base_patch14_reg4_dinov2")]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert specs[0].num_tokens() == 577 and specs[1].num_tokens() == 1 + 4 + 37 * 37
    assert peak < 2**20


# -- regressions: each of these escaped as a crash or a huge allocation before it was fixed -------
def test_malformed_fields_are_never_computed_with():
    """Cross-field rules ran on schema-rejected values: "x" * (in_channels * patch area) allocated 10 GB."""
    tracemalloc.start()
    try:
        for bad in ("x", "%999999999d", [0], {"a": 1}):
            with pytest.raises(vitstem.SpecError, match="embed_dim: expected integer"):
                load_spec({**BASE, "embed_dim": bad, "in_channels": 10**6, "image_size": 4096, "patch_size": 1,
                           "position_embedding": {"kind": "sincos2d", "sincos_convention": "mae"}})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20


@pytest.mark.parametrize("value", [float("inf"), -float("inf"), float("nan"), 1e300])
def test_non_finite_or_huge_sizes(value):
    """image_size: .inf raised OverflowError from int(inf)."""
    with pytest.raises(vitstem.SpecError) as info:
        load_spec({**BASE, "image_size": value})
    assert info.value.problems[0][0].startswith("image_size")


def test_enum_does_not_take_true_for_one():
    """Python's True == 1 let spec_version: true through; JSON Schema (and jsonschema) say it is not 1."""
    with pytest.raises(vitstem.SpecError, match="spec_version: true is not one of 1"):
        load_spec({**BASE, "spec_version": True})
    assert load_spec({**BASE, "spec_version": 1.0}).spec_version == 1  # 1.0 is the JSON number 1


def test_numbers_beyond_a_double_are_refused():
    """A 400-digit temperature passed the schema and crashed float() while building the spec."""
    with pytest.raises(vitstem.SpecError, match="position_embedding.temperature: <1329-bit integer> is too large"):
        load_spec({**BASE, "position_embedding": {"temperature": 10**400}})


@pytest.mark.parametrize("field, doc", [
    ("input.preprocess.std[1]", {"input": {"preprocess": {"mean": [0, 0, 0], "std": [1, 1e-50, 1]}}}),
    ("input.preprocess.scale", {"input": {"preprocess": {"scale": 1e-45, "mean": [0, 0, 0], "std": [1, 1, 1]}}}),
    ("input.preprocess.scale", {"input": {"preprocess": {"scale": 1e39, "mean": [0, 0, 0], "std": [1, 1, 1]}}}),
    ("input.preprocess.mean[2]", {"input": {"preprocess": {"mean": [0, 0, -1e39], "std": [1, 1, 1]}}}),
    ("pre_norm.eps", {"pre_norm": {"eps": 1e-300}}),
    ("position_embedding.temperature",
     {"embed_dim": 8, "position_embedding": {"kind": "sincos2d", "sincos_convention": "big_vision", "temperature": 5e-324}}),
])
def test_constants_that_vanish_or_overflow_in_float32_are_refused(field, doc):
    """std 1e-50 is > 0, as the schema asks, but float32(1e-50) == 0: z0 was inf."""
    with pytest.raises(vitstem.SpecError) as info:
        load_spec({**BASE, **doc})
    assert [p for p, _ in info.value.problems] == [field]


def test_values_a_message_cannot_serialise():
    """A mapping with a tuple key crashed the message builder (json.dumps) with TypeError."""
    with pytest.raises(vitstem.SpecError, match=r"image_size: expected integer or array, got \{\[1, 2\]: 3\}"):
        load_spec({**BASE, "image_size": {(1, 2): 3}})
    with pytest.raises(vitstem.SpecError, match="name: expected string, got <object object"):
        load_spec({**BASE, "name": object()})


def _alias_bomb(levels: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines)


def test_yaml_alias_bomb_is_reported_without_expanding_it(tmp_path):
    """10^9 leaves by alias: the message builder serialised all of them (minutes, gigabytes)."""
    path = tmp_path / "bomb.yaml"
    path.write_text("spec_version: 1\npatch_size: 2\nembed_dim: 8\nimage_size: &bomb [[1]]\n"
                    + "extra:\n" + "\n".join("  " + line for line in _alias_bomb(8).splitlines())
                    + "\nname: *a8\nprefix: *a8\n")
    tracemalloc.start()
    try:
        with pytest.raises(vitstem.SpecError) as info:
            load_spec(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    paths = {p for p, _ in info.value.problems}
    assert {"image_size", "extra", "name", "prefix"} <= paths
    assert len(str(info.value)) < 2000 and peak < 2**24


@pytest.mark.slow
@pytest.mark.parametrize("suffix, text", [
    (".json", '{"spec_version": 1, "embed_dim": ' + "9" * 5000 + "}"),
    (".yaml", "spec_version: 1\nembed_dim: " + "9" * 5000 + "\n"),
    (".json", "[" * 100_000 + "]" * 100_000),
    (".yaml", "[" * 5_000 + "]" * 5_000),
    (".yaml", "{a: !!python/object/apply:os.system [echo pwned]}"),
    (".json", "\ufeff{}"),
    (".yaml", "\x00\x01"),
    (".json", ""),
])
def test_hostile_spec_files(tmp_path, suffix, text):
    """5000-digit integers (ValueError) and deep nesting (RecursionError) escaped as tracebacks."""
    path = tmp_path / f"spec{suffix}"
    path.write_text(text)
    with pytest.raises(vitstem.SpecError, match=str(path.name)):
        load_spec(path)


def test_yaml_nan_and_inf_name_the_field(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("spec_version: 1\nimage_size: 16\npatch_size: 4\nembed_dim: 8\npre_norm: {eps: .nan}\n"
                    "position_embedding: {temperature: .inf}\n")
    with pytest.raises(vitstem.SpecError) as info:
        load_spec(path)
    assert sorted(info.value.problems) == [("position_embedding.temperature", "inf is not a finite number"),
                                           ("pre_norm.eps", "nan is not a finite number")]



@pytest.mark.parametrize("resample, field", [
    ({"coordinates": "align_corners"}, "resample.antialias"),
    ({"phase_steps": 1024}, "resample.phase_steps"),
])
def test_custom_resample_combinations_resampling_cannot_run_are_refused(resample, field):
    """These validated, then raised ValueError from resample_matrix at the first forward on another grid."""
    custom = {"policy": "custom", "mode": "bicubic", "cubic_coeff_a": -0.5, "antialias": True,
              "coordinates": "half_pixel", "exclude_outside": True}
    with pytest.raises(vitstem.SpecError) as info:
        load_spec({**BASE, "resample": {**custom, **resample}})
    assert [p for p, _ in info.value.problems] == [field]


def test_fast_error_bound_is_never_nan():
    """A one-wide pre-norm (var = 0, so centred z = 0) whose variance bound exceeds eps: rho = inf
    and |c| * rho = 0 * inf = NaN in bound._layer_norm_bound. The bound must be a number or inf."""
    from vitstem.backends.numpy.bound import fast_error_bound

    spec = load_spec({**BASE, "image_size": [1, 4], "patch_size": [1, 2], "in_channels": 2, "embed_dim": 1,
                      "prefix": {"class_token": False}, "pre_norm": {}})
    weights = vitstem.init_weights(spec)
    images = np.array([[[[0.0, 0.0, -3.0, 3.0]], [[0.0, 0.0, 3.0, -3.0]]]], np.float32)
    bound = fast_error_bound(spec, weights, images)
    assert not np.isnan(bound).any(), bound
    fast, exact = vitstem.forward(spec, weights, images), vitstem.forward(spec, weights, images, profile="exact")
    assert (np.abs(fast - exact) <= bound).all()


def test_names_that_are_not_unicode_text_are_refused(tmp_path):
    """JSON allows a lone surrogate ("\\ud800"); it validated, then crashed export (protobuf) with UnicodeEncodeError."""
    path = tmp_path / "spec.json"
    path.write_text('{"spec_version": 1, "image_size": 4, "patch_size": 2, "embed_dim": 4, "name": "a\\ud800"}')
    with pytest.raises(vitstem.SpecError, match="name: is not valid Unicode text"):
        load_spec(path)
    assert load_spec({**BASE, "name": "名前\n\x00"}).name == "名前\n\x00"
