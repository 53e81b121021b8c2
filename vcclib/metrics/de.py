"""Differential expression behind the DE metrics: Mann–Whitney U of each perturbation against control.

Two conventions, both two-sided asymptotic Mann–Whitney U with tie and continuity correction on log1p values:

``"cell-eval"`` (cell-eval 0.8 + pdex ≥ 0.2, what users install today)
    group mean = expm1(mean(log1p X)); ``log2_fold_change = log2(t / r)`` with ε = 0 (±inf for one-sided
    zeros, 0 when both are zero); Benjamini–Hochberg **per perturbation**.
``"vcc2025"`` (cell-eval 0.6.6 + pdex 0.1.27, the 2025 leaderboard)
    same means; ``fold_change = t / r`` clipped to [1/20, 20] (0/0 → 1) and ``log2_fold_change`` its log2;
    Benjamini–Hochberg **across all perturbation × gene rows** jointly.

The engine ranks each gene's control values once and reuses them for every perturbation (see
:mod:`vcclib.metrics._mwu_kernel`); a sparse matrix is read in place (never converted, copied or densified:
the kernel gathers gene chunks itself), a dense one is processed in gene chunks.

Also here: scanpy's t-test score (``rank_genes_groups(method="t-test")``, Welch, and ``t-test_overestim_var``)
used to pick GEARS's top-20 DE genes and Diversity by Design's weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from vcclib.metrics.pseudobulk import GroupedCells, group_mean_var

CONVENTIONS = ("cell-eval", "vcc2025")
FC_CLIP = 20.0
GENE_CHUNK = 1024
#: at most this many genes are gathered at a time by the rank-sum kernel (per thread: O(cells × chunk) memory)
GATHER_CHUNK = 512
#: and at most about this many bytes of gathered values per thread: a buffer this size is served again from
#: the allocator's free memory chunk after chunk, where a larger one (over glibc's 32 MiB ceiling for reuse) is
#: mapped afresh and faulted in page by page each time
GATHER_BYTES = 16 << 20


def gather_chunk(col_nnz: np.ndarray, key_bytes: int) -> int:
    """Genes per gather of the rank-sum kernel: :data:`GATHER_CHUNK`, fewer where the genes' stored values
    would exceed :data:`GATHER_BYTES` (16 at least)."""
    per_gene = key_bytes * max(float(np.mean(col_nnz)) if col_nnz.size else 0.0, 1.0)
    return int(min(GATHER_CHUNK, max(16, GATHER_BYTES // per_gene)))


@dataclass(frozen=True)
class Labels:
    """A label column of a long table: ``names[codes]``, kept as codes until a table is built."""

    names: np.ndarray
    codes: np.ndarray

    @classmethod
    def rows(cls, names, n_cols: int) -> Labels:
        """Each name repeated ``n_cols`` times (the row label of a rows × cols array, raveled)."""
        return cls(np.asarray(names).astype(str), np.repeat(np.arange(len(names)), n_cols))

    @classmethod
    def tiled(cls, names, n_rows: int) -> Labels:
        """The names tiled ``n_rows`` times (the column label of a rows × cols array, raveled)."""
        return cls(np.asarray(names).astype(str), np.tile(np.arange(len(names)), n_rows))


def long_frame(columns: dict) -> pd.DataFrame:
    """DataFrame of ``columns`` (arrays, or :class:`Labels` expanded to strings)."""
    return pd.DataFrame({k: v.names[v.codes] if isinstance(v, Labels) else v for k, v in columns.items()})


def long_arrow(columns: dict):
    """pyarrow Table of ``columns``, the same values and types as ``pa.Table.from_pandas(long_frame(columns))``
    (labels become plain strings, decoded from a dictionary in arrow itself)."""
    import pyarrow as pa

    arrays = {}
    for name, value in columns.items():
        if isinstance(value, Labels):
            dictionary = pa.array(value.names.tolist(), type=pa.string())
            value = pa.DictionaryArray.from_arrays(pa.array(value.codes.astype(np.int32)), dictionary)
            arrays[name] = value.cast(pa.string())
        else:
            arrays[name] = pa.array(value)
    return pa.table(arrays)


@dataclass
class DEArrays:
    """DE of every perturbation against control, as (perturbations × genes) arrays.

    ``targets`` are sorted; rows of every array follow them. ``fdr`` follows the convention's BH scope.
    """

    targets: np.ndarray
    genes: np.ndarray
    target_mean: np.ndarray
    ref_mean: np.ndarray
    target_membership: np.ndarray
    ref_membership: int
    log2_fold_change: np.ndarray
    fold_change: np.ndarray
    percent_change: np.ndarray
    p_value: np.ndarray
    statistic: np.ndarray
    fdr: np.ndarray
    convention: str

    def columns(self) -> dict:
        """Columns of :meth:`to_frame` (labels as :class:`Labels`), in its order."""
        n_t, n_g = self.p_value.shape
        return {
            "target": Labels.rows(self.targets, n_g),
            "feature": Labels.tiled(self.genes, n_t),
            "target_mean": self.target_mean.ravel(),
            "ref_mean": np.tile(self.ref_mean, n_t),
            "target_membership": np.repeat(self.target_membership, n_g),
            "ref_membership": np.full(n_t * n_g, self.ref_membership, dtype=np.int64),
            "fold_change": self.fold_change.ravel(),
            "log2_fold_change": self.log2_fold_change.ravel(),
            "percent_change": self.percent_change.ravel(),
            "p_value": self.p_value.ravel(),
            "statistic": self.statistic.ravel(),
            "fdr": self.fdr.ravel(),
        }

    def to_frame(self) -> pd.DataFrame:
        """Long table like pdex: one row per (target, feature), targets sorted, features in var order."""
        return long_frame(self.columns())

    def to_arrow(self):
        """:meth:`to_frame` as a pyarrow Table, built from the arrays (no Python string per row)."""
        return long_arrow(self.columns())

    def significant(self, threshold: float = 0.05) -> np.ndarray:
        """Boolean (targets × genes) mask of fdr < threshold, compared in float32 as cell-eval stores it."""
        return self.fdr.astype(np.float32) < threshold


def benjamini_hochberg(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values along ``axis``: the arithmetic of scipy's
    ``false_discovery_control`` (sort, ``p · m/i``, running minimum from the end, clip to [0, 1]), without
    importing scipy.stats (about 0.9 s of the command's start-up)."""
    p = np.moveaxis(np.asarray(p, dtype=np.float64), axis, -1)
    m = p.shape[-1]
    if m == 0:
        return np.moveaxis(p.copy(), -1, axis)
    order = np.argsort(p, axis=-1, kind="stable")
    ps = np.take_along_axis(p, order, axis=-1)
    ps = ps * (m / np.arange(1, m + 1, dtype=np.float64))
    np.minimum.accumulate(ps[..., ::-1], out=ps[..., ::-1], axis=-1)
    out = np.empty_like(ps)
    np.put_along_axis(out, order, ps, axis=-1)
    return np.moveaxis(np.clip(out, 0.0, 1.0), -1, axis)


