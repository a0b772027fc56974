"""Hostile input, the gaps left after issue 12's second round: headers naming many tensors (checked in
full, a column at a time), files truncated while vitstem reads them (an error, never SIGBUS), casts that
overflow (one InputError, no NumPy warning), the Keras layer's NumPy inputs (the one dtype rule), and
bfloat16 peer checkpoints (imported exactly, widened to float32)."""

import json
import os
import struct
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.fuzz import fuzz

import vitstem
from vitstem.spec import load_spec, read_safetensors
from vitstem.spec.inputs import faithful_array

SPEC = load_spec("vitstem_tiny_test")  # NCHW normalised floats, no norms
NORMED = load_spec({"spec_version": 1, "image_size": 8, "patch_size": 4, "embed_dim": 8,
                    "input": {"layout": "NCHW", "preprocess": {"mean": [0.5] * 3, "std": [0.25] * 3}},
                    "pre_norm": {}, "patch_norm": {"kind": "layer_norm"}})
SIZES = {"F32": 4, "F16": 2, "BF16": 2, "U8": 1, "I64": 8, "BOOL": 1}


def _file(header: dict, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


# -- many tensors: every check holds, whatever the count and the order -----------------------------
def _reference_problem(header: dict, data_size: int) -> str | None:
    """The first tensor (in the header's order) breaking one per-tensor rule, else the first tensor out of
    place when the ranges are read in (begin, end, name) order: the rules restated from safetensors' spec."""
    spans = []
    for name, info in header.items():
        shape, (begin, end) = info["shape"], info["data_offsets"]
        if info["dtype"] not in SIZES or any(type(s) is not int or s < 0 for s in shape) \
                or any(type(o) is not int or o < 0 for o in (begin, end)):
            return name
        if end - begin != int(np.prod(shape, dtype=object)) * SIZES[info["dtype"]]:
            return name
        spans.append((begin, end, name))
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            return name
        position = end
    return "" if position != data_size else None


@st.composite
def many_tensors(draw):
    """A valid header of 2 000 tensors in shuffled byte order, then maybe one defect at a drawn tensor."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    count = 2000
    dtypes = rng.choice(sorted(SIZES), count)
    shapes = [[int(d) for d in rng.integers(0, 4, rng.integers(0, 4))] for _ in range(count)]
    sizes = [int(np.prod(s, dtype=np.int64)) * SIZES[d] for s, d in zip(shapes, dtypes)]
    order, position, offsets = rng.permutation(count), 0, [None] * count
    for i in order:
        offsets[i] = [position, position + sizes[i]]
        position += sizes[i]
    header = {f"t{i}": {"dtype": str(dtypes[i]), "shape": shapes[i], "data_offsets": offsets[i]} for i in range(count)}
    victim = f"t{draw(st.integers(0, count - 1))}"
    defect = draw(st.sampled_from(["none", "gap", "overlap", "dtype", "bool", "negative", "offsets", "huge"]))
    entry = header[victim]
    if defect == "gap":
        entry["data_offsets"] = [o + 1 for o in entry["data_offsets"]]
    elif defect == "overlap":
        entry["data_offsets"] = [max(o - 1, 0) for o in entry["data_offsets"]]
    elif defect == "dtype":
        entry["dtype"] = "F99"
    elif defect == "bool":
        entry["shape"] = [True, *entry["shape"]]
    elif defect == "negative":
        entry["shape"] = [-1, *entry["shape"]]
    elif defect == "offsets":
        entry["data_offsets"] = [entry["data_offsets"][0], entry["data_offsets"][1] + 1]
    elif defect == "huge":
        entry["shape"] = [2**40, *entry["shape"]]
    return header, position


@fuzz(12)
@given(case=many_tensors())
def test_a_header_naming_many_tensors_is_checked_in_full(case, tmp_path_factory):
    """Every rule holds on thousands of tensors: a file passes exactly when the restated rules say so, and
    a refusal names the tensor they name; what passes reads back each tensor's own bytes."""
    from vitstem.spec.safetensors_file import SafetensorsFile

    header, size = case
    data = np.random.default_rng(0).integers(0, 2, size, dtype=np.uint8).tobytes()
    path = tmp_path_factory.mktemp("many") / "w.safetensors"
    path.write_bytes(_file(header, data))
    expected = _reference_problem(header, size)
    if expected is not None:
        with pytest.raises(vitstem.WeightsError, match="not a readable safetensors file") as info:
            SafetensorsFile(path)
        assert f"tensor {expected!r}" in str(info.value) or (expected == "" and "truncated or padded" in str(info.value))
        return
    with SafetensorsFile(path) as file:
        assert file.declared == {k: (v["dtype"], tuple(v["shape"])) for k, v in header.items()}
        for name in ("t0", "t999", "t1999"):
            info = header[name]
            if info["dtype"] != "BF16":
                begin, end = info["data_offsets"]
                assert file.array(name).tobytes() == data[begin:end]


def test_parsing_a_big_header_runs_no_garbage_collection(tmp_path):
    """The header's small acyclic objects are freed by reference counting: collecting meanwhile (again and
    again, as they pile up) made a 200 000-tensor header take tens of seconds."""
    import gc

    header = {f"t{i}": {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]} for i in range(20_000)}
    path = tmp_path / "w.safetensors"
    path.write_bytes(_file(header, bytes(4 * 20_000)))
    collections = []

    def count(phase, info):
        if phase == "start":
            collections.append(info["generation"])

    gc.collect()
    gc.callbacks.append(count)
    try:
        tensors, _ = read_safetensors(path)
    finally:
        gc.callbacks.remove(count)
    assert len(tensors) == 20_000 and len(collections) <= 1  # the one that follows, of what was kept
    assert gc.isenabled()


