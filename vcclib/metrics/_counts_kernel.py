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
def scaled_group_means(indptr, indices, data, factor, order, starts, n_genes):  # pragma: no cover - compiled
    """float64 mean per group of ``data / factor[row]`` (the CPM matrix's group means, without the matrix):
    ``Σ_cells (1/n_g) · (x / f)`` in cell order, the arithmetic of ``group_means`` of :func:`scaled_rows`."""
    n_groups = starts.size - 1
    out = np.zeros((n_groups, n_genes))
    for g in nb.prange(n_groups):
        n = starts[g + 1] - starts[g]
        if n == 0:
            continue
        w = 1.0 / n
        for q in range(starts[g], starts[g + 1]):
            r = order[q]
            f = factor[r]
            for p in range(indptr[r], indptr[r + 1]):
                out[g, indices[p]] += w * (np.float64(data[p]) / f)
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
def jackknife_sums_csr(
    indptr, indices, data, order, starts, groups, n_genes, target_sum, max_argument, alpha, beta
):  # pragma: no cover - compiled
    """Per-gene sums Σ_i v_ig and Σ_i v_ig² of the delete-one jackknife of each group in ``groups``.

    The arithmetic of :func:`vcclib.metrics.counts.jackknife_sparse` (see there), run for every group at once
    in parallel over groups, reading the CSR arrays in place (no row subset is copied). Group g's cells are
    ``order[starts[g] : starts[g + 1]]`` (ascending). ``alpha``, ``beta``: the log1p series coefficients.

    Returns
    -------
    s1, s2 : (len(groups), n_genes) float64; a row is all zero for a group of < 2 cells or without counts.
    n_cells : (len(groups),) int64, each group's cell count.
    """
    n_out = groups.size
    n_terms = alpha.size
    S1 = np.zeros((n_out, n_genes))
    S2 = np.zeros((n_out, n_genes))
    n_cells = np.zeros(n_out, dtype=np.int64)
    for k in nb.prange(n_out):
        g = groups[k]
        lo = starts[g]
        n = starts[g + 1] - lo
        n_cells[k] = n
        if n < 2:
            continue
        P = np.zeros(n_genes)
        lib = np.zeros(n)
        for q in range(n):
            r = order[lo + q]
            s = 0.0
            for p in range(indptr[r], indptr[r + 1]):
                y = np.float64(data[p])
                s += y
                P[indices[p]] += y
            lib[q] = s
        total = 0.0
        for j in range(n_genes):
            total += P[j]
        if total <= 0.0:
            continue
        b = np.empty(n_genes)
        c = np.empty(n_genes)
        c_max = -np.inf
        for j in range(n_genes):
            x = target_sum * P[j] / total
            b[j] = np.log1p(x)
            c[j] = x / (1.0 + x)
            c_max = max(c_max, c[j])
        rem = np.empty(n)
        delta = np.empty(n)
        series = np.zeros(n, dtype=np.bool_)
        moments = np.zeros(n_terms)
        for q in range(n):
            rem[q] = total - lib[q]
            if rem[q] > 0:
                delta[q] = lib[q] / rem[q]
                series[q] = c_max * delta[q] <= max_argument
            else:
                delta[q] = np.inf
            if series[q]:
                for t in range(n_terms):
                    moments[t] += delta[q] ** np.float64(t + 1)
        s1 = S1[k]
        s2 = S2[k]
        for j in range(n_genes):  # Horner: Σ_t coef_t c^t, t from 1
            o1 = 0.0
            o2 = 0.0
            for t in range(n_terms - 1, -1, -1):
                o1 = (o1 + alpha[t] * moments[t]) * c[j]
                o2 = (o2 + beta[t] * moments[t]) * c[j]
            s1[j] = o1
            s2[j] = o2
        a1 = np.zeros(n_genes)
        a2 = np.zeros(n_genes)
        for q in range(n):  # each stored count of a series cell replaces its zero-count term
            if not series[q]:
                continue
            r = order[lo + q]
            dq = delta[q]
            # terms K of the zero-count deviation's series: relative truncation z^K/(K+1) ≤ 2^-54, z ≤ c_max·δ_q
            z_max = c_max * dq
            n_d = 1
            bound = 0.5 * z_max
            while n_d < n_terms and bound > 2.0**-54:
                bound *= z_max * (n_d + 1) / (n_d + 2)
                n_d += 1
            rem_q = rem[q]
            for p in range(indptr[r], indptr[r + 1]):
                y = np.float64(data[p])
                if y != 0.0:
                    j = indices[p]
                    # v − d = log1p(TS(P−y)/rem) − log1p(TS·P/rem) = log1p(−TS·y/(rem + TS·P)): one logarithm
                    w = np.log1p(-target_sum * y / (rem_q + target_sum * P[j]))
                    z = c[j] * dq  # d = log1p(z), z ≤ max_argument: its series, Horner
                    d = 0.0
                    for t in range(n_d - 1, -1, -1):
                        d = (d + alpha[t]) * z
                    a1[j] += w
                    a2[j] += w * (w + 2.0 * d)  # v² − d² with v = w + d
        for j in range(n_genes):
            s1[j] += a1[j]
            s2[j] += a2[j]
        y_row = np.zeros(n_genes)
        for q in range(n):  # the remaining cells, gene by gene
            if series[q]:
                continue
            r = order[lo + q]
            if rem[q] > 0:
                for p in range(indptr[r], indptr[r + 1]):
                    y_row[indices[p]] = np.float64(data[p])
                for j in range(n_genes):
                    v = np.log1p(target_sum * (P[j] - y_row[j]) / rem[q]) - b[j]
                    s1[j] += v
                    s2[j] += v * v
                for p in range(indptr[r], indptr[r + 1]):
                    y_row[indices[p]] = 0.0
            else:
                for j in range(n_genes):
                    s1[j] += -b[j]
                    s2[j] += b[j] * b[j]
    return S1, S2, n_cells