def mwu_pvalues(U1: np.ndarray, tie: np.ndarray, n1: np.ndarray, n2: float) -> np.ndarray:
    """Two-sided asymptotic p-values with continuity and tie correction of (groups × genes) U statistics.

    The arithmetic is numba-mwu's (the engine of pdex, behind cell-eval 0.8's DE and cell-eval2's CPU DE):
    ``p = 2 · ½·erfc(z/√2)`` with libm's ``erfc`` (:func:`~vcclib.metrics._mwu_kernel.mwu_two_sided_p`), so
    equal U and tie terms give their p-values bit for bit; scipy's formula differs only in how it rounds. ``tie``
    broadcasts to U1's shape and ``n1`` has one size per row.
    """
    from vcclib.metrics._mwu_kernel import mwu_two_sided_p

    U1 = np.ascontiguousarray(U1, dtype=np.float64)
    if U1.ndim != 2:
        raise ValueError(f"mwu_pvalues takes (groups × genes) U statistics, got shape {U1.shape}")
    tie = np.ascontiguousarray(np.broadcast_to(np.asarray(tie, dtype=np.float64), U1.shape))
    n1 = np.ascontiguousarray(np.broadcast_to(np.asarray(n1, dtype=np.float64).reshape(-1), U1.shape[:1]))
    return mwu_two_sided_p(U1, tie, n1, float(n2))


