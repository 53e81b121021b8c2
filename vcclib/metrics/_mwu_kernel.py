"""Numba kernels: Mann–Whitney U rank sums of every group against one reference group, per gene, and the
per-group sums behind the pseudobulks.

Imported lazily (numba compiles on first use; ``cache=True`` keeps the machine code between processes).

:func:`mwu_rank_stats_csr` reads a CSR matrix as it is (no copy, no CSC conversion of the whole matrix): genes
are processed in chunks, and for each chunk the kernel gathers the stored values of those genes, visiting the
cells in group order, into a small per-chunk CSC buffer (memory O(cells × chunk) per thread). Zeros are never
materialised: they are one tie group per (group, gene) handled analytically. Per gene the stored values are
radix-sorted once (on order-preserving integer images of their bits) and given dense value ids; the control's
count per id and its running total give, for every value x of any group, #control < x and #control == x in
O(1), so the control values are ranked once and reused for every group. The rows may come from two CSR
matrices of the same genes (rows ``≥ n_rows_a`` of ``order`` are rows of the second): the groups of a prediction
are then ranked against the reference's control cells without stacking the two matrices.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

RADIX_BITS = 11
RADIX_SIZE = 1 << RADIX_BITS


@nb.njit(cache=True)
def _tie(t):
    return t * t * t - t


@nb.njit(cache=True)
def _gene_stats(
    keys, bnd, starts, ref, signbit, n_pass, j, U, T, ws_a, ws_b, ia, ib, ids, is_pos, cnt_c, less, cnt_g, seen, cnt
):  # pragma: no cover - compiled
    """U and tie term of every group for one gene.

    ``keys``: the bits of the gene's stored (non-zero) values as unsigned integers, grouped (group g's values
    are ``keys[bnd[g] : bnd[g + 1]]``). The remaining arguments are work buffers of sufficient size.
    """
    nnz = keys.size
    n_groups = starts.size - 1
    n_c = starts[ref + 1] - starts[ref]
    # LSD radix sort of (key, index)
    ka = ws_a
    kb = ws_b
    xa = ia
    xb = ib
    value_mask = np.uint64(signbit - np.uint64(1))
    full_mask = signbit | value_mask
    mask = np.uint64(RADIX_SIZE - 1)
    cnt[: n_pass * RADIX_SIZE] = 0
    for i in range(nnz):
        # order-preserving unsigned image of the float's bits: flip negatives, set the sign bit of positives
        b = np.uint64(keys[i])
        k = ((~b) & full_mask) if b & signbit else (b | signbit)
        ka[i] = k
        xa[i] = i
        for step in range(n_pass):  # the histograms of every digit in one read
            cnt[step * RADIX_SIZE + ((k >> np.uint64(step * RADIX_BITS)) & mask)] += 1
    for step in range(n_pass):
        shift = np.uint64(step * RADIX_BITS)
        base = step * RADIX_SIZE
        if nnz == 0 or cnt[base + ((np.uint64(ka[0]) >> shift) & mask)] == nnz:
            continue  # every key has the same digit: nothing to reorder
        s = 0
        for b in range(base, base + RADIX_SIZE):
            c = cnt[b]
            cnt[b] = s
            s += c
        for i in range(nnz):
            d = base + ((np.uint64(ka[i]) >> shift) & mask)
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


@nb.njit(cache=True)
def _gather(indices, bits, e, end, ghi, glo, value_mask, fill, keys):  # pragma: no cover - compiled
    """Copy one row's stored non-zero values of columns < ``ghi`` from position ``e`` into ``keys``; returns the
    row's new cursor."""
    while e < end and indices[e] < ghi:
        if np.uint64(bits[e]) & value_mask:
            jj = indices[e] - glo
            d = fill[jj]
            fill[jj] = d + 1
            keys[d] = bits[e]
        e += 1
    return e


@nb.njit(cache=True)
def _gather_quotients(indices, values, e, end, ghi, glo, f, fill, keys_f):  # pragma: no cover - compiled
    """:func:`_gather` of ``float64(x) / f`` for one row's stored non-zero counts ``x`` (``f``: the row's
    factor; an IEEE division, numpy's bits), written into the float64 ``keys_f``."""
    while e < end and indices[e] < ghi:
        x = values[e]
        if x != 0:
            jj = indices[e] - glo
            d = fill[jj]
            fill[jj] = d + 1
            keys_f[d] = np.float64(x) / f
        e += 1
    return e


