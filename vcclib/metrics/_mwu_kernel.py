"""Numba kernels: Mann–Whitney U rank sums of every group against one reference group, per gene, and the
per-group sums behind the pseudobulks.

Imported lazily (numba compiles on first use; ``cache=True`` keeps the machine code between processes).

:func:`mwu_rank_stats_csr` reads a CSR matrix as it is (no copy, no CSC conversion of the whole matrix): genes
are processed in chunks, and for each chunk the kernel gathers the stored values of those genes, visiting the
cells in group order, into a small per-chunk CSC buffer (memory O(cells × chunk) per thread). Zeros are never
materialised: they are one tie group per (group, gene) handled analytically. Per gene the stored values are
radix-sorted once (on order-preserving integer images of their bits) and given dense value ids; the control's
count per id and its running total give, for every value x of any group, #control < x and #control == x in
O(1), so the control values are ranked once and reused for every group.
"""

from __future__ import annotations

import numba as nb
import numpy as np

RADIX_BITS = 11
RADIX_SIZE = 1 << RADIX_BITS


@nb.njit(cache=True)
def _tie(t):
    return t * t * t - t


@nb.njit(cache=True)
def _gene_stats(keys, pos, starts, ref, signbit, n_pass, j, U, T, ws_a, ws_b, ia, ib, ids, is_pos, cnt_c, less,
                cnt_g, seen, bnd, cnt):  # pragma: no cover - compiled
    """U and tie term of every group for one gene.

    ``keys``: order-preserving unsigned images of the gene's stored (non-zero) values; ``pos``: the group-sorted
    position of each value's cell (ascending). The remaining arguments are work buffers of sufficient size.
    """
    nnz = keys.size
    n_groups = starts.size - 1
    n_c = starts[ref + 1] - starts[ref]
    # group boundaries among the stored entries (positions are sorted)
    p = 0
    for g in range(n_groups + 1):
        while p < nnz and pos[p] < starts[g]:
            p += 1
        bnd[g] = p
    # LSD radix sort of (key, index)
    ka = ws_a
    kb = ws_b
    xa = ia
    xb = ib
    for i in range(nnz):
        ka[i] = keys[i]
        xa[i] = i
    mask = np.uint64(RADIX_SIZE - 1)
    for step in range(n_pass):
        shift = np.uint64(step * RADIX_BITS)
        cnt[:] = 0
        for i in range(nnz):
            cnt[(ka[i] >> shift) & mask] += 1
        if nnz == 0 or cnt[(ka[0] >> shift) & mask] == nnz:
            continue  # every key has the same digit: nothing to reorder
        s = 0
        for b in range(RADIX_SIZE):
            c = cnt[b]
            cnt[b] = s
            s += c
        for i in range(nnz):
            d = (ka[i] >> shift) & mask
            q = cnt[d]
            cnt[d] = q + 1
            kb[q] = ka[i]
            xb[q] = xa[i]
        ka, kb = kb, ka
        xa, xb = xb, xa
    # dense value ids
    n_keys = 0
    for i in range(nnz):
        if i == 0 or ka[i] != ka[i - 1]:
            is_pos[n_keys] = ka[i] > signbit
            n_keys += 1
        ids[xa[i]] = n_keys - 1
    cnt_c[:n_keys] = 0
    for i in range(bnd[ref], bnd[ref + 1]):
        cnt_c[ids[i]] += 1
    z_c = n_c - (bnd[ref + 1] - bnd[ref])
    running = 0
    neg_c = 0
    tie_c = _tie(float(z_c))
    for k in range(n_keys):
        if not is_pos[k]:
            neg_c += cnt_c[k]
        less[k] = running + (z_c if is_pos[k] else 0)
        running += cnt_c[k]
        tie_c += _tie(float(cnt_c[k]))
    cnt_g[:n_keys] = 0
    for g in range(n_groups):
        if g == ref:
            continue
        n_p = starts[g + 1] - starts[g]
        z_p = n_p - (bnd[g + 1] - bnd[g])
        u = z_p * (neg_c + 0.5 * z_c)
        tie = tie_c - _tie(float(z_c)) + _tie(float(z_c + z_p))
        n_seen = 0
        for i in range(bnd[g], bnd[g + 1]):
            k = ids[i]
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