def _stripes(col_nnz: np.ndarray, n_parts: int) -> np.ndarray:
    """Column boundaries splitting the genes into ``n_parts`` stripes of about equal work (stored values)."""
    n_genes = col_nnz.size
    work = np.concatenate([[0], np.cumsum(col_nnz + 256)])
    bounds = np.searchsorted(work, np.linspace(0, work[-1], n_parts + 1), side="left")
    bounds[0], bounds[-1] = 0, n_genes
    return np.unique(bounds).astype(np.int64)


def _csr_rank_sums(X, order, starts, ref, U, T, offset: int = 0, second=None, factors=None, skipped_b=None) -> None:
    """Fill U, T[:, offset : offset + X.shape[1]] from a canonical CSR X (see :mod:`~vcclib.metrics._mwu_kernel`).

    ``second``: another canonical CSR matrix of the same genes and dtype whose rows are rows
    ``X.shape[0] + i`` of ``order``. ``factors``: one float64 factor per row of X (and of ``second``, as a
    pair); the values ranked are then ``log1p(x / factor)`` of X's stored counts (:func:`_scaled_rank_sums`).
    ``skipped_b``: rows of ``second`` absent from ``order`` (not counted in the kernel's column sizes).
    """
    import numba

    from vcclib.metrics._mwu_kernel import RADIX_BITS, column_nnz, column_nnz_of_rows, mwu_rank_stats_csr

    n_genes = X.shape[1]
    width = X.dtype.itemsize * 8
    kind = np.uint32 if width == 32 else np.uint64
    signbit = np.uint64(1 << (width - 1))
    B = X if second is None else second
    if B.dtype != X.dtype:
        raise ValueError(f"rank sums of two matrices need one dtype, got {X.dtype} and {B.dtype}")
    index_arrays = [X.indptr, X.indices, B.indptr, B.indices]
    if len({a.dtype for a in index_arrays}) > 1:  # one index type for the kernel's two sources
        index_arrays = [a.astype(np.int64) for a in index_arrays]
    indptr, indices, indptr_b, indices_b = index_arrays
    bits, bits_b = X.data.view(kind), B.data.view(kind)
    col_nnz = column_nnz(indices, bits, signbit, n_genes)
    if second is not None:
        col_nnz = col_nnz + column_nnz(indices_b, bits_b, signbit, n_genes)
    if skipped_b is not None and skipped_b.size:
        col_nnz = col_nnz - column_nnz_of_rows(indptr_b, indices_b, bits_b, skipped_b, signbit, n_genes)
    stripes = _stripes(col_nnz, 4 * numba.get_num_threads())
    csr = (indptr, indices, X.data, indptr_b, indices_b, B.data, X.shape[0])
    if factors is not None:
        u, t = _scaled_rank_sums(csr, factors, order, starts, int(ref), col_nnz, stripes)
    else:
        u, t = mwu_rank_stats_csr(
            indptr,
            indices,
            bits,
            indptr_b,
            indices_b,
            bits_b,
            X.shape[0],
            signbit,
            -(-width // RADIX_BITS),
            order,
            starts,
            int(ref),
            n_genes,
            gather_chunk(col_nnz, width // 8),
            stripes,
            col_nnz,
        )
    U[:, offset : offset + n_genes] = u
    T[:, offset : offset + n_genes] = t


def _scaled_rank_sums(csr, factors, order, starts, ref: int, col_nnz, stripes) -> tuple[np.ndarray, np.ndarray]:
    """U and tie terms of ``log1p(x / factor[row])`` of the stored counts of ``csr`` (the kernel's two
    matrices' arrays, data as stored), logged by numpy.

    cell-eval2 (scanpy) ranks numpy's ``log1p`` of the CPM matrix, so the values ranked must be numpy's bits:
    where numpy dispatches ``log1p`` to its AVX-512 code, about 1% of values differ from libm's (numba's) by an
    ulp, which changes ties. Each stripe of genes runs on its own thread, gather by gather: numba gathers the
    quotients (:func:`~vcclib.metrics._mwu_kernel.gather_quotients`, IEEE division), numpy logs them in place,
    and numba ranks their bits (:func:`~vcclib.metrics._mwu_kernel.chunk_rank_stats`); all three release the
    GIL. Only one gather's values per thread are held, never a logged copy of the matrices.
    """
    from concurrent.futures import ThreadPoolExecutor

    import numba

    from vcclib.metrics._mwu_kernel import RADIX_BITS, chunk_rank_stats, gather_quotients, stripe_cursors

    indptr, indices, values, indptr_b, indices_b, values_b, n_rows_a = csr
    factor, factor_b = factors
    n_groups, n_genes = starts.size - 1, col_nnz.size
    U, T = np.zeros((n_groups, n_genes)), np.zeros((n_groups, n_genes))
    signbit, n_pass = np.uint64(1 << 63), -(-64 // RADIX_BITS)
    chunk = gather_chunk(col_nnz, 8)

    def stripe(bounds: tuple[int, int]) -> None:
        s_lo, s_hi = bounds
        cursor, row_end = stripe_cursors(indptr, indices, indptr_b, indices_b, n_rows_a, order, s_lo)
        for glo in range(s_lo, s_hi, chunk):
            ghi = min(glo + chunk, s_hi)
            keys, cptr, bnd = gather_quotients(
                indices, values, indices_b, values_b, n_rows_a, factor, factor_b, order, starts, cursor, row_end,
                glo, ghi, col_nnz,
            )  # fmt: skip
            np.log1p(keys, out=keys)
            chunk_rank_stats(keys.view(np.uint64), cptr, bnd, glo, starts, ref, signbit, n_pass, U, T)

    with ThreadPoolExecutor(max_workers=numba.get_num_threads()) as pool:
        list(pool.map(stripe, zip(stripes[:-1].tolist(), stripes[1:].tolist())))
    return U, T


def rank_sums(
    X, codes: np.ndarray, n_groups: int, ref: int, order=None, starts=None, factor=None
) -> tuple[np.ndarray, np.ndarray]:
    """U statistic (each group as x) and tie term of each group against ``ref``: (groups × genes).

    A sparse X is read in place (CSR, gathered gene chunk by gene chunk); a dense one is converted to CSR
    :data:`GENE_CHUNK` genes at a time. ``factor`` (sparse X only): one float64 factor per row; the values
    ranked are then ``log1p(x / factor[row])``, as on ``X`` scaled and logged, without that copy.
    """
    from vcclib.metrics.pseudobulk import as_float_matrix, group_order

    if order is None:
        order, starts = group_order(codes, n_groups)
    U = np.zeros((n_groups, X.shape[1]))
    T = np.zeros((n_groups, X.shape[1]))
    if sp.issparse(X):
        X = as_float_matrix(X)
        factors = None if factor is None else (np.asarray(factor, dtype=np.float64),) * 2
        _csr_rank_sums(X, order, starts, ref, U, T, factors=factors)
        return U, T
    if factor is not None:
        raise ValueError("rank_sums: a per-row factor needs a sparse X")
    X = as_float_matrix(X)
    for lo in range(0, X.shape[1], GENE_CHUNK):
        chunk = sp.csr_matrix(np.asarray(X[:, lo : lo + GENE_CHUNK]))
        chunk.sort_indices()
        _csr_rank_sums(chunk, order, starts, ref, U, T, offset=lo)
    return U, T


def rank_sums_against(
    X,
    codes: np.ndarray,
    n_groups: int,
    ref: int,
    other,
    other_codes: np.ndarray,
    n_other: int,
    factors=None,
    skip_other: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`rank_sums` of the groups of X and of the groups of ``other`` (same genes), all against X's group
    ``ref``: (n_groups + n_other) × genes, X's groups first.

    Both matrices are sparse CSR of one float dtype, read in place (not stacked); the reference's values are
    ranked once per gene for both. The result equals :func:`rank_sums` of the two matrices stacked.
    ``factors``: (X's, other's) per-row factors, as ``factor`` of :func:`rank_sums`. ``skip_other``: a group
    of ``other`` that is not ranked (its rows of U and T stay 0; the other groups' statistics are unchanged).
    """
    from vcclib.metrics.pseudobulk import as_float_matrix, group_order

    X, other = as_float_matrix(X), as_float_matrix(other)
    if not (sp.issparse(X) and sp.issparse(other)):
        raise ValueError("rank_sums_against reads two sparse CSR matrices")
    order, starts = group_order(np.concatenate([codes, np.asarray(other_codes) + n_groups]), n_groups + n_other)
    skipped = None
    if skip_other is not None:  # its rows leave ``order``: the group is empty for the kernel
        g = n_groups + skip_other
        skipped = order[starts[g] : starts[g + 1]] - X.shape[0]
        order = np.concatenate([order[: starts[g]], order[starts[g + 1] :]])
        starts = starts.copy()
        starts[g + 1 :] -= skipped.size
    if factors is not None:
        factors = tuple(np.asarray(f, dtype=np.float64) for f in factors)
    U = np.zeros((n_groups + n_other, X.shape[1]))
    T = np.zeros((n_groups + n_other, X.shape[1]))
    _csr_rank_sums(X, order, starts, ref, U, T, second=other, factors=factors, skipped_b=skipped)
    if skip_other is not None:
        U[n_groups + skip_other] = T[n_groups + skip_other] = 0.0
    return U, T


def native_group_means(cells: GroupedCells) -> np.ndarray:
    """expm1 of each group's mean, accumulated in X's own dtype exactly as pdex does (float32 stays float32).

    pdex reports ``expm1(X[group].mean(axis=0))``; with float32 input that mean is accumulated in float32, and
    fold changes inherit its rounding (≈1e-6 relative). Reproducing the same arithmetic keeps our fold changes,
    and so the top-k gene orders of the DE metrics, identical to cell-eval's.
    """
    return np.expm1(cells.native_means())


def de_arrays(cells: GroupedCells, genes, convention: str = "cell-eval") -> DEArrays:
    """Run the DE of every non-control group of ``cells`` against its control."""
    if convention not in CONVENTIONS:
        raise ValueError(f"DE convention {convention!r}: use one of {CONVENTIONS}")
    ref = cells.control_index
    sizes = cells.sizes
    keep = np.flatnonzero(np.arange(cells.names.size) != ref)
    U, T = rank_sums(cells.X, cells.codes, cells.names.size, ref, *cells.order())
    U, T = U[keep], T[keep]
    n_ref = float(sizes[ref])
    pvals = mwu_pvalues(U, T, sizes[keep], n_ref)
    means = native_group_means(cells)
    target_mean, ref_mean = means[keep], means[ref]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = target_mean.astype(np.float64) / ref_mean.astype(np.float64)
        pc = (target_mean - ref_mean) / ref_mean
        log_ratio = np.log2(ratio)
    pc[np.isnan(pc)] = 0.0
    if convention == "cell-eval":
        lfc = log_ratio
        lfc[np.isnan(lfc)] = 0.0
        fc = ratio
        fdr = benjamini_hochberg(pvals, axis=1) if pvals.size else pvals
    else:
        fc = np.clip(np.where(np.isnan(ratio), 1.0, ratio), 1.0 / FC_CLIP, FC_CLIP)
        lfc = np.log2(fc)
        fdr = benjamini_hochberg(pvals.ravel()).reshape(pvals.shape) if pvals.size else pvals
    return DEArrays(
        targets=cells.names[keep],
        genes=np.asarray(genes).astype(str),
        target_mean=target_mean,
        ref_mean=ref_mean,
        target_membership=sizes[keep],
        ref_membership=int(n_ref),
        log2_fold_change=lfc,
        fold_change=fc,
        percent_change=pc,
        p_value=pvals,
        statistic=U,
        fdr=fdr,
        convention=convention,
    )


def differential_expression(
    adata, perturbation_column: str, control_label: str, convention: str = "cell-eval"
) -> pd.DataFrame:
    """DE of every perturbation of ``adata`` against ``control`` (log1p X, dense or sparse).

    Parameters
    ----------
    adata
        AnnData with log1p X.
    perturbation_column
        obs column holding perturbation labels.
    control_label
        Control label.
    convention
        ``"cell-eval"`` (BH per perturbation, log2 fold change) or ``"vcc2025"`` (BH across all rows, fold change
        clipped to [1/20, 20]).

    Returns
    -------
    pandas.DataFrame
        Columns as pdex's: ``target, feature, target_mean, ref_mean, target_membership, ref_membership,
        fold_change, log2_fold_change, percent_change, p_value, statistic, fdr``.
    """
    from vcclib.metrics.inputs import InputError, check_values

    labels = adata.obs[perturbation_column].astype(str).to_numpy()
    if control_label not in set(labels):
        raise InputError(f"control label {control_label!r} is missing from obs[{perturbation_column!r}]")
    check_values(adata.X, "X")
    cells = GroupedCells.from_labels(adata.X, labels, control_label)
    return de_arrays(cells, adata.var_names, convention).to_frame()


def ttest_scores(
    cells: GroupedCells, *, reference: str = "control", overestim_var: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """scanpy's ``rank_genes_groups`` t-test score of each non-control group, (groups × genes).

    Parameters
    ----------
    reference
        ``"control"``: each group against the control cells (GEARS). ``"rest"``: each group against all other
        non-control cells (Diversity by Design; controls excluded).
    overestim_var
        scanpy's ``t-test_overestim_var``: the rest's variance is divided by the group's size.

    Returns
    -------
    names, scores
        Non-control group labels and Welch t scores (NaN → 0, as scanpy).
    """
    ref = cells.control_index
    n_groups = cells.names.size
    mean, var = group_mean_var(cells.X, cells.codes, n_groups, ddof=1)
    sizes = cells.sizes.astype(np.float64)
    keep = np.flatnonzero(np.arange(n_groups) != ref)
    if reference == "control":
        mean_r, var_r, n_r = mean[ref][None, :], var[ref][None, :], np.full((keep.size, 1), sizes[ref])
    else:
        # rest = all non-control cells outside the group: from totals of sums and sums of squares
        n_tot = sizes[keep].sum()
        sum_g = mean[keep] * sizes[keep, None]
        sq_g = (var[keep] * np.maximum(sizes[keep, None] - 1, 0)) + sizes[keep, None] * mean[keep] ** 2
        n_r = (n_tot - sizes[keep])[:, None]
        mean_r = (sum_g.sum(0) - sum_g) / n_r
        var_r = ((sq_g.sum(0) - sq_g) - n_r * mean_r**2) / np.maximum(n_r - 1, 1)
    n_g = sizes[keep, None]
    n_rest_for_var = n_g if overestim_var else n_r
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = (mean[keep] - mean_r) / np.sqrt(var[keep] / n_g + var_r / n_rest_for_var)
    scores[np.isnan(scores)] = 0.0
    return cells.names[keep], scores