# -- a file truncated while it is read: an error naming it, never a signal --------------------------
BIG = load_spec({"spec_version": 1, "image_size": 32, "patch_size": 8, "embed_dim": 64})  # a 48 KiB kernel


def _saved(tmp_path):
    """A weights file of many pages: a memory map read past its new end would raise SIGBUS, not read zeros."""
    weights = vitstem.init_weights(BIG)
    path = tmp_path / "w.safetensors"
    vitstem.save_weights(weights, path, BIG)
    return path, weights, 8 + int.from_bytes(path.read_bytes()[:8], "little")


@pytest.mark.parametrize("keep", ["header", "half"])
def test_a_file_truncated_after_opening_is_an_error_naming_it(tmp_path, keep):
    path, weights, start = _saved(tmp_path)
    tensors, _ = read_safetensors(path)
    os.truncate(path, start if keep == "header" else (start + path.stat().st_size) // 2)
    with pytest.raises(vitstem.WeightsError) as info:
        for name in weights:
            tensors[name].sum()  # touching a mapped page past the end would be SIGBUS
    assert str(path) in str(info.value) and "truncated since it was opened" in str(info.value)
    assert any(f"tensor {name!r}" in str(info.value) for name in weights)


@pytest.mark.parametrize("command", ["load", "import"])
def test_a_file_truncated_between_header_and_tensors_is_an_error(tmp_path, monkeypatch, command):
    """Another process cuts the file right after vitstem checked its header against the file's size."""
    from vitstem.interop import import_checkpoint
    from vitstem.interop.timm import to_timm_state_dict
    from vitstem.spec import safetensors_file

    path, weights, start = _saved(tmp_path)
    if command == "import":
        from safetensors.numpy import save_file

        save_file(to_timm_state_dict(BIG, weights), str(path))
        start = 8 + int.from_bytes(path.read_bytes()[:8], "little")
    checked = safetensors_file.entries

    def then_truncated(header, data_size):
        result = checked(header, data_size)
        os.truncate(path, start + 10)
        return result

    monkeypatch.setattr(safetensors_file, "entries", then_truncated)
    with pytest.raises(vitstem.WeightsError, match=r"tensor '[^']+' \(bytes \d+ to \d+\) cannot be read: the file "
                                                   rf"now has {start + 10} bytes") as info:
        vitstem.load_weights(path, BIG) if command == "load" else import_checkpoint(path, "timm", preprocess=None)
    assert str(path) in str(info.value)


def test_truncation_never_kills_the_process(tmp_path):
    """The process survives a weights file cut to its header while the tensors are read (a memory map
    would end it with SIGBUS): it reports the error and exits by itself."""
    path, _, start = _saved(tmp_path)
    script = textwrap.dedent(f"""
        import os, sys
        import vitstem
        from vitstem.spec import read_safetensors
        tensors, _ = read_safetensors({str(path)!r})
        os.truncate({str(path)!r}, {start})
        try:
            print(sum(float(tensors[name].sum()) for name in tensors))
        except vitstem.WeightsError as exc:
            print(exc)
            sys.exit(3)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert result.returncode == 3, (result.returncode, result.stderr[-500:])
    assert str(path) in result.stdout and "truncated since it was opened" in result.stdout


# -- casts that overflow: the InputError alone, no NumPy RuntimeWarning -----------------------------
def _quietly(call):
    """(the InputError `call` raised or None, the RuntimeWarnings it emitted, its result or None)."""
    error = result = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = call()
        except vitstem.InputError as exc:
            error = exc
    return error, [w for w in caught if issubclass(w.category, RuntimeWarning)], result


@pytest.mark.parametrize("spec", [SPEC, NORMED], ids=["plain", "preprocess+norms"])
@pytest.mark.parametrize("value", [1e300, -4e38])
def test_a_float64_pixel_beyond_float32_is_one_input_error(spec, value):
    """fast casts the batch to float32: refused at the cast, naming the range, before anything else sees inf."""
    x = np.full(spec.input_shape(1), 0.5)
    x[0, 1, 2, 3] = value
    error, warned, _ = _quietly(lambda: vitstem.forward(spec, vitstem.init_weights(spec), x))
    assert warned == [] and "images have values beyond float32's range" in str(error)
    assert f"max |x| = {abs(value):.6g}" in str(error)


@pytest.mark.parametrize("value, overflows", [(1e300, True), (-4e38, False)])
def test_exact_rounds_z0_to_float32_without_warnings(value, overflows):
    """exact computes in float64 and rounds z0 once: 1e300 x a ~0.1 kernel is past float32 there (refused by
    the z0 check), -4e38 x ~0.1 is not (returned, as torch's exact computes it)."""
    x = np.full(SPEC.input_shape(1), 0.5)
    x[0, 1, 2, 3] = value
    weights = vitstem.init_weights(SPEC)
    error, warned, z = _quietly(lambda: vitstem.forward(SPEC, weights, x, profile="exact"))
    assert warned == []
    if overflows:
        assert "non-finite values although the images are finite: they overflow float32" in str(error)
    else:
        np.testing.assert_array_equal(z, vitstem.forward(SPEC, weights, x, profile="exact", backend="torch"))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("casts")
    w = vitstem.init_weights(SPEC)
    vitstem.export_onnx(SPEC, w, d / "fp32.onnx")
    vitstem.export_onnx(SPEC, w, d / "exact.onnx", profile="exact")
    vitstem.export_onnx(SPEC, w, d / "fp16io.onnx", precision="fp16", io_dtype="float16")
    return d


@pytest.mark.parametrize("model, value, dtype, words", [
    ("fp32.onnx", 1e39, np.float64, "beyond float32's range"),
    ("exact.onnx", -1e300, np.float64, "beyond float32's range"),
    ("fp16io.onnx", 1e300, np.float64, "beyond float16's range"),
    ("fp16io.onnx", -7e4, np.float32, "beyond float16's range"),
])
def test_the_runtime_casts_without_warnings(models, model, value, dtype, words):
    from vitstem.runtime import load

    x = np.zeros(SPEC.input_shape(1), dtype)
    x[0, 0, 0, 0] = value
    error, warned, _ = _quietly(lambda: load(models / model)(x))
    assert warned == [] and error is not None and words in str(error)


def test_a_long_double_beyond_float64_is_one_input_error():
    x = np.zeros(SPEC.input_shape(1), np.longdouble)
    x.flat[5] = np.longdouble(2) ** 1100
    for call in (lambda: faithful_array(x), lambda: vitstem.forward(SPEC, vitstem.init_weights(SPEC), x)):
        error, warned, _ = _quietly(call)
        assert warned == [] and "1 values float64 cannot hold exactly" in str(error)


# -- the Keras layer called on NumPy arrays: the one dtype rule ---------------------------------------
@pytest.mark.parametrize("profile", ["fast", "exact"])
def test_the_keras_layer_takes_numpy_arrays_by_the_one_dtype_rule(profile):
    from vitstem.backends.tensorflow import VitStemLayer

    layer = VitStemLayer(SPEC, profile)
    x = np.random.default_rng(3).standard_normal(SPEC.input_shape(2))
    native = layer(x).numpy()
    if profile == "exact":  # the reference's bits; fast is held to a bound only
        np.testing.assert_array_equal(native, vitstem.forward(SPEC, layer.canonical_weights(), x, profile=profile))
    np.testing.assert_array_equal(layer(x.astype(np.longdouble)).numpy(), native)  # float64 holds every value
    np.testing.assert_array_equal(layer(images=x.astype(">f8")).numpy(), native)
    np.testing.assert_array_equal(layer(np.ma.masked_array(x, mask=False)).numpy(), native)
    lossy = x.astype(np.longdouble)
    lossy.flat[7] = 1 + np.longdouble(2) ** -60  # a long double's 64-bit significand holds it, float64's not
    with pytest.raises(vitstem.InputError, match=r"^images: dtype float\d+ \(long double\) with 1 values float64"):
        layer(lossy)
    with pytest.raises(vitstem.InputError, match=r"^images: a masked array with 1 masked values"):
        layer(np.ma.masked_array(x, mask=np.arange(x.size).reshape(x.shape) == 4))


# -- bfloat16 peer checkpoints: imported exactly, as float32 ------------------------------------------
@pytest.mark.parametrize("peer", ["timm", "hf"])
def test_a_bfloat16_checkpoint_imports_exactly(tmp_path, peer):
    import torch
    from safetensors.torch import save_file
    from support.hf_peers import hf_z0, tiny_model
    from support.reference import assert_agrees
    from support.timm_peers import timm_z0, tiny_vit

    from vitstem.interop import import_checkpoint

    model = tiny_vit(reg_tokens=2) if peer == "timm" else tiny_model("vit")
    state = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp_path / "model.safetensors"))
    if peer == "hf":
        model.config.to_json_file(str(tmp_path / "config.json"))
    spec, weights = import_checkpoint(tmp_path / "model.safetensors", peer, preprocess=None)
    model.load_state_dict({k: v.float() for k, v in state.items()})  # the peer in bfloat16-rounded weights
    # torch's own bfloat16 -> float32, bit for bit (the peer's names, its table with the registers' zero rows)
    prefix = "" if peer == "timm" else "embeddings."
    kernel = "patch_embed.proj.weight" if peer == "timm" else "embeddings.patch_embeddings.projection.weight"
    token = "cls_token" if peer == "timm" else "embeddings.cls_token"
    assert all(w.dtype == np.float32 for w in weights.values())
    assert np.array_equal(weights["patch_embed.weight"].view(np.uint32), state[kernel].float().numpy().view(np.uint32))
    assert np.array_equal(weights["cls_token"].view(np.uint32), state[token].float().numpy().view(np.uint32))
    table = state[prefix + ("pos_embed" if peer == "timm" else "position_embeddings")].float().numpy()
    assert np.array_equal(weights["pos_embed"][:, -table.shape[1]:], table.reshape(1, -1, table.shape[-1])[:, -table.shape[1]:])
    x = np.random.default_rng(4).standard_normal(spec.input_shape(2)).astype(np.float32)
    assert_agrees(spec, weights, x, timm_z0(model, x) if peer == "timm" else hf_z0(model, x))
    tensors, _ = read_safetensors(tmp_path / "model.safetensors")  # not an import: BF16 is no vitstem weight
    with pytest.raises(vitstem.WeightsError, match=f"tensor '{kernel}' has dtype BF16, which NumPy cannot hold"):
        tensors[kernel]
