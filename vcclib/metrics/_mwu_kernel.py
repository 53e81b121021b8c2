"""Numba kernel: Mann–Whitney U rank sums of every group against one reference group, per gene.

Imported lazily (numba compiles on first use). Works on a CSC matrix whose rows are sorted by group, so each
group's stored values in a column form one contiguous run; zeros are never materialised: they are one tie
group per (group, gene) handled analytically. Control values of a gene are sorted once and reused for every
group (binary search), which is what makes the test cheap for thousands of perturbations.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def _tie(t):
    return t * t * t - t


@nb.njit(parallel=True, cache=True)
def mwu_rank_stats(indptr, indices, data, starts, ref):  # pragma: no cover - compiled
    """U statistic of each group (as sample x) and the tie term Σ(t³ − t) of the combined sample.

    Parameters
    ----------
    indptr, indices, data
        CSC arrays (sorted indices, no explicit zeros) of a (cells × genes) matrix with cells sorted by group.
    starts
        Row offsets of the groups (length n_groups + 1).
    ref
        Index of the reference group.

    Returns
    -------
    U, tie : (n_groups, n_genes) float64 arrays; the reference row is 0.

    Notes
    -----
    Per gene, the stored values are sorted once and given dense value ids; the control's count per id and its
    running total give, for every value x of any group, #control < x and #control == x in O(1). Zeros (one tie
    group) are accounted for analytically.
    """
    n_genes = indptr.size - 1
    n_groups = starts.size - 1
    U = np.zeros((n_groups, n_genes))
    T = np.zeros((n_groups, n_genes))
    n_c = starts[ref + 1] - starts[ref]
    for j in nb.prange(n_genes):
        lo = indptr[j]
        nnz = indptr[j + 1] - lo
        vals = data[lo : lo + nnz]
        rows = indices[lo : lo + nnz]
        # group boundaries among the stored entries (rows are sorted)
        bnd = np.empty(n_groups + 1, dtype=np.int64)
        p = 0
        for g in range(n_groups + 1):
            while p < nnz and rows[p] < starts[g]:
                p += 1
            bnd[g] = p
        # dense value ids
        order = np.argsort(vals)
        keys = np.empty(nnz, dtype=np.int64)
        is_pos = np.empty(nnz + 1, dtype=np.bool_)
        n_keys = 0
        for i in range(nnz):
            idx = order[i]
            if i == 0 or vals[idx] != vals[order[i - 1]]:
                is_pos[n_keys] = vals[idx] > 0
                n_keys += 1
            keys[idx] = n_keys - 1
        cnt_c = np.zeros(n_keys, dtype=np.int64)
        for i in range(bnd[ref], bnd[ref + 1]):
            cnt_c[keys[i]] += 1
        z_c = n_c - (bnd[ref + 1] - bnd[ref])
        less = np.empty(n_keys)  # #control strictly below each value id (zeros included)
        running = 0
        neg_c = 0
        tie_c = _tie(float(z_c))
        for k in range(n_keys):
            if not is_pos[k]:
                neg_c += cnt_c[k]
            less[k] = running + (z_c if is_pos[k] else 0)
            running += cnt_c[k]
            tie_c += _tie(float(cnt_c[k]))
        cnt_g = np.zeros(n_keys, dtype=np.int64)
        seen = np.empty(nnz, dtype=np.int64)
        for g in range(n_groups):
            if g == ref:
                continue
            n_p = starts[g + 1] - starts[g]
            z_p = n_p - (bnd[g + 1] - bnd[g])
            u = z_p * (neg_c + 0.5 * z_c)
            tie = tie_c - _tie(float(z_c)) + _tie(float(z_c + z_p))
            n_seen = 0
            for i in range(bnd[g], bnd[g + 1]):
                k = keys[i]
                u += less[k] + 0.5 * cnt_c[k]
                if cnt_g[k] == 0:
                    seen[n_seen] = k
                    n_seen += 1
                cnt_g[k] += 1
            for s in range(n_seen):
                k = seen[s]
                tie += _tie(float(cnt_g[k] + cnt_c[k])) - _tie(float(cnt_c[k]))
                cnt_g[k] = 0
            U[g, j] = u
            T[g, j] = tie
    return U, T