@nb.njit(nogil=True, cache=True)
def stripe_cursors(indptr, indices, indptr_b, indices_b, n_rows_a, order, s_lo):  # pragma: no cover - compiled
    """Each row of ``order``'s first stored position at a column ≥ ``s_lo``, and its end (two int64 arrays)."""
    n_rows = order.size
    cursor = np.empty(n_rows, dtype=np.int64)
    row_end = np.empty(n_rows, dtype=np.int64)
    for q in range(n_rows):
        r = order[q]
        if r >= n_rows_a:
            a = indptr_b[r - n_rows_a]
            b = indptr_b[r - n_rows_a + 1]
            cursor[q] = a + np.searchsorted(indices_b[a:b], s_lo)
        else:
            a = indptr[r]
            b = indptr[r + 1]
            cursor[q] = a + np.searchsorted(indices[a:b], s_lo)
        row_end[q] = b
    return cursor, row_end


@nb.njit(cache=True)
def _chunk_layout(col_nnz, glo, ghi, n_groups):  # pragma: no cover - compiled
    """Offsets of columns ``glo:ghi`` in one gather (length width + 1), and the per-column group bounds."""
    width = ghi - glo
    cptr = np.zeros(width + 1, dtype=np.int64)
    for jj in range(width):
        cptr[jj + 1] = cptr[jj] + col_nnz[glo + jj]
    return cptr, np.empty((width, n_groups + 1), dtype=np.int64)


@nb.njit(cache=True)
def _gather_bits(
    indices, bits, indices_b, bits_b, n_rows_a, order, starts, cursor, row_end, glo, ghi, value_mask, cptr, bnd, keys
):  # pragma: no cover - compiled
    """Gather the stored values of columns ``glo:ghi`` as they are (their bits), visiting cells in group order;
    advances the cursors and fills ``bnd`` (where each group starts among each column's values)."""
    width = ghi - glo
    n_groups = starts.size - 1
    fill = cptr[:width].copy()
    for g in range(n_groups):
        for jj in range(width):
            bnd[jj, g] = fill[jj] - cptr[jj]
        for q in range(starts[g], starts[g + 1]):
            r = order[q]
            if r >= n_rows_a:
                cursor[q] = _gather(indices_b, bits_b, cursor[q], row_end[q], ghi, glo, value_mask, fill, keys)
            else:
                cursor[q] = _gather(indices, bits, cursor[q], row_end[q], ghi, glo, value_mask, fill, keys)
    for jj in range(width):
        bnd[jj, n_groups] = fill[jj] - cptr[jj]


@nb.njit(nogil=True, cache=True)
def gather_quotients(
    indices, values, indices_b, values_b, n_rows_a, factor, factor_b, order, starts, cursor, row_end, glo, ghi, col_nnz
):  # pragma: no cover - compiled
    """Gather ``float64(x) / factor[row]`` of the stored non-zero counts of columns ``glo:ghi`` (as
    :func:`_gather_bits`): returns ``(keys, cptr, bnd)``, the float64 quotients column by column and their
    layout, for the caller to log in place and pass to :func:`chunk_rank_stats`."""
    n_groups = starts.size - 1
    cptr, bnd = _chunk_layout(col_nnz, glo, ghi, n_groups)
    width = ghi - glo
    keys = np.empty(cptr[width])
    fill = cptr[:width].copy()
    for g in range(n_groups):
        for jj in range(width):
            bnd[jj, g] = fill[jj] - cptr[jj]
        for q in range(starts[g], starts[g + 1]):
            r = order[q]
            if r >= n_rows_a:
                f = factor_b[r - n_rows_a]
                cursor[q] = _gather_quotients(indices_b, values_b, cursor[q], row_end[q], ghi, glo, f, fill, keys)
            else:
                f = factor[r]
                cursor[q] = _gather_quotients(indices, values, cursor[q], row_end[q], ghi, glo, f, fill, keys)
    for jj in range(width):
        bnd[jj, n_groups] = fill[jj] - cptr[jj]
    return keys, cptr, bnd


