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
    """Summed counts per group, float64 (groups × genes)."""
    M = sp.csr_matrix((np.ones(codes.size), (codes, np.arange(codes.size))), shape=(n_groups, codes.size))
    out = M @ (X.astype(np.float64) if sp.issparse(X) else np.asarray(X, dtype=np.float64))
    return np.asarray(out.toarray() if sp.issparse(out) else out, dtype=np.float64)


def bulk_lognorm(sums: np.ndarray, target_sum: float = BULK_TARGET_SUM) -> np.ndarray:
    """``log1p(target_sum · P / Σ_g P)`` per row of summed counts (zeros for an all-zero row)."""
    sums = np.asarray(sums, dtype=np.float64)
    totals = sums.sum(axis=1)
    scale = np.zeros_like(totals)
    ok = totals > 0
    scale[ok] = target_sum / totals[ok]
    return np.log1p(sums * scale[:, None])


def jackknife(X, rows: np.ndarray, target_sum: float = BULK_TARGET_SUM, chunk: int = JACKKNIFE_CHUNK) -> float:
    """Delete-one jackknife ``C_p`` of the ``bulk_lognorm`` profile of the cells ``rows`` of X."""
    n = rows.size
    if n < 2:
        return 0.0
    sub = X[rows]
    sub = sub.astype(np.float64) if sp.issparse(sub) else np.asarray(sub, dtype=np.float64)
    P = np.asarray(sub.sum(axis=0), dtype=np.float64).ravel()
    lib = np.asarray(sub.sum(axis=1), dtype=np.float64).ravel()
    total = float(P.sum())
    if total <= 0.0:
        return 0.0
    b = np.log1p(target_sum * P / total)
    s1 = np.zeros(P.size)
    s2 = np.zeros(P.size)
    for lo in range(0, n, chunk):
        block = sub[lo : lo + chunk]
        Y = block.toarray() if sp.issparse(block) else block
        r = total - lib[lo : lo + chunk]
        ok = r > 0
        V = np.log1p(target_sum * (P[None, :] - Y) / np.where(ok, r, 1.0)[:, None])
        V[~ok] = 0.0
        V -= b[None, :]
        s1 += V.sum(axis=0)
        s2 += np.einsum("ij,ij->j", V, V)
    q = s2 - s1**2 / n
    return max(((n - 1) / n) * float(q.sum()), 0.0)


def jackknife_groups(X, order: np.ndarray, starts: np.ndarray, groups=None,
                     target_sum: float = BULK_TARGET_SUM) -> np.ndarray:
    """``C_p`` of every group (or of ``groups``, indices), from the group order of :func:`group_order`."""
    n_groups = starts.size - 1
    out = np.zeros(n_groups)
    for g in range(n_groups) if groups is None else groups:
        out[g] = jackknife(X, np.sort(order[starts[g] : starts[g + 1]]), target_sum)
    return out
