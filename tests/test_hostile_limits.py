"""Hostile input, the classes of issue 12's second round: bounded reads (safetensors, .npy, .npz), one
dtype rule for every engine (byte order, long double, masked, complex, object, structured), z0
finiteness on every engine, and a size limit checked from the shape before anything is allocated."""

import json
import os
import struct
import subprocess
import sys
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.engine_runners import ENGINES, SPECS, runners, valid_batch  # noqa: F401  (runners is a fixture)
from support.fuzz import fuzz

import vitstem
from vitstem.spec import inputs, load_spec, npy_file
from vitstem.spec.safetensors_file import MAX_HEADER_BYTES

SPEC = load_spec("vitstem_tiny_test")
MiB = 1 << 20


def _peak(call):
    """(result or exception, peak bytes NumPy/Python allocated while running `call`)."""
    tracemalloc.start()
    try:
        try:
            result = call()
        except Exception as exc:  # noqa: BLE001 - returned for the caller to assert on
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _safetensors(tensors, metadata=None) -> bytes:
    from safetensors.numpy import save

    return save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=metadata)


def _header_file(header: dict, payload: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + payload


# -- safetensors: the header is checked before any tensor byte is read ----------------------------
DTYPE_SIZES = {"F32": 4, "F64": 8, "F16": 2, "U8": 1, "BF16": 2, "I64": 8}


@st.composite
def declared_tensors(draw):
    """A header whose one tensor declares a shape (often absurd) and offsets (often inconsistent)."""
    dtype = draw(st.sampled_from(sorted(DTYPE_SIZES)))
    shape = draw(st.lists(st.one_of(st.integers(0, 8), st.integers(2**20, 2**62)), min_size=0, max_size=4))
    if draw(st.booleans()):
        shape.insert(0, 0)  # no bytes at all, other dimensions huge
    count = int(np.prod(shape, dtype=object))
    payload = draw(st.integers(0, 64))
    end = draw(st.sampled_from([count * DTYPE_SIZES[dtype], payload, 2**63 - 1, payload + 1]))
    return {"cls_token": {"dtype": dtype, "shape": shape, "data_offsets": [0, end]}}, payload


@fuzz(80)
@given(case=declared_tensors())
def test_declared_shapes_are_checked_against_the_file_before_reading(case, tmp_path_factory):
    header, payload = case
    path = tmp_path_factory.mktemp("st") / "w.safetensors"
    path.write_bytes(_header_file(header, b"\0" * payload))
    result, peak = _peak(lambda: vitstem.load_weights(path, SPEC))
    assert isinstance(result, vitstem.WeightsError), result
    assert peak < 4 * MiB, peak
    assert "\n" not in str(result)


@pytest.mark.parametrize("length", [MAX_HEADER_BYTES + 1, 2**40, 2**64 - 1])
def test_a_header_length_over_the_limit_is_refused_before_reading(tmp_path, length):
    path = tmp_path / "w.safetensors"
    path.write_bytes(struct.pack("<Q", length) + b"{}" + b"\0" * 64)
    result, peak = _peak(lambda: vitstem.load_weights(path, SPEC))
    assert isinstance(result, vitstem.WeightsError) and "truncated or not a safetensors file" in str(result)
    assert peak < MiB


@pytest.mark.parametrize("header, words", [
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
      "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, "a gap or an overlap"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, "a gap or an overlap"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, "do not hold shape"),
    ({"a": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, "not a non-negative integer"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4.0]}}, "not a non-negative integer"),
    ({"a": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}, "unknown dtype"),
    ({"a": {"shape": [1], "data_offsets": [0, 4]}}, "needs exactly dtype, shape and data_offsets"),
    ({"__metadata__": {"k": 1}}, "__metadata__ must map names to strings"),
])
def test_inconsistent_headers_are_named(tmp_path, header, words):
    path = tmp_path / "w.safetensors"
    path.write_bytes(_header_file(header, b"\0" * 8))
    with pytest.raises(vitstem.WeightsError, match=words):
        vitstem.load_weights(path, SPEC)


def _sparse_file(path, tensors: dict, big: str, big_bytes: int) -> None:
    """A safetensors file holding `tensors` and, last, a zero tensor `big` of `big_bytes` (a sparse hole)."""
    data = _safetensors(tensors)
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    body = len(data) - 8 - size
    header[big] = {"dtype": "U8", "shape": [big_bytes], "data_offsets": [body, body + big_bytes]}
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data[8 + size:])
        f.truncate(8 + len(text) + body + big_bytes)