@nb.njit(nogil=True, cache=True)
def chunk_rank_stats(keys, cptr, bnd, glo, starts, ref, signbit, n_pass, U, T):  # pragma: no cover - compiled
    """:func:`_gene_stats` of every column of one gather (``keys``: its values' bits as unsigned integers),
    written into columns ``glo + jj`` of U and T."""
    width = cptr.size - 1
    cap = 0
    for jj in range(width):
        cap = max(cap, cptr[jj + 1] - cptr[jj])
    ws_a = np.empty(cap, dtype=keys.dtype)
    ws_b = np.empty(cap, dtype=keys.dtype)
    ia = np.empty(cap, dtype=np.int32)
    ib = np.empty(cap, dtype=np.int32)
    ids = np.empty(cap, dtype=np.int32)
    is_pos = np.empty(cap + 1, dtype=np.bool_)
    cnt_c = np.empty(cap + 1, dtype=np.int64)
    less = np.empty(cap + 1)
    cnt_g = np.empty(cap + 1, dtype=np.int64)
    seen = np.empty(cap + 1, dtype=np.int64)
    cnt = np.empty(n_pass * RADIX_SIZE, dtype=np.int64)
    for jj in range(width):
        lo = cptr[jj]
        hi = cptr[jj + 1]
        _gene_stats(
            keys[lo:hi], bnd[jj], starts, ref, signbit, n_pass, glo + jj, U, T,
            ws_a, ws_b, ia, ib, ids, is_pos, cnt_c, less, cnt_g, seen, cnt,
        )  # fmt: skip


@nb.njit(parallel=True, cache=True)
def mwu_rank_stats_csr(
    indptr,
    indices,
    bits,
    indptr_b,
    indices_b,
    bits_b,
    n_rows_a,
    signbit,
    n_pass,
    order,
    starts,
    ref,
    n_genes,
    chunk,
    stripes,
    col_nnz,
):  # pragma: no cover - compiled
    """U statistic of each group (as sample x) and the tie term Σ(t³ − t) of the combined sample.

    Parameters
    ----------
    indptr, indices, bits
        CSR arrays (sorted column indices) of a (cells × genes) matrix; ``bits`` is the data viewed as unsigned
        integers of its width (``float32`` → ``uint32``, ``float64`` → ``uint64``). Stored zeros are ignored.
    indptr_b, indices_b, bits_b, n_rows_a
        A second CSR matrix of the same genes and dtypes: a row ``r ≥ n_rows_a`` of ``order`` is its row
        ``r − n_rows_a`` (one matrix: pass the first again with ``n_rows_a`` its number of rows).
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
    stripes
        Column boundaries of the stripes processed in parallel (each walks its columns chunk by chunk with one
        cursor per row), e.g. balanced by stored values.
    col_nnz
        Number of stored non-zero values of each column over the rows of ``order`` (:func:`column_nnz`).

    Returns
    -------
    U, tie : (n_groups, n_genes) float64 arrays; the reference row is 0.

    The values of counts to be scaled and logged first (the DE of the VCC 2026 suite) are ranked by
    :func:`vcclib.metrics.de.rank_sums` from :func:`gather_quotients` and :func:`chunk_rank_stats` instead, with
    numpy's ``log1p`` between the two.
    """
    n_groups = starts.size - 1
    U = np.zeros((n_groups, n_genes))
    T = np.zeros((n_groups, n_genes))
    value_mask = np.uint64(signbit - np.uint64(1))  # every bit but the sign bit (of the data's width)
    for st in nb.prange(stripes.size - 1):
        s_lo = stripes[st]
        s_hi = stripes[st + 1]
        cursor, row_end = stripe_cursors(indptr, indices, indptr_b, indices_b, n_rows_a, order, s_lo)
        for glo in range(s_lo, s_hi, chunk):
            ghi = min(glo + chunk, s_hi)
            cptr, bnd = _chunk_layout(col_nnz, glo, ghi, n_groups)
            keys = np.empty(cptr[ghi - glo], dtype=bits.dtype)
            _gather_bits(
                indices, bits, indices_b, bits_b, n_rows_a, order, starts, cursor, row_end, glo, ghi, value_mask,
                cptr, bnd, keys,
            )  # fmt: skip
            chunk_rank_stats(keys, cptr, bnd, glo, starts, ref, signbit, n_pass, U, T)
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


