"""The exact profile's rule beyond float64: every sum runs in one fixed order.

Two float64 reductions that add in different orders (BLAS blocking, Eigen, ONNX Runtime) differ in
the last bits, and about once in 300 000 elements that moves a value across a float32 rounding
midpoint. Summing left to right in index order, one IEEE addition at a time, gives the same float64
bits in NumPy, PyTorch, TensorFlow and ONNX Runtime, hence the same float32 z0 after one rounding.
"""

from __future__ import annotations

import functools
import operator

import numpy as np


def sum_in_order(terms):
    """((t_0 + t_1) + t_2) + ... for any array type with `+` (numpy, torch, tf)."""
    terms = iter(terms)
    first = next(terms)
    if isinstance(first, np.ndarray):  # same additions, in place: no new array per step
        total = np.array(first, copy=True)
        for term in terms:
            total += term
        return total
    return functools.reduce(operator.add, terms, first)
