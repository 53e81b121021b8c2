"""Numba kernels of the raw-count (``vcc2026``) pseudobulks: CPM scaling, group sums and the jackknife moments.

Imported lazily (``cache=True`` keeps the machine code between processes). Each kernel reads a canonical CSR
matrix in place and repeats the arithmetic of the numpy/scipy expression it replaces, in the same order, so the
results are those of :mod:`vcclib.metrics.counts` and :mod:`vcclib.metrics.vcc2026_de` on the dense or
copied arrays they used before (float64 throughout; counts are integers, so every sum is exact anyway).
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


@nb.njit(parallel=True, cache=True)
def column_sums(indptr, indices, data, rows, n_genes, bounds):  # pragma: no cover - compiled
    """float64 column sums over ``rows`` (ascending) of a canonical CSR matrix (``X[rows].sum(axis=0)``),
    gene stripes ``bounds`` in parallel."""
    out = np.zeros(n_genes)
    for part in nb.prange(bounds.size - 1):
        lo = bounds[part]
        hi = bounds[part + 1]
        for q in range(rows.size):
            r = rows[q]
            a = indptr[r]
            b = indptr[r + 1]
            p = a + np.searchsorted(indices[a:b], lo)
            while p < b and indices[p] < hi:
                out[indices[p]] += np.float64(data[p])
                p += 1
    return out


@nb.njit(parallel=True, cache=True)
def jackknife_moments(indptr, indices, data, rows, lib, P, total, b, target_sum, chunk,
                      bounds):  # pragma: no cover - compiled
    """Σ_i v_ig and Σ_i v_ig² per gene of the delete-one profiles ``v_ig = log1p(TS·(P_g − y_ig)/(S − ℓ_i)) − b_g``.

    ``rows`` are the group's cells (ascending), ``lib`` their library sizes, ``P`` the group's column sums and
    ``total`` their sum S, ``b`` the group's profile. A cell holding every count (S − ℓ_i ≤ 0) gives v = −b_g.
    Zeros are never stored: each cell walks the gene axis with a cursor into its stored values. Sums are
    accumulated per block of ``chunk`` cells and the blocks then added, as the dense version summed blocks of
    rows (``V.sum(axis=0)``, ``einsum('ij,ij->j')``). Gene stripes ``bounds`` run in parallel.
    """
    n_genes = P.size
    s1 = np.zeros(n_genes)
    s2 = np.zeros(n_genes)
    for part in nb.prange(bounds.size - 1):
        lo = bounds[part]
        hi = bounds[part + 1]
        c1 = np.zeros(hi - lo)
        c2 = np.zeros(hi - lo)
        for q in range(rows.size):
            r = rows[q]
            rem = total - lib[q]
            a = indptr[r]
            end = indptr[r + 1]
            p = a + np.searchsorted(indices[a:end], lo)
            for g in range(lo, hi):
                y = 0.0
                if p < end and indices[p] == g:
                    y = np.float64(data[p])
                    p += 1
                if rem > 0:
                    v = np.log1p(target_sum * (P[g] - y) / rem) - b[g]
                else:
                    v = 0.0 - b[g]
                c1[g - lo] += v
                c2[g - lo] += v * v
            if (q + 1) % chunk == 0 or q == rows.size - 1:
                for g in range(lo, hi):
                    s1[g] += c1[g - lo]
                    s2[g] += c2[g - lo]
                    c1[g - lo] = 0.0
                    c2[g - lo] = 0.0
    return s1, s2


def stripes(n_genes: int, n_parts: int) -> np.ndarray:
    """Boundaries of ``n_parts`` equal gene stripes."""
    return np.unique(np.linspace(0, n_genes, max(1, n_parts) + 1).astype(np.int64))