def test_a_huge_file_reads_only_the_spec_tensors(tmp_path):
    """A 6 GiB file (sparse) with the canonical weights plus one big tensor: refused by name, with only
    the spec's tensors read (the big one is never touched)."""
    weights = vitstem.init_weights(SPEC)
    path = tmp_path / "w.safetensors"
    _sparse_file(path, weights, "head.weight", 6 << 30)
    result, peak = _peak(lambda: vitstem.load_weights(path, SPEC))
    assert isinstance(result, vitstem.WeightsError), result
    assert "unexpected weight 'head.weight'" in str(result) and peak < 4 * MiB


def test_a_huge_timm_checkpoint_imports_from_its_stem_tensors(tmp_path):
    """`vitstem import` of a 6 GiB (sparse) timm checkpoint reads its stem tensors only: the same spec and
    weights as the checkpoint without the big tensor, the weights bit-identical to those exported."""
    from vitstem.interop import import_checkpoint
    from vitstem.interop.timm import to_timm_state_dict

    spec = load_spec({"spec_version": 1, "image_size": 16, "patch_size": 4, "embed_dim": 8})
    weights = vitstem.init_weights(spec, seed=2)
    state = to_timm_state_dict(spec, weights)
    (tmp_path / "small").mkdir()
    (tmp_path / "small" / "model.safetensors").write_bytes(_safetensors(state))
    _sparse_file(tmp_path / "model.safetensors", state, "blocks.0.mlp.fc1.weight", 6 << 30)
    (got, got_weights), peak = _peak(lambda: import_checkpoint(tmp_path / "model.safetensors", "timm", preprocess=None))
    assert peak < 4 * MiB, peak
    ref, ref_weights = import_checkpoint(tmp_path / "small" / "model.safetensors", "timm", preprocess=None)
    assert got == ref and got.digest() == ref.digest()
    assert got_weights.keys() == weights.keys()
    assert all(np.array_equal(got_weights[k], weights[k]) and np.array_equal(ref_weights[k], weights[k]) for k in weights)


def test_loaded_weights_are_owned_writable_copies(tmp_path):
    path = tmp_path / "w.safetensors"
    vitstem.save_weights(vitstem.init_weights(SPEC), path, SPEC)
    weights = vitstem.load_weights(path, SPEC)
    weights["cls_token"] += 1  # would fail on a read-only view of the map
    assert all(v.flags.owndata and v.flags.writeable for v in weights.values())
    np.testing.assert_array_equal(vitstem.load_weights(path, SPEC)["cls_token"] + 1, weights["cls_token"])


@pytest.mark.slow
@pytest.mark.parametrize("target", ["/dev/zero", "/dev/null", "fifo", "dir"])
def test_inputs_that_are_not_regular_files_are_refused_without_reading(tmp_path, target):
    """/dev/zero never ends and a FIFO blocks: both are refused from stat, before opening."""
    if target == "fifo":
        target = tmp_path / "fifo"
        os.mkfifo(target)
    elif target == "dir":
        target = tmp_path
    code = ("import vitstem, sys\n"
            "from vitstem.npy_files import load_npy\n"
            "for call in (lambda: vitstem.load_weights(sys.argv[1], 'vitstem_tiny_test'), lambda: load_npy(sys.argv[1])):\n"
            "    try: call()\n"
            "    except vitstem.VitstemError as e: print(type(e).__name__, e)\n")
    result = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and len(lines) == 2, result
    reason = "Is a directory" if target == tmp_path else "not a regular file"
    assert lines[0].startswith("WeightsError cannot read weights file") and reason in lines[0]
    assert lines[1].startswith("InputError") and reason in lines[1]


# -- .npy and .npz: headers and declared sizes first, reads capped ---------------------------------
def _npy(shape, descr="<f4", payload=b"", fortran=False) -> bytes:
    import io

    from numpy.lib import format as npy_format

    buffer = io.BytesIO()
    npy_format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": fortran, "shape": tuple(shape)})
    return buffer.getvalue() + payload


