r"""Calibrated effect calls: an empirical null from control-vs-control pseudo-perturbations.

Construction (one seed decides every draw):

* The control cells are split once at random into a **hold-out** block (``holdout_fraction``, at least the largest
  tested group size) and the **main** block. The main block is the reference of every test.
* A perturbation's cells (at most ``max_cells``, drawn at random) are scored against ``main \\ S'``, where ``S'``
  is a random set of main cells of the perturbation's size: so every test compares ``n`` cells with
  ``|main| − n`` cells.
* The null of size ``n``: ``n_null`` random subsets ``S`` of the main block, each scored against ``main \\ S`` with
  the same two statistics. These are exactly the comparisons a perturbation makes, with control cells in its place.
* The two statistics: the E-distance (pertpy convention: Euclidean, N² within-group pairs) in the top principal
  components, and the number of genes with Mann–Whitney DE at BH FDR < ``alpha`` within the comparison.
* Each statistic's empirical p-value is its rank among the null's; the calibrated p-value is the rank of the
  smaller of the two empirical p-values (min-p combination, as in non-parametric combination tests) among the
  null's own leave-one-out min-p values. FDR: Benjamini–Hochberg over the tested perturbations.
* **Calibration check**: groups of held-out control cells (never part of the null or the reference) are scored
  exactly like perturbations; their calibrated p-values must be uniform and at most ``alpha`` of them called.

Vectorised: a null of ``K`` subsets costs one (cells × cells) @ (cells × K) product for the E-distance and one
(K × cells) @ (cells × genes) product of within-main ranks for the Mann–Whitney U (the union of a subset and its
complement is always the main block, so ranks and the tie term are computed once). No Python loop over cells or
permutations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import false_discovery_control, rankdata

from vcclib.metrics.de import mwu_pvalues

#: block of null subsets processed at once (memory: cells × BLOCK floats)
BLOCK = 256


def _dense(X) -> np.ndarray:
    return X.toarray().astype(np.float64) if sp.issparse(X) else np.asarray(X, dtype=np.float64)


def pairwise_distances(X, Y=None) -> np.ndarray:
    """Euclidean distances between the rows of X and Y (float64, Gram trick)."""
    Y = X if Y is None else Y
    d2 = (X * X).sum(1)[:, None] + (Y * Y).sum(1)[None, :] - 2.0 * X @ Y.T
    np.maximum(d2, 0, out=d2)
    return np.sqrt(d2)


def tie_term(values: np.ndarray) -> np.ndarray:
    """Σ (t³ − t) over the tie groups of each column (the Mann–Whitney tie correction), vectorised over columns."""
    s = np.sort(values, axis=0)
    n, g = s.shape
    new = np.ones((n, g), dtype=bool)
    new[1:] = s[1:] != s[:-1]
    run = np.cumsum(new, axis=0) - 1 + np.arange(g)[None, :] * n  # run id, unique per column
    counts = np.bincount(run.ravel(order="F"), minlength=n * g).astype(np.float64)
    per_column = (counts**3 - counts).reshape(g, n).sum(1)
    return per_column


def bh_rows(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg within each row."""
    return false_discovery_control(p, axis=1) if p.size else p


def mwu_de_count(U: np.ndarray, tie: np.ndarray, n: int, m: int, alpha: float) -> np.ndarray:
    """Genes at BH FDR < alpha per row of U (rows: comparisons of n vs m cells; the engine's p-value formula)."""
    p = mwu_pvalues(U, np.broadcast_to(tie, U.shape), np.full(U.shape[0], n), float(m))
    return (bh_rows(p) < alpha).sum(1)


class SortedBlock:
    """Per-gene sorted values of the main control block (one flat ``searchsorted`` serves all genes).

    Gives exact Mann–Whitney U and tie terms of any group against ``main`` minus a few cells, without re-ranking.
    """

    def __init__(self, expr: np.ndarray, limit: float | None = None):
        """``limit``: the largest absolute value any queried group can hold (default: the block's own)."""
        self.n_cells, self.n_genes = expr.shape
        limit = float(np.nanmax(np.abs(expr))) if limit is None and expr.size else float(limit or 0.0)
        self.span = 2 * limit + 4.0
        self.offsets = np.arange(self.n_genes) * self.span
        self.flat = np.sort(expr, axis=0).T.ravel() + np.repeat(self.offsets, expr.shape[0])
        self.tie = tie_term(expr)

    def _flat(self, values: np.ndarray) -> np.ndarray:
        return values + self.offsets[None, :]

    def counts(self, values: np.ndarray, side: str) -> np.ndarray:
        """Flat positions of ``values`` (cells × genes) in the sorted columns."""
        return _count_in(self.flat, self._flat(values).ravel(), side).reshape(values.shape)


