"""Raw-count pseudobulks of the VCC 2026 suite: group sums, the ``bulk_lognorm`` profile and its jackknife.

Definitions from cell-eval2 0.20.0 (``prep.bulk_lognorm_means``, ``moments.jackknife_correction``;
specification ``docs/vcc2026_metrics/`` §1–2):

- profile of a group p: ``b_p,g = log1p(TS · P_p,g / Σ_g' P_p,g')`` with ``P_p,g`` the summed counts and
  ``TS = 5e4`` (an all-zero group gives zeros);
- delete-one jackknife of that profile: ``C_p = (n−1)/n · Σ_g Σ_i (v_ig − v̄_g)²`` with
  ``v_ig = log1p(TS · (P_p,g − y_ig) / (S_p − ℓ_i))`` (a cell holding every count gives v = 0), 0 for n < 2,
  clamped at 0. Deviations are taken from ``b_p`` before squaring (exact, and it keeps the digits).

Counts are integers, so every group sum is exact in float64 whatever the summation order.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

BULK_TARGET_SUM = 5e4
JACKKNIFE_CHUNK = 256


def group_sums(X, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Summed counts per group, float64 (groups × genes); a sparse X is read in place by a numba kernel."""
    if sp.issparse(X):
        from vcclib.metrics._mwu_kernel import group_sums_csr_into
        from vcclib.metrics.pseudobulk import as_float_matrix, group_order

        X = as_float_matrix(X)
        order, starts = group_order(codes, n_groups)
        out = np.zeros((n_groups, X.shape[1]))
        native = np.zeros((n_groups, X.shape[1]), dtype=X.dtype)  # unused: the kernel also fills X's dtype
        ones = np.ones(n_groups)
        group_sums_csr_into(X.indptr, X.indices, X.data, order, starts, ones, ones.astype(X.dtype), out, native)
        return out
    M = sp.csr_matrix((np.ones(codes.size), (codes, np.arange(codes.size))), shape=(n_groups, codes.size))
    return np.asarray(M @ np.asarray(X, dtype=np.float64), dtype=np.float64)


def bulk_lognorm(sums: np.ndarray, target_sum: float = BULK_TARGET_SUM) -> np.ndarray:
    """``log1p(target_sum · P / Σ_g P)`` per row of summed counts (zeros for an all-zero row)."""
    sums = np.asarray(sums, dtype=np.float64)
    totals = sums.sum(axis=1)
    scale = np.zeros_like(totals)
    ok = totals > 0
    scale[ok] = target_sum / totals[ok]
    return np.log1p(sums * scale[:, None])


def jackknife(X, rows: np.ndarray, target_sum: float = BULK_TARGET_SUM, chunk: int = JACKKNIFE_CHUNK) -> float:
    """Delete-one jackknife ``C_p`` of the ``bulk_lognorm`` profile of the cells ``rows`` of X.

    A sparse X goes through :func:`jackknife_sparse` (the same arithmetic, without densifying); a dense one is
    processed ``chunk`` cells at a time.
    """
    n = rows.size
    if n < 2:
        return 0.0
    if sp.issparse(X):
        return jackknife_sparse(X, rows, target_sum, chunk)
    sub = np.asarray(X[rows], dtype=np.float64)
    P = sub.sum(axis=0)
    lib = sub.sum(axis=1)
    total = float(P.sum())
    if total <= 0.0:
        return 0.0
    b = np.log1p(target_sum * P / total)
    s1 = np.zeros(P.size)
    s2 = np.zeros(P.size)
    for lo in range(0, n, chunk):
        Y = sub[lo : lo + chunk]
        r = total - lib[lo : lo + chunk]
        ok = r > 0
        V = np.log1p(target_sum * (P[None, :] - Y) / np.where(ok, r, 1.0)[:, None])
        V[~ok] = 0.0
        V -= b[None, :]
        s1 += V.sum(axis=0)
        s2 += np.einsum("ij,ij->j", V, V)
    return _finish(s1, s2, n)


def _finish(s1: np.ndarray, s2: np.ndarray, n: int) -> float:
    q = s2 - s1**2 / n
    return max(((n - 1) / n) * float(q.sum()), 0.0)


def jackknife_sparse(X, rows: np.ndarray, target_sum: float = BULK_TARGET_SUM, chunk: int = JACKKNIFE_CHUNK,
                     lib: np.ndarray | None = None) -> float:
    """:func:`jackknife` of a sparse X read in place (numba; ``lib``: every cell's library size, optional).

    Every (cell, gene) term is still evaluated, as the definition requires (a zero count gives
    ``log1p(TS · P_g / (S − ℓ_i))``, which depends on the cell), but in one pass without a dense copy.
    """
    import numba

    from vcclib.metrics import _counts_kernel as kernel
    from vcclib.metrics.pseudobulk import as_float_matrix

    X = as_float_matrix(X)
    rows = np.asarray(rows, dtype=np.int64)
    n = rows.size
    if n < 2:
        return 0.0
    bounds = kernel.stripes(X.shape[1], 4 * numba.get_num_threads())
    P = kernel.column_sums(X.indptr, X.indices, X.data, rows, X.shape[1], bounds)
    lib_rows = (kernel.row_sums(X.indptr, X.data) if lib is None else lib)[rows]
    total = float(P.sum())
    if total <= 0.0:
        return 0.0
    b = np.log1p(target_sum * P / total)
    s1, s2 = kernel.jackknife_moments(X.indptr, X.indices, X.data, rows, lib_rows, P, total, b, float(target_sum),
                                      int(chunk), bounds)
    return _finish(s1, s2, n)


def jackknife_groups(X, order: np.ndarray, starts: np.ndarray, groups=None,
                     target_sum: float = BULK_TARGET_SUM) -> np.ndarray:
    """``C_p`` of every group (or of ``groups``, indices), from the group order of :func:`group_order`."""
    n_groups = starts.size - 1
    out = np.zeros(n_groups)
    lib = None
    if sp.issparse(X):
        from vcclib.metrics import _counts_kernel as kernel
        from vcclib.metrics.pseudobulk import as_float_matrix

        X = as_float_matrix(X)
        lib = kernel.row_sums(X.indptr, X.data)
    for g in range(n_groups) if groups is None else groups:
        rows = np.sort(order[starts[g] : starts[g + 1]])
        out[g] = jackknife_sparse(X, rows, target_sum, lib=lib) if lib is not None else jackknife(X, rows, target_sum)
    return out
