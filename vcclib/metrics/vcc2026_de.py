"""The differential-expression table of the VCC 2026 suite (cell-eval2 0.20.0, CPU path; spec §3).

For every perturbation against the **reference's** control cells (on both sides):

- counts normalised per cell to 1e6 (scanpy ``normalize_total``: ``x / (ℓ/1e6)``);
- ``lfc = log2((m_pert + ε) / (m_ctrl + ε))``, arithmetic means of those values, ε = 1e-9;
- two-sided Wilcoxon rank-sum (Mann–Whitney U, normal approximation with tie and continuity correction, as
  pdex/numba-mwu) on ``log1p`` of the normalised values;
- genes kept only where the control's mean normalised value exceeds 5 CPM (the control alone decides, so the
  kept set is the same for every perturbation and for every submission);
- Benjamini–Hochberg within each perturbation over the kept genes (NaN p-values held out).

The rank sums come from the engine's CSR kernel (:func:`vcclib.metrics.de.rank_sums`): control values are
ranked once per gene and reused for every perturbation, of the reference and of the prediction alike
(:func:`counts_de_pair`). The values ranked are numpy's ``log1p(x / factor)`` of the stored counts (the factor
``ℓ/1e6`` per cell), gene chunk by gene chunk: numba gathers the quotients, numpy logs them in place (an ulp of
libm's ``log1p`` against numpy's AVX-512 code would change ties) and numba ranks them, so no logged copy of a
matrix is built (:func:`vcclib.metrics.de._scaled_rank_sums`); the means come from the counts in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from vcclib.metrics.de import mwu_pvalues, rank_sums

TARGET_SUM = 1e6
EPSILON = 1e-9
MIN_CPM = 5.0
ALPHA = 0.05


@dataclass
class CountsDE:
    """DE of each perturbation against control over the kept genes (arrays: perturbations × kept genes)."""

    targets: np.ndarray
    genes: np.ndarray  # kept gene names
    kept: np.ndarray  # column indices of the kept genes in the full gene axis
    log2_fold_change: np.ndarray
    p_value: np.ndarray
    p_adj: np.ndarray
    target_mean: np.ndarray
    ref_mean: np.ndarray

    def significant(self, alpha: float = ALPHA) -> np.ndarray:
        return self.p_adj < alpha  # NaN compares False

    def columns(self) -> dict:
        """Columns of :meth:`to_frame` (labels as :class:`~vcclib.metrics.de.Labels`), in its order."""
        from vcclib.metrics.de import Labels

        n_t, n_g = self.p_value.shape
        return {
            "target": Labels.rows(self.targets, n_g),
            "feature": Labels.tiled(self.genes, n_t),
            "target_mean": self.target_mean.ravel(),
            "ref_mean": np.tile(self.ref_mean, n_t),
            "log2_fold_change": self.log2_fold_change.ravel(),
            "p_value": self.p_value.ravel(),
            "p_adj": self.p_adj.ravel(),
        }

    def to_frame(self):
        """Long table (target, feature, target_mean, ref_mean, log2_fold_change, p_value, p_adj)."""
        from vcclib.metrics.de import long_frame

        return long_frame(self.columns())

    def to_arrow(self):
        """:meth:`to_frame` as a pyarrow Table, built from the arrays."""
        from vcclib.metrics.de import long_arrow

        return long_arrow(self.columns())


def cpm_factor(X) -> tuple[sp.csr_matrix, np.ndarray]:
    """(X as canonical float CSR, the float64 factor ``ℓ/1e6`` per cell): ``X / factor[row]`` is the matrix
    normalised to 1e6 per cell (a cell without counts takes factor 1 and stays zero). X is not modified."""
    from vcclib.metrics import _counts_kernel as kernel
    from vcclib.metrics.pseudobulk import as_float_matrix

    X = as_float_matrix(sp.csr_matrix(X))  # canonical (sorted, no duplicates), copied only when it is not
    factor = kernel.row_sums(X.indptr, X.data) / TARGET_SUM
    return X, factor + (factor == 0)


def cpm(X) -> sp.csr_matrix:
    """Counts normalised to 1e6 per cell, float64 CSR (zero-count cells stay zero); X is not modified (the
    result shares its index arrays)."""
    from vcclib.metrics import _counts_kernel as kernel

    X, factor = cpm_factor(X)
    # the index arrays are shared with X (read only: the result is canonical and only its values change)
    out = sp.csr_matrix((kernel.scaled_rows(X.indptr, X.data, factor), X.indices, X.indptr), shape=X.shape)
    out.has_canonical_format = True
    return out


def bh_rows(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg within each row, NaN held out (as cell-eval2)."""
    from vcclib.metrics.de import benjamini_hochberg

    out = np.full(p.shape, np.nan)
    if not np.isnan(p).any():
        return benjamini_hochberg(p, axis=1) if p.size else out
    for i, row in enumerate(p):
        ok = ~np.isnan(row)
        if ok.any():
            out[i, ok] = benjamini_hochberg(row[ok])
    return out