@nb.njit(parallel=True, cache=True)
def column_nnz(indices, bits, signbit, n_genes):  # pragma: no cover - compiled
    """Stored non-zero values per column of a CSR/COO ``indices``, ``bits`` (zeros of either sign skipped)."""
    value_mask = np.uint64(signbit - np.uint64(1))
    n_blocks = 8
    step = (indices.size + n_blocks - 1) // n_blocks
    partial = np.zeros((n_blocks, n_genes), dtype=np.int64)
    for blk in nb.prange(n_blocks):
        for p in range(blk * step, min((blk + 1) * step, indices.size)):
            if np.uint64(bits[p]) & value_mask:
                partial[blk, indices[p]] += 1
    return partial.sum(axis=0)


@nb.njit(parallel=True, cache=True)
def column_nnz_of_rows(indptr, indices, bits, rows, signbit, n_genes):  # pragma: no cover - compiled
    """:func:`column_nnz` over the CSR rows ``rows`` only (read in place, no gather of their positions)."""
    value_mask = np.uint64(signbit - np.uint64(1))
    n_blocks = 8
    step = (rows.size + n_blocks - 1) // n_blocks
    partial = np.zeros((n_blocks, n_genes), dtype=np.int64)
    for blk in nb.prange(n_blocks):
        for i in range(blk * step, min((blk + 1) * step, rows.size)):
            r = rows[i]
            for p in range(indptr[r], indptr[r + 1]):
                if np.uint64(bits[p]) & value_mask:
                    partial[blk, indices[p]] += 1
    return partial.sum(axis=0)


@nb.njit(parallel=True, cache=True)
def group_sums_csr_into(
    indptr, indices, data, order, starts, weight, scale_native, mean64, native
):  # pragma: no cover - compiled
    """:func:`group_sums_csr` for one block of rows, added into ``mean64`` / ``native`` in place.

    ``weight[g]`` is 1/n_g of the whole file's group g and ``scale_native[g]`` that in X's dtype; visiting the
    blocks in row order adds every value in the order the one-pass kernel does, so the sums are bit-identical.
    """
    n_groups = starts.size - 1
    for g in nb.prange(n_groups):
        w = weight[g]
        s = scale_native[g]
        for q in range(starts[g], starts[g + 1]):
            r = order[q]
            for p in range(indptr[r], indptr[r + 1]):
                j = indices[p]
                x = data[p]
                mean64[g, j] += w * np.float64(x)
                native[g, j] += x * s


@nb.njit(parallel=True, cache=True, error_model="numpy")
def mwu_two_sided_p(U1, tie, n1, n2):  # pragma: no cover - compiled
    """Two-sided p-values of (rows × genes) U statistics ``U1`` with tie terms ``tie``, ``n1[row]`` cells
    against ``n2``, in numba-mwu's arithmetic: ``z = (max(U1, U2) − n1·n2/2 − ½) / √s²`` and
    ``p = 2 · ½·erfc(z/√2)`` with libm's ``erfc``, clipped to [0, 1]; 1 where ``s²`` is not positive."""
    rows, cols = U1.shape
    p = np.empty((rows, cols))
    sqrt2 = math.sqrt(2.0)
    for i in nb.prange(rows):
        a = n1[i]
        n = a + n2
        mu = a * n2 / 2.0
        denom = n * (n - 1.0)
        for j in range(cols):
            u1 = U1[i, j]
            s_sq = a * n2 / 12.0 * ((n + 1.0) - tie[i, j] / denom)
            if not s_sq > 0.0:
                p[i, j] = 1.0
                continue
            z = (max(u1, a * n2 - u1) - mu - 0.5) / math.sqrt(s_sq)
            q = 0.5 * math.erfc(z / sqrt2) * 2.0
            p[i, j] = min(max(q, 0.0), 1.0)
    return p