@st.composite
def npy_files(draw):
    """(bytes of a .npy file, the array it holds or None when it is not a readable one)."""
    dtype = np.dtype(draw(st.sampled_from(["<f4", ">f4", "<f8", "|u1", ">i2", "<c8", "|b1"])))
    shape = tuple(draw(st.lists(st.one_of(st.integers(0, 4), st.integers(2**30, 2**40)), max_size=4)))
    count = int(np.prod(shape, dtype=object))
    fortran = draw(st.booleans())
    if count <= 64 and max(shape, default=0) <= 8 and draw(st.booleans()):
        array = np.arange(count).astype(dtype).reshape(shape, order="F" if fortran else "C")
        payload = array.tobytes(order="F" if fortran else "C")
        cut = draw(st.sampled_from([0, 0, 1, -1]))
        payload = payload[:len(payload) - cut] if cut >= 0 else payload + b"\0"
        return _npy(shape, dtype.str, payload, fortran), array if cut == 0 else None
    payload = b"\0" * draw(st.integers(0, 64))
    exact = count * dtype.itemsize == len(payload)  # by chance the bytes the header declares
    try:
        expected = np.frombuffer(payload, dtype).reshape(shape, order="F" if fortran else "C") if exact else None
    except ValueError:  # a shape NumPy cannot describe (a zero dimension beside huge ones): to be refused
        expected = None
    return _npy(shape, dtype.str, payload, fortran), expected


@fuzz(120)
@given(case=npy_files())
def test_npy_files_read_exactly_or_are_refused_before_allocating(case, tmp_path_factory):
    data, expected = case
    path = tmp_path_factory.mktemp("npy") / "x.npy"
    path.write_bytes(data)
    result, peak = _peak(lambda: npy_file.load_npy_file(path))
    assert peak < 4 * MiB, peak
    if expected is None:
        assert isinstance(result, npy_file.NotNpy), result
        return
    assert isinstance(result, np.ndarray) and result.dtype == expected.dtype and result.shape == expected.shape
    np.testing.assert_array_equal(result, expected)
    np.testing.assert_array_equal(result, np.load(path, allow_pickle=False))  # the peer reader agrees


