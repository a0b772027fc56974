"""The checks of a safetensors header, before any tensor byte is read: every tensor's dtype, shape and
byte range against the data section's size, and that the ranges tile it in order, with no gap or
overlap (safetensors' own rules).

A header may name hundreds of thousands of tensors: the checks run a column at a time (C loops over
the whole header); only when one fails do they run again tensor by tensor, to name the first that fails.
"""

from __future__ import annotations

import math
from itertools import chain
from operator import itemgetter, mul, sub

import numpy as np

# safetensors dtype -> the NumPy dtype holding it; the others (BF16, F8_*, ...) NumPy cannot hold.
NUMPY_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "U64": "<u8", "I32": "<i4", "U32": "<u4",
                "I16": "<i2", "U16": "<u2", "I8": "i1", "U8": "u1", "BOOL": "?", "C64": "<c8"}
OTHER_DTYPES = {"BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "F4": 1, "F6_E2M3": 1, "F6_E3M2": 1, "C128": 16}
ITEMSIZES = {**{name: np.dtype(dtype).itemsize for name, dtype in NUMPY_DTYPES.items()}, **OTHER_DTYPES}
_KEYS = frozenset(("dtype", "shape", "data_offsets"))


class NotSafetensors(ValueError):
    """The bytes are not a safetensors file (the reason is the message)."""


def _non_negative_int(value) -> bool:
    return type(value) is int and value >= 0  # JSON gives int or bool; bool is not a size


def _bad_int(values, what: str) -> NotSafetensors:
    value = next(v for v in values if not _non_negative_int(v))
    return NotSafetensors(f"{what} is {value!r}, not a non-negative integer")


def entries(header, data_size: int) -> tuple[dict[str, tuple[str, tuple[int, ...]]], dict[str, int]]:
    """(name -> (safetensors dtype, shape), name -> offset in the data section) of a parsed header,
    checked against `data_size`; NotSafetensors naming the first tensor that fails."""
    if not isinstance(header, dict):
        raise NotSafetensors(f"the header is a JSON {type(header).__name__}, not an object")
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise NotSafetensors("__metadata__ must map names to strings")
    names = [name for name in header if name != "__metadata__"]
    infos = [header[name] for name in names]
    return _by_columns(names, infos, data_size) or _one_by_one(names, infos, data_size)


_FIELDS = itemgetter("dtype", "shape", "data_offsets")


def _by_columns(names: list[str], infos: list, data_size: int) -> tuple[dict, dict] | None:
    """`entries` of a header that passes every check of `_one_by_one`, computed a column at a time; None
    when any check fails (or there are no tensors)."""
    if not infos or set(map(type, infos)) != {dict}:
        return None
    try:
        dtypes, shapes, offsets = zip(*map(_FIELDS, infos))
    except KeyError:
        return None
    if set(map(type, dtypes)) != {str} or set(map(type, shapes)) != {list} or set(map(type, offsets)) != {list}:
        return None
    itemsizes = list(map(ITEMSIZES.get, dtypes))
    dims, bounds = list(chain.from_iterable(shapes)), list(chain.from_iterable(offsets))
    if None in itemsizes or set(map(len, offsets)) != {2} or set(map(type, bounds)) != {int} or min(bounds) < 0 \
            or (dims and (set(map(type, dims)) != {int} or min(dims) < 0)):
        return None
    begins, ends = bounds[0::2], bounds[1::2]
    nbytes = list(map(mul, map(math.prod, shapes), itemsizes))
    if max(nbytes) > data_size or list(map(sub, ends, begins)) != nbytes:
        return None
    if 0 in nbytes and any(math.prod(max(s, 1) for s in shape) * size >= 2**63
                           for shape, size, n in zip(shapes, itemsizes, nbytes) if n == 0):
        return None
    spans = sorted(zip(begins, ends, names))
    if [span[0] for span in spans] != [0, *(span[1] for span in spans[:-1])] or spans[-1][1] != data_size:
        return None
    return dict(zip(names, zip(dtypes, map(tuple, shapes)))), dict(zip(names, begins))


def _one_by_one(names: list[str], infos: list, data_size: int) -> tuple[dict, dict]:
    """`entries`' checks tensor by tensor: the first that fails is named."""
    declared, begins, ends = {}, {}, []
    for name, info in zip(names, infos):
        if type(info) is not dict or not info.keys() >= _KEYS:
            raise NotSafetensors(f"tensor {name!r}: an entry needs exactly dtype, shape and data_offsets")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if type(shape) is not list or type(offsets) is not list or len(offsets) != 2:
            raise NotSafetensors(f"tensor {name!r}: shape must be a list and data_offsets [begin, end]")
        for s in shape:
            if type(s) is not int or s < 0:
                raise _bad_int(shape, f"tensor {name!r}: a dimension")
        begin, end = offsets
        if not (_non_negative_int(begin) and _non_negative_int(end)):
            raise _bad_int(offsets, f"tensor {name!r}: an offset")
        itemsize = ITEMSIZES.get(dtype) if type(dtype) is str else None
        if itemsize is None:
            raise NotSafetensors(f"tensor {name!r}: unknown dtype {dtype!r}")
        nbytes = math.prod(shape) * itemsize
        if nbytes > data_size:  # also every absurd declared shape: checked before any allocation
            raise NotSafetensors(f"tensor {name!r}: shape {shape} of {dtype} needs {nbytes} bytes; "
                                 f"the file holds {data_size} (overflow, or a truncated file)")
        if nbytes == 0 and math.prod(max(s, 1) for s in shape) * itemsize >= 2**63:
            raise NotSafetensors(f"tensor {name!r}: shape {shape} is not a shape an array can have")  # NumPy's limit
        if end - begin != nbytes:
            raise NotSafetensors(f"tensor {name!r}: data_offsets {[begin, end]} do not hold shape {shape} of {dtype}")
        declared[name] = (dtype, tuple(shape))
        begins[name] = begin
        ends.append(end)
    position = 0
    for begin, end, name in sorted(zip(begins.values(), ends, begins)):
        if begin != position:
            raise NotSafetensors(f"tensor {name!r} starts at byte {begin}, not {position}: a gap or an overlap")
        position = end
    if position != data_size:
        raise NotSafetensors(f"the tensors hold {position} bytes, the data section {data_size} (truncated or padded)")
    return declared, begins