@nb.njit(parallel=True, cache=True)
def mwu_rank_stats_csr(indptr, indices, bits, signbit, n_pass, order, starts, ref, n_genes,
                       chunk):  # pragma: no cover - compiled
    """U statistic of each group (as sample x) and the tie term Σ(t³ − t) of the combined sample.

    Parameters
    ----------
    indptr, indices, bits
        CSR arrays (sorted column indices) of a (cells × genes) matrix; ``bits`` is the data viewed as unsigned
        integers of its width (``float32`` → ``uint32``, ``float64`` → ``uint64``). Stored zeros are ignored.
    signbit
        The sign bit of that width as ``uint64``.
    n_pass
        Radix passes of :data:`RADIX_BITS` bits covering the width (3 for 32 bits, 6 for 64).
    order
        Cell (row) indices sorted by group, ascending within each group.
    starts
        Offsets of the groups in ``order`` (length n_groups + 1).
    ref
        Index of the reference group.
    n_genes, chunk
        Number of columns, and how many are gathered at a time.

    Returns
    -------
    U, tie : (n_groups, n_genes) float64 arrays; the reference row is 0.
    """
    n_rows = order.size
    n_groups = starts.size - 1
    U = np.zeros((n_groups, n_genes))
    T = np.zeros((n_groups, n_genes))
    n_chunks = (n_genes + chunk - 1) // chunk
    value_mask = np.uint64(signbit - np.uint64(1))  # every bit but the sign bit (of the data's width)
    for c in nb.prange(n_chunks):
        glo = c * chunk
        ghi = min(glo + chunk, n_genes)
        width = ghi - glo
        seg_lo = np.empty(n_rows, dtype=np.int64)
        seg_hi = np.empty(n_rows, dtype=np.int64)
        cptr = np.zeros(width + 1, dtype=np.int64)
        for q in range(n_rows):
            r = order[q]
            a = indptr[r]
            b = indptr[r + 1]
            s = a + np.searchsorted(indices[a:b], glo)
            e = s
            while e < b and indices[e] < ghi:
                if np.uint64(bits[e]) & value_mask:
                    cptr[indices[e] - glo + 1] += 1
                e += 1
            seg_lo[q] = s
            seg_hi[q] = e
        for jj in range(width):
            cptr[jj + 1] += cptr[jj]
        nnz = cptr[width]
        keys = np.empty(nnz, dtype=np.uint64)
        pos = np.empty(nnz, dtype=np.int64)
        fill = cptr[:width].copy()
        for q in range(n_rows):
            for p in range(seg_lo[q], seg_hi[q]):
                b64 = np.uint64(bits[p])
                if b64 & value_mask:
                    jj = indices[p] - glo
                    d = fill[jj]
                    fill[jj] = d + 1
                    # order-preserving unsigned image: flip negatives, set the sign bit of positives
                    if b64 & signbit:
                        keys[d] = (~b64) & (signbit | value_mask)
                    else:
                        keys[d] = b64 | signbit
                    pos[d] = q
        max_nnz = 0
        for jj in range(width):
            max_nnz = max(max_nnz, cptr[jj + 1] - cptr[jj])
        ws_a = np.empty(max_nnz, dtype=np.uint64)
        ws_b = np.empty(max_nnz, dtype=np.uint64)
        ia = np.empty(max_nnz, dtype=np.int64)
        ib = np.empty(max_nnz, dtype=np.int64)
        ids = np.empty(max_nnz, dtype=np.int64)
        is_pos = np.empty(max_nnz + 1, dtype=np.bool_)
        cnt_c = np.empty(max_nnz + 1, dtype=np.int64)
        less = np.empty(max_nnz + 1)
        cnt_g = np.empty(max_nnz + 1, dtype=np.int64)
        seen = np.empty(max_nnz + 1, dtype=np.int64)
        bnd = np.empty(n_groups + 1, dtype=np.int64)
        cnt = np.empty(RADIX_SIZE, dtype=np.int64)
        for jj in range(width):
            lo = cptr[jj]
            hi = cptr[jj + 1]
            _gene_stats(keys[lo:hi], pos[lo:hi], starts, ref, signbit, n_pass, glo + jj, U, T, ws_a, ws_b, ia, ib,
                        ids, is_pos, cnt_c, less, cnt_g, seen, bnd, cnt)
    return U, T


@nb.njit(parallel=True, cache=True)
def group_sums_csr(indptr, indices, data, order, starts, n_genes, scale_native):  # pragma: no cover - compiled
    """Per-group means of a CSR matrix, two ways, each with the arithmetic of the scipy call it replaces.

    Returns ``(mean64, native)``: ``mean64[g] = Σ_cells (1/n_g) · x`` accumulated in float64 in cell order (as
    ``indicator @ X.astype(float64)``), and ``native[g] = Σ_cells x · s_g`` accumulated in X's dtype with
    ``s_g = scale_native[g]`` (1/n_g rounded to that dtype), as ``X[rows].mean(axis=0)`` does.
    """
    n_groups = starts.size - 1
    mean64 = np.zeros((n_groups, n_genes))
    native = np.zeros((n_groups, n_genes), dtype=data.dtype)
    for g in nb.prange(n_groups):
        n = starts[g + 1] - starts[g]
        if n == 0:
            continue
        w = 1.0 / n
        s = scale_native[g]
        for q in range(starts[g], starts[g + 1]):
            r = order[q]
            for p in range(indptr[r], indptr[r + 1]):
                j = indices[p]
                x = data[p]
                mean64[g, j] += w * np.float64(x)
                native[g, j] += x * s
    return mean64, native