def test_an_npy_input_declaring_terabytes_is_one_line_in_the_cli(tmp_path):
    path = tmp_path / "x.npy"
    path.write_bytes(_npy((10**6, 3, 224, 224), payload=b"\0" * 64))
    weights = tmp_path / "w.safetensors"
    vitstem.save_weights(vitstem.init_weights(SPEC), weights, SPEC)
    result = subprocess.run([sys.executable, "-m", "vitstem", "forward", "vitstem_tiny_test", "--weights", str(weights),
                             str(path), "-o", str(tmp_path / "z.npy")], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "declares shape (1000000, 3, 224, 224)" in result.stderr and "64 bytes follow" in result.stderr


def _npz(path, members: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> None:
    with zipfile.ZipFile(path, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)


def _big_vision(seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"embedding/kernel": rng.standard_normal((4, 4, 3, 8)).astype(np.float32),
            "embedding/bias": rng.standard_normal(8).astype(np.float32),
            "cls": rng.standard_normal((1, 1, 8)).astype(np.float32),
            "pos_embedding": rng.standard_normal((1, 16, 8)).astype(np.float32)}


def _npy_bytes(array) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_npz_reads_only_the_stem_members(tmp_path, monkeypatch):
    """A big_vision .npz whose encoder member alone is over the read limit imports: it is never read."""
    from vitstem.interop import from_big_vision, import_checkpoint

    monkeypatch.setattr(npy_file, "MAX_ARRAY_BYTES", 64 << 10)
    params = _big_vision()
    members = {f"{k}.npy": _npy_bytes(v) for k, v in params.items()}
    members["Transformer/encoderblock_0/MlpBlock_0/Dense_0/kernel.npy"] = _npy_bytes(np.zeros(1 << 20, np.float32))
    path = tmp_path / "bv.npz"
    _npz(path, members)
    spec, weights = import_checkpoint(path, "big_vision")
    ref_spec, ref_weights = from_big_vision(params, name="bv")
    assert spec.replace(name="bv") == ref_spec
    assert all(np.array_equal(weights[k], ref_weights[k]) for k in ref_weights)


@pytest.mark.parametrize("case", ["huge shape", "zip bomb", "declared size lies", "object array", "not npy",
                                  "garbled member"])
def test_hostile_npz_members_are_refused_naming_the_member(tmp_path, monkeypatch, case):
    from vitstem.interop import import_checkpoint

    monkeypatch.setattr(npy_file, "MAX_ARRAY_BYTES", 1 * MiB)
    members = {f"{k}.npy": _npy_bytes(v) for k, v in _big_vision().items()}
    path = tmp_path / "bv.npz"
    words = {"huge shape": "declares shape (1000000000000,)", "zip bomb": "declares 33554560 bytes uncompressed",
             "declared size lies": "member cls.npy", "object array": "Python objects",
             "not npy": "no valid NUMPY header", "garbled member": "member cls.npy"}[case]
    if case == "huge shape":
        members["cls.npy"] = _npy((10**12,), payload=b"\0" * 16)
    elif case == "zip bomb":  # 32 MiB of zeros deflate to ~32 KiB: refused from the declared size, unread
        members["cls.npy"] = _npy_bytes(np.zeros(8 << 20, np.float32))
    elif case == "object array":
        members["cls.npy"] = _npy((1,), "|O", b"\0" * 8)
    elif case == "not npy":
        members["cls.npy"] = b"PK\x03\x04" + b"\0" * 40
    _npz(path, members)
    if case in ("declared size lies", "garbled member"):
        data = bytearray(path.read_bytes())
        with zipfile.ZipFile(path) as z:
            info, central = z.getinfo("cls.npy"), z.start_dir
        while data[central + 46:central + 53] != b"cls.npy":  # walk the central directory to cls.npy's entry
            name, extra, comment = struct.unpack_from("<HHH", data, central + 28)
            central += 46 + name + extra + comment
        if case == "declared size lies":  # the .npy header says 8 floats; the zip now declares 4 bytes fewer
            for at in (info.header_offset + 22, central + 24):
                struct.pack_into("<I", data, at, info.file_size - 4)
        else:  # garble the compressed stream of the member (same length)
            start = info.header_offset + 30 + len("cls.npy")
            for at in range(start + 2, start + info.compress_size - 2):
                data[at] ^= 0x5A
        path.write_bytes(bytes(data))
    result, peak = _peak(lambda: import_checkpoint(path, "big_vision"))
    assert isinstance(result, vitstem.WeightsError), result
    assert words in str(result) and "\n" not in str(result), str(result)
    assert peak < 2 * MiB, peak


# -- one dtype rule on every engine ------------------------------------------------------------------
@pytest.mark.slow
@fuzz(8)
@given(key=st.sampled_from(sorted(SPECS)), order=st.sampled_from([">", "<"]),
       kind=st.sampled_from(["f2", "f4", "f8", "u1"]), seed=st.integers(0, 2**16))
def test_any_byte_order_gives_the_native_z0_bit_for_bit(runners, key, order, kind, seed):  # noqa: F811
    spec = SPECS[key]
    x = valid_batch(spec, np.random.default_rng(seed), 1)
    if kind == "u1" and spec.input.preprocess is None:
        kind = "f4"
    native = (np.round(x * 8) / 8).astype(np.dtype(kind)) if kind != "u1" else x.astype(np.uint8)
    swapped = native.astype(native.dtype.newbyteorder(order))
    assert np.array_equal(swapped, native)
    for engine in ENGINES:
        np.testing.assert_array_equal(runners[engine](key, swapped), runners[engine](key, native), err_msg=engine)


def test_long_doubles_convert_when_float64_holds_them_and_are_refused_otherwise(runners):  # noqa: F811
    spec = SPECS["nchw_dynamic"]
    x = valid_batch(spec, np.random.default_rng(3), 1).astype(np.float64)
    wide = x.astype(np.longdouble)
    for engine in ENGINES:
        np.testing.assert_array_equal(runners[engine]("nchw_dynamic", wide), runners[engine]("nchw_dynamic", x))
    if np.finfo(np.longdouble).nmant <= np.finfo(np.float64).nmant:
        return  # long double is float64 on this platform: nothing is lost, nothing to refuse
    finer = wide.copy()
    finer.flat[5] += np.finfo(np.longdouble).eps  # a value between two float64s
    huge = wide.copy()
    huge.flat[0] = np.longdouble(2) ** 1100  # beyond float64's range
    for bad, count in ((finer, 1), (huge, 1)):
        messages = set()
        for engine in ENGINES:
            with pytest.raises(vitstem.InputError) as info:
                runners[engine]("nchw_dynamic", bad)
            messages.add(str(info.value))
        assert messages == {f"images: dtype {np.dtype(np.longdouble)} (long double) with {count} values float64 cannot "
                            "hold exactly; vitstem computes in float32/float64: convert them to float64 first"}


@pytest.mark.parametrize("make, words", [
    (lambda x: np.ma.masked_array(x, mask=x > 1.5), "masked values, which would be read as their hidden data"),
    (lambda x: x.astype(np.clongdouble), "dtype complex"),
    (lambda x: x.astype(">c8"), "dtype complex64"),
    (lambda x: np.zeros(x.shape, [("r", ">f4"), ("g", "<f4")]), "dtype [('r', '>f4'), ('g', '<f4')]"),
    (lambda x: x.astype(object), "dtype object"),
    (lambda x: x.astype("datetime64[s]"), "dtype datetime64[s]"),
    (lambda x: x.astype(">i4"), "dtype int32"),
])
def test_dtypes_without_a_faithful_conversion_are_one_error_on_every_engine(runners, make, words):  # noqa: F811
    x = valid_batch(SPECS["nchw_dynamic"], np.random.default_rng(0), 1)
    messages = set()
    for engine in ENGINES:
        with pytest.raises(vitstem.InputError) as info:
            runners[engine]("nchw_dynamic", make(x))
        messages.add(str(info.value))
    assert len(messages) == 1 and words in messages.pop()


def test_a_masked_array_without_masked_values_is_its_data(runners):  # noqa: F811
    x = valid_batch(SPECS["nchw_dynamic"], np.random.default_rng(0), 1)
    for engine in ENGINES:
        np.testing.assert_array_equal(runners[engine]("nchw_dynamic", np.ma.masked_array(x, mask=False)),
                                      runners[engine]("nchw_dynamic", x))


def test_weights_follow_the_same_rule():
    from vitstem.spec import check_weights

    weights = vitstem.init_weights(SPEC, seed=1)
    x = valid_batch(SPEC, np.random.default_rng(0), 1)
    swapped = {k: v.astype(">f4") for k, v in weights.items()}
    for backend in ("numpy", "torch", "tensorflow"):
        np.testing.assert_array_equal(vitstem.forward(SPEC, swapped, x, backend=backend),
                                      vitstem.forward(SPEC, weights, x, backend=backend))
    assert all(v.dtype.isnative for v in check_weights(swapped, SPEC).values())
    bad = dict(weights, cls_token=np.ma.masked_array(weights["cls_token"], mask=True),
               dist_token=weights["dist_token"].astype(np.longdouble))
    with pytest.raises(vitstem.WeightsError) as info:
        check_weights(bad, SPEC)
    assert str(info.value) == ("weight 'cls_token': a masked array with 8 masked values, which would be read as their "
                               "hidden data; fill them first (x.filled(value)); weight 'dist_token' has dtype "
                               f"{np.dtype(np.longdouble)}, expected float32")


# -- z0 finiteness: every engine refuses an overflow of finite inputs ----------------------------------
@pytest.mark.parametrize("profile", ["fast", "exact"])
@pytest.mark.parametrize("backend", ["numpy", "torch", "tensorflow"])
def test_finite_inputs_whose_z0_overflows_are_refused(backend, profile):
    """Kernel 1e30 x pixels 1e9 over 48 values: ~5e40 per patch row, beyond float32 (also after exact's
    float64 compute, at its final rounding)."""
    weights = vitstem.init_weights(SPEC)
    weights["patch_embed.weight"] = np.full_like(weights["patch_embed.weight"], 1e30)
    x = np.full(SPEC.input_shape(1), 1e9, np.float32)
    with pytest.raises(vitstem.InputError, match=r"z0 has \d+ non-finite values although the images are finite: "
                                                 "they overflow float32 inside the stem"):
        vitstem.forward(SPEC, weights, x, backend=backend, profile=profile)
    z = vitstem.forward(SPEC, weights, x / 1e9, backend=backend, profile=profile)  # finite: returned as it is
    assert np.isfinite(z).all() and np.abs(z).max() > 1e30


@fuzz(25)
@given(scale=st.floats(1e-3, 1e38), pixel=st.floats(-1e30, 1e30), backend=st.sampled_from(["numpy", "torch"]))
def test_forward_never_returns_a_non_finite_z0(scale, pixel, backend):
    weights = vitstem.init_weights(SPEC)
    weights["patch_embed.weight"] = (weights["patch_embed.weight"] * np.float32(scale)).astype(np.float32)
    if not np.isfinite(weights["patch_embed.weight"]).all():
        return
    x = np.full(SPEC.input_shape(1), pixel, np.float32)
    try:
        z = vitstem.forward(SPEC, weights, x, backend=backend)
    except vitstem.InputError as exc:
        assert "although the images are finite" in str(exc)
    else:
        assert np.isfinite(z).all()


# -- sizes: refused from the shape, before allocating ----------------------------------------------
@pytest.mark.parametrize("shape", [(10**6, 3, 12, 16), (1, 3, 65536, 65536), (2**40, 3, 12, 16)])
def test_absurd_batches_are_refused_from_the_shape_on_every_engine(runners, shape):  # noqa: F811
    x = np.broadcast_to(np.zeros((), np.float32), shape)  # no memory behind it
    messages = set()
    for engine in ENGINES:
        result, peak = _peak(lambda: runners[engine]("nchw_dynamic", x))
        assert isinstance(result, vitstem.InputError) and peak < MiB, (engine, result, peak)
        messages.add(str(result))
    assert len(messages) == 1 and f"may hold at most {inputs.MAX_ELEMENTS} values" in messages.pop()


@fuzz(20)
@given(per_call=st.integers(200, 5000), batch=st.integers(1, 12))
def test_the_limit_is_exact(per_call, batch):
    """With the limit lowered, a batch passes exactly when its input and its z0 fit, and the message
    says how many images fit."""
    per_image = max(3 * 12 * 16, SPEC.num_tokens((12, 16)) * SPEC.embed_dim)
    x = np.zeros((batch, 3, 12, 16), np.float32)
    weights = vitstem.init_weights(SPEC)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(inputs, "MAX_ELEMENTS", per_call)
        if batch * per_image <= per_call:
            assert vitstem.forward(SPEC, weights, x).shape == (batch, SPEC.num_tokens(), SPEC.embed_dim)
            return
        fits = per_call // per_image
        with pytest.raises(vitstem.InputError, match=f"pass at most {fits} images" if fits else "one image of this size"):
            vitstem.forward(SPEC, weights, x)


@pytest.mark.parametrize("kwargs, words", [
    ({"backend": "jax"}, "backend must be one of numpy, torch, tensorflow, got 'jax'"),
    ({"backend": None}, "backend must be one of"), ({"backend": ["numpy"]}, "backend must be one of"),
    ({"profile": "slow"}, "profile must be one of fast, exact, got 'slow'"), ({"profile": 1}, "profile must be"),
])
def test_unknown_backend_or_profile_is_an_input_error(kwargs, words):
    with pytest.raises(vitstem.InputError, match=words.replace("[", r"\[")):
        vitstem.forward(SPEC, vitstem.init_weights(SPEC), np.zeros(SPEC.input_shape(1), np.float32), **kwargs)


@pytest.mark.parametrize("kwargs", [{"engines": ["jax"]}, {"engines": [["numpy"]]}, {"profiles": ["slow"]},
                                    {"precisions": ["int4"]}])
def test_conform_api_refuses_unknown_names_as_input_errors(kwargs):
    from vitstem.conformance.runner import run

    with pytest.raises(vitstem.InputError, match="unknown"):
        run(SPEC, **kwargs)


def test_a_file_naming_thousands_of_tensors_gives_a_short_line(tmp_path):
    """20 problems are listed, the rest counted; the unexpected tensors are named from the header, unread."""
    header = {f"t{i}": {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]} for i in range(5000)}
    path = tmp_path / "w.safetensors"
    path.write_bytes(_header_file(header, b"\0" * 4 * 5000))
    with pytest.raises(vitstem.WeightsError) as info:
        vitstem.load_weights(path, SPEC)
    problems = str(info.value).split("; ")
    missing = len(vitstem.weight_shapes(SPEC))
    assert len(problems) == 21 and problems[-1] == f"and {missing + 5000 - 20} more problems"
    assert problems[missing] == "unexpected weight 't0' (the spec does not use it)"