def _count_in(sorted_flat: np.ndarray, queries: np.ndarray, side: str) -> np.ndarray:
    """``searchsorted`` of unordered queries, made in sorted order (cache-friendly: several times faster)."""
    order = np.argsort(queries, kind="stable")
    out = np.empty(queries.shape, dtype=np.int64)
    out[order] = np.searchsorted(sorted_flat, queries[order], side=side)
    return out


def mwu_against_block(block: SortedBlock, group: np.ndarray, removed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """U statistic (group as x) and tie term of ``group`` vs the block without the cells ``removed`` (dense rows).

    U = Σ_g #(R < g) + ½ #(R = g) with R = block − removed; the tie term of the union is the block's, corrected for
    the values the group adds and the removed cells take away. Exact, equal to scipy's ``mannwhitneyu`` inputs.
    """
    offsets = block.offsets
    g_flat = group + offsets[None, :]
    r_sorted = np.sort(removed + offsets[None, :], axis=None)
    # flat positions count every earlier gene's cells too: subtract them (block: N per gene, removed: k per gene)
    start_block = np.arange(block.n_genes) * block.n_cells
    start_removed = np.arange(block.n_genes) * removed.shape[0]
    left = (
        block.counts(group, "left")
        - start_block
        - (_count_in(r_sorted, g_flat.ravel(), "left").reshape(group.shape) - start_removed)
    )
    right = (
        block.counts(group, "right")
        - start_block
        - (_count_in(r_sorted, g_flat.ravel(), "right").reshape(group.shape) - start_removed)
    )
    U = ((left + right) / 2.0).sum(0)
    # tie term: only values present in the group or the removed cells change their multiplicity
    g_sorted = np.sort(g_flat, axis=None)
    values = np.unique(np.concatenate([g_sorted, r_sorted]))
    in_block = _count_in(block.flat, values, "right") - _count_in(block.flat, values, "left")
    in_removed = _count_in(r_sorted, values, "right") - _count_in(r_sorted, values, "left")
    in_group = _count_in(g_sorted, values, "right") - _count_in(g_sorted, values, "left")
    t_old = in_block.astype(np.float64)
    t_new = t_old - in_removed + in_group
    delta = (t_new**3 - t_new) - (t_old**3 - t_old)
    gene = np.rint(values / block.span).astype(np.int64)
    tie = block.tie + np.bincount(gene, weights=delta, minlength=block.n_genes)
    return U, tie


def group_statistics(
    group_pcs, group_expr, D_main, main_pcs, block: SortedBlock, main_expr, removed, alpha: float
) -> tuple[float, int]:
    """E-distance and DE-gene count of one group of cells against the main block without the cells ``removed``.

    Parameters
    ----------
    group_pcs, group_expr
        The group's cells in PCA space and in gene space (dense).
    D_main, main_pcs, block, main_expr
        Distances within the main control block, its PCs, its sorted expression and its expression.
    removed
        Positions in the main block left out of the reference (as many as the group has cells).
    """
    n = group_pcs.shape[0]
    m = D_main.shape[0] - removed.size
    rowsum = D_main.sum(1)
    ref = rowsum.sum() - 2 * rowsum[removed].sum() + D_main[np.ix_(removed, removed)].sum()
    to_main = pairwise_distances(group_pcs, main_pcs)
    cross = to_main.sum() - to_main[:, removed].sum()
    within = pairwise_distances(group_pcs).sum()
    e = 2 * cross / (n * m) - within / n**2 - ref / m**2
    U, tie = mwu_against_block(block, group_expr, main_expr[removed])
    return float(e), int(mwu_de_count(U[None, :], tie, n, m, alpha)[0])


@dataclass
class NullDistribution:
    """The pseudo-perturbation null of one group size: E-distances and DE counts of ``n_null`` control subsets."""

    size: int
    edistance: np.ndarray
    n_de: np.ndarray

    def empirical_p(self, e: float, d: float) -> tuple[float, float]:
        """Rank p-values (1 + #null ≥ observed) / (K + 1) of an E-distance and a DE count."""
        k = self.edistance.size
        return (1 + (self.edistance >= e).sum()) / (k + 1), (1 + (self.n_de >= d).sum()) / (k + 1)

    def null_min_p(self) -> np.ndarray:
        """Leave-one-out min-p of every null subset (its rank among the others)."""
        k = self.edistance.size
        se, sd = np.sort(self.edistance), np.sort(self.n_de)
        pe = (1 + (k - np.searchsorted(se, self.edistance, side="left")) - 1) / k
        pd_ = (1 + (k - np.searchsorted(sd, self.n_de, side="left")) - 1) / k
        return np.minimum(pe, pd_)

    def calibrated_p(self, e: float, d: float) -> tuple[float, float, float]:
        """(p_edistance, p_de, p_calibrated) of an observed pair of statistics."""
        pe, pd_ = self.empirical_p(e, d)
        t = min(pe, pd_)
        return pe, pd_, (1 + (self.null_min_p() <= t).sum()) / (self.edistance.size + 1)

    def critical_edistance(self, alpha: float) -> float:
        """E-distance a group of this size must exceed to reach empirical p ≤ alpha on the E-distance alone."""
        return float(np.quantile(self.edistance, 1 - alpha))


def null_distribution(
    D_main, ranks_main, tie_main, size: int, n_null: int, alpha: float, rng: np.random.Generator
) -> NullDistribution:
    """E-distances and DE counts of ``n_null`` random subsets of ``size`` main cells vs the rest of the main block."""
    N = D_main.shape[0]
    m = N - size
    rowsum = D_main.sum(1)
    total = rowsum.sum()
    e_out, d_out = [], []
    for lo in range(0, n_null, BLOCK):
        k = min(BLOCK, n_null - lo)
        picks = rng.random((k, N)).argsort(axis=1)[:, :size]  # k random subsets, no loop over draws
        A = np.zeros((N, k))
        A[picks.T, np.arange(k)[None, :]] = 1.0
        DA = D_main @ A
        within = (A * DA).sum(0)
        cross = A.T @ rowsum - within
        rest = total - within - 2 * cross
        e_out.append(2 * cross / (size * m) - within / size**2 - rest / m**2)
        U = A.T @ ranks_main - size * (size + 1) / 2
        d_out.append(mwu_de_count(U, tie_main, size, m, alpha))
    return NullDistribution(size, np.concatenate(e_out), np.concatenate(d_out).astype(np.int64))


def calibrated_tests(
    pcs: np.ndarray,
    X,
    groups: dict[str, np.ndarray],
    control: np.ndarray,
    *,
    n_null: int = 1000,
    n_check: int = 100,
    max_cells: int = 200,
    min_cells: int = 30,
    holdout_fraction: float = 0.15,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Calibrated p-value and FDR of every group, and the calibration check on held-out control cells.

    Parameters
    ----------
    pcs
        Cells × principal components (all cells), the space of the E-distance.
    X
        Cells × genes log1p expression (sparse or dense), the space of the DE test.
    groups
        Group name → positions of its cells (groups may overlap: a high-MOI cell is in every group whose gRNA it
        carries).
    control
        Positions of the control cells.
    n_null, n_check
        Pseudo-perturbations per group size in the null, and held-out check groups per size.
    max_cells, min_cells
        Groups larger than ``max_cells`` are subsampled to it; groups smaller than ``min_cells`` are not tested.
    holdout_fraction
        Share of control cells held out for the calibration check (at least the largest tested size).

    Returns
    -------
    effects, calibration
        ``effects``: per group ``n_cells``, ``n_cells_tested``, ``edistance_cal`` (vs the main controls),
        ``n_de_cal``, ``p_edistance``, ``p_de``, ``p_calibrated``, ``q_calibrated`` (BH), ``critical_edistance``
        (null's 1 − alpha quantile at that size). ``calibration``: one row per check group (``size``,
        ``p_edistance``, ``p_de``, ``p_calibrated``, ``n_de``, ``called`` = p_calibrated ≤ alpha). ``attrs`` of
        both hold the settings.
    """
    rng = np.random.default_rng(seed)
    control = rng.permutation(np.asarray(control))
    # a group is tested at most at a third of the control cells: room for the hold-out and the reference
    max_cells = int(min(max_cells, control.size // 3 if n_check else control.size // 2))
    sizes = {g: min(len(idx), max_cells) for g, idx in groups.items() if len(idx) >= min_cells}
    largest = max(sizes.values(), default=min_cells)
    n_hold = max(int(round(holdout_fraction * control.size)), largest if n_check else 0)
    if control.size - n_hold < 2 * largest:
        raise ValueError(
            f"{control.size} control cells are too few for groups of {largest} cells: lower "
            f"max_cells or holdout_fraction"
        )
    hold, main = control[:n_hold], control[n_hold:]
    main_pcs = np.asarray(pcs[main], dtype=np.float64)
    main_expr = _dense(X[main])
    D_main = pairwise_distances(main_pcs)
    ranks_main = rankdata(main_expr, axis=0)
    limit = float(abs(X).max()) if sp.issparse(X) else float(np.abs(X).max())
    block = SortedBlock(main_expr, limit)
    nulls = {
        s: null_distribution(D_main, ranks_main, block.tie, s, n_null, alpha, rng) for s in sorted(set(sizes.values()))
    }

    def score(cells: np.ndarray, size: int) -> tuple[float, int]:
        removed = rng.choice(main.size, size=size, replace=False)
        return group_statistics(
            np.asarray(pcs[cells], dtype=np.float64),
            _dense(X[cells]),
            D_main,
            main_pcs,
            block,
            main_expr,
            removed,
            alpha,
        )

    rows = []
    for name, idx in groups.items():
        row = {"group": name, "n_cells": int(len(idx))}
        if name in sizes:
            size = sizes[name]
            cells = np.sort(rng.choice(idx, size=size, replace=False)) if len(idx) > size else np.asarray(idx)
            e, d = score(cells, size)
            pe, pd_, pc = nulls[size].calibrated_p(e, d)
            row.update(
                n_cells_tested=size,
                edistance_cal=e,
                n_de_cal=d,
                p_edistance=pe,
                p_de=pd_,
                p_calibrated=pc,
                critical_edistance=nulls[size].critical_edistance(alpha),
            )
        else:
            row.update(n_cells_tested=0)
        rows.append(row)
    effects = pd.DataFrame(rows).set_index("group")
    for column in ("edistance_cal", "n_de_cal", "p_edistance", "p_de", "p_calibrated", "critical_edistance"):
        if column not in effects:
            effects[column] = np.nan
    tested = effects["p_calibrated"].notna()
    effects["q_calibrated"] = np.nan
    if tested.any():
        effects.loc[tested, "q_calibrated"] = false_discovery_control(effects.loc[tested, "p_calibrated"])

    checks = []
    for size in nulls if n_check else []:
        for k in range(n_check):
            cells = hold[rng.choice(hold.size, size=size, replace=False)]
            e, d = score(cells, size)
            pe, pd_, pc = nulls[size].calibrated_p(e, d)
            checks.append(
                {
                    "size": size,
                    "check": k,
                    "edistance": e,
                    "n_de": d,
                    "p_edistance": pe,
                    "p_de": pd_,
                    "p_calibrated": pc,
                }
            )
    calibration = pd.DataFrame(
        checks, columns=["size", "check", "edistance", "n_de", "p_edistance", "p_de", "p_calibrated"]
    )
    calibration["called"] = calibration["p_calibrated"] <= alpha
    calibration["de_rule_called"] = calibration["n_de"] > 0
    settings = dict(
        n_null=n_null,
        n_check=n_check,
        max_cells=max_cells,
        min_cells=min_cells,
        n_control_main=int(main.size),
        n_control_holdout=int(hold.size),
        alpha=alpha,
        seed=seed,
        null_sizes=sorted(nulls),
    )
    effects.attrs.update(settings)
    calibration.attrs.update(settings)
    return effects, calibration


def calibration_summary(calibration: pd.DataFrame, alpha: float = 0.05) -> dict:
    """Share of held-out check groups called at alpha (Wilson 95% interval) and the uniformity of their p-values."""
    from scipy.stats import binomtest, kstest

    n = int(len(calibration))
    if n == 0:
        return {"n_checks": 0}
    called = int(calibration["called"].sum())
    ci = binomtest(called, n).proportion_ci(method="wilson")
    de_called = int(calibration["de_rule_called"].sum())
    de_ci = binomtest(de_called, n).proportion_ci(method="wilson")
    return {
        "n_checks": n,
        "n_called": called,
        "share_called": called / n,
        "share_called_ci": [ci.low, ci.high],
        "n_de_rule_called": de_called,
        "share_de_rule": de_called / n,
        "share_de_rule_ci": [de_ci.low, de_ci.high],
        "ks_uniform_p": float(kstest(calibration["p_calibrated"], "uniform").pvalue),
        "alpha": alpha,
        "sizes": sorted({int(s) for s in calibration["size"]}),
    }


def qq_table(calibration: pd.DataFrame) -> pd.DataFrame:
    """Observed vs expected quantiles of the check groups' calibrated p-values (the QQ plot's numbers)."""
    p = np.sort(calibration["p_calibrated"].to_numpy())
    expected = (np.arange(1, p.size + 1) - 0.5) / max(p.size, 1)
    return pd.DataFrame({"expected": expected, "observed": p})
