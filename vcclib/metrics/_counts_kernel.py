"""Numba kernels of the raw-count (``vcc2026``) DE: per-cell library sizes and CPM scaling of a CSR matrix.

Imported lazily (``cache=True`` keeps the machine code between processes). Each kernel reads the CSR arrays in
place and repeats the arithmetic of the numpy/scipy expression it replaces, in the same order, so the results
are bit-identical to those expressions on a float64 copy (which is no longer made).
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(parallel=True, cache=True)
def scaled_rows(indptr, data, factor):  # pragma: no cover - compiled
    """float64 ``data / factor[row]`` of a CSR matrix (``x / (ℓ/1e6)`` of scanpy's ``normalize_total``)."""
    out = np.empty(data.size)
    for r in nb.prange(indptr.size - 1):
        f = factor[r]
        for p in range(indptr[r], indptr[r + 1]):
            out[p] = np.float64(data[p]) / f
    return out


@nb.njit(parallel=True, cache=True)
def row_sums(indptr, data):  # pragma: no cover - compiled
    """float64 sum of each row of a CSR matrix, stored values in order (``X.astype(float64).sum(axis=1)``)."""
    out = np.zeros(indptr.size - 1)
    for r in nb.prange(indptr.size - 1):
        s = 0.0
        for p in range(indptr[r], indptr[r + 1]):
            s += np.float64(data[p])
        out[r] = s
    return out
