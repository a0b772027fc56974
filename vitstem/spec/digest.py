"""A content digest of canonical weights, shared by the exporter, the edge runtime and conformance.

It hashes what defines the weights and nothing else: each tensor's name, dtype, shape and
little-endian bytes, in name order (so dict order does not matter). numpy and hashlib only.
"""

from __future__ import annotations

import hashlib
import json
from typing import Mapping

import numpy as np


def weights_digest(weights: Mapping[str, np.ndarray]) -> str:
    """'sha256:<hex>' over (name, dtype, shape, bytes) of every tensor, sorted by name."""
    h = hashlib.sha256()
    for name in sorted(weights):
        array = np.ascontiguousarray(weights[name])
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)
        header = json.dumps([name, array.dtype.str, list(array.shape)], separators=(",", ":")).encode()
        h.update(len(header).to_bytes(8, "little") + header)
        h.update(array.nbytes.to_bytes(8, "little"))
        h.update(array.tobytes())
    return "sha256:" + h.hexdigest()