def _table(names, groups, U, T, sizes, means, n_ref: float, ref_mean, kept, genes) -> CountsDE:
    """The :class:`CountsDE` of the groups ``groups`` (rows of U, T, sizes and means) over the kept genes."""
    U, T = U[np.ix_(groups, kept)], T[np.ix_(groups, kept)]
    p = mwu_pvalues(U, T, sizes[groups], n_ref)
    target_mean = means[groups][:, kept]
    lfc = np.log2((target_mean + EPSILON) / (ref_mean + EPSILON))
    return CountsDE(
        targets=names[groups],
        genes=np.asarray(genes).astype(str)[kept],
        kept=kept,
        log2_fold_change=lfc,
        p_value=p,
        p_adj=bh_rows(p),
        target_mean=target_mean,
        ref_mean=ref_mean,
    )


def _normalised(cells):
    """(X as canonical CSR, its per-cell CPM factor, the CPM matrix's group means); the rank sums log the
    scaled counts themselves (see the module's docstring)."""
    from vcclib.metrics._counts_kernel import scaled_group_means

    X, factor = cpm_factor(cells.X)
    order, starts = cells.order()
    return X, factor, scaled_group_means(X.indptr, X.indices, X.data, factor, order, starts, X.shape[1])


def counts_de(cells, genes, min_cpm: float = MIN_CPM) -> CountsDE:
    """DE of every non-control group of ``cells`` (:class:`~vcclib.metrics.pseudobulk.GroupedCells` of raw
    counts) against its control group; see the module docstring."""
    ref = cells.control_index
    X, factor, means = _normalised(cells)
    kept = np.flatnonzero(means[ref] > min_cpm)
    # rank sums of every gene, then the kept columns: each gene's test reads that gene only, and a column
    # selection of the matrix costs more than ranking the (sparse, lowly expressed) genes left out
    U, T = rank_sums(X, cells.codes, cells.names.size, ref, *cells.order(), factor=factor)
    groups = np.flatnonzero(np.arange(cells.names.size) != ref)
    sizes = cells.sizes
    return _table(cells.names, groups, U, T, sizes, means, float(sizes[ref]), means[ref, kept], kept, genes)


def counts_de_pair(pred, real, genes, min_cpm: float = MIN_CPM) -> tuple[CountsDE, CountsDE]:
    """(DE of ``real``, DE of ``pred``), both against the **real** control cells, from one rank-sum pass.

    Equals ``counts_de(real)`` and ``counts_de`` of ``pred`` with its control cells replaced by the real ones
    (:func:`vcclib.metrics.evaluate.with_real_controls`), without stacking the two matrices: the real control's
    values are ranked once per gene for both sides, and the prediction's own control cells are never read.
    """
    from vcclib.metrics.de import rank_sums_against

    ref = real.control_index
    real_X, real_factor, real_means = _normalised(real)
    pred_X, pred_factor, pred_means = _normalised(pred)
    kept = np.flatnonzero(real_means[ref] > min_cpm)
    n_real = real.names.size
    U, T = rank_sums_against(
        real_X,
        real.codes,
        n_real,
        ref,
        pred_X,
        pred.codes,
        pred.names.size,
        factors=(real_factor, pred_factor),
        skip_other=pred.control_index,  # the prediction's own control cells are not compared
    )
    n_ref, ref_mean = float(real.sizes[ref]), real_means[ref, kept]
    real_groups = np.flatnonzero(np.arange(n_real) != ref)
    pred_groups = np.flatnonzero(np.arange(pred.names.size) != pred.control_index)
    de_real = _table(real.names, real_groups, U, T, real.sizes, real_means, n_ref, ref_mean, kept, genes)
    de_pred = _table(
        pred.names, pred_groups, U[n_real:], T[n_real:], pred.sizes, pred_means, n_ref, ref_mean, kept, genes
    )
    return de_real, de_pred
