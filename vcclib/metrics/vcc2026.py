"""The VCC 2026 suite (profile ``vcc2026``): cell-eval2 0.20.0's six scored metrics on raw counts.

Read from cell-eval2's source (``metrics/discrimination.py``, ``metrics/delta.py``, ``metrics/direction.py``,
``metrics/de.py``, ``moments.py``) and its specification (``docs/vcc2026_metrics/``). Inputs are raw counts;
the **reference's** control cells are the origin on both sides (the predicted effect is taken against them and
they are the reference group of the prediction's DE), so the prediction's own control cells are never read.
Target genes are excluded: ``pds_cosine`` drops every panel target gene from every distance, the other five
drop the perturbation's own target gene.

``pds_cosine``
    cosine distance of ``bulk_lognorm`` effects; ``1 − k/(n−1)`` with k the mid-rank of the true match.
``expr_mse_unbiased_capped_norm``
    ``Σ_p N_p / Σ_p D_p``: jackknife-corrected squared error over the measured effect (one value).
``de_wilcoxon_direction_fidelity_yield_raw``
    ``k / max(n_pred, n_real)`` over significant, adjudicable genes.
``de_wilcoxon_direction_reach_raw``
    deepest prefix of the prediction's ranking of the real significant genes with sign purity ≥ 0.9, / n_real.
``de_wilcoxon_sig_jaccard``
    Jaccard of the significant sets (1 when both are empty).
``de_wilcoxon_lfc_nmae``
    Σ|lfĉ − lfc| / Σ|lfc| over the real significant genes; scored only with ≥ 10 such genes.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from vcclib.metrics.counts import bulk_lognorm, group_sums, jackknife_groups
from vcclib.metrics.registry import register
from vcclib.metrics.vcc2026_de import ALPHA, counts_de, counts_de_pair

FAMILY = "vcc2026"
SOURCE = "cell-eval2 0.20.0 (docs/vcc2026_metrics/, metrics/{discrimination,delta,direction,de}.py)"
REACH_PURITY_FLOOR = 0.9
MIN_GATE_SIZE = 10
#: the six scored metrics, in the specification's order
SCORED = (
    "pds_cosine",
    "expr_mse_unbiased_capped_norm",
    "de_wilcoxon_direction_fidelity_yield_raw",
    "de_wilcoxon_direction_reach_raw",
    "de_wilcoxon_sig_jaccard",
    "de_wilcoxon_lfc_nmae",
)
#: diagnostics cell-eval2 also reports in the profile (components of the expression metric)
DIAGNOSTICS = ("expr_mse_unbiased", "expr_mse_unbiased_capped", "expr_distance_unbiased")
#: below this across-perturbation budget / claimed correction ratio cell-eval2 flags the submission
BUDGET_FLAG_RATIO = 0.7


class CountsContext:
    """Cached inputs of the VCC 2026 metrics for one (prediction, reference) pair of raw counts.

    Parameters
    ----------
    pred, real
        :class:`~vcclib.metrics.pseudobulk.GroupedCells` of raw counts; ``real`` holds the control.
    genes
        Gene names (the shared var axis).
    control_source
        ``"real"`` (the competition): the reference's control cells are the prediction's origin. ``"pred"``:
        the prediction's own control cells (used by the replicate anchor, where each half has its own).
    """

    def __init__(self, pred, real, genes, *, control_source: str = "real"):
        self.pred, self.real = pred, real
        self.genes = np.asarray(genes).astype(str)
        self.control = real.control
        self.control_source = control_source
        self.perts = np.array([p for p in real.names if p != real.control])
        self.notes: list[str] = []
        gene_index = {g: i for i, g in enumerate(self.genes)}
        self.target_col = np.array([gene_index.get(p, -1) for p in self.perts])

    @property
    def n_perts(self) -> int:
        return int(self.perts.size)

    def series(self, values, index=None) -> pd.Series:
        return pd.Series(np.asarray(values, dtype=np.float64), index=self.perts if index is None else index)

    # pseudobulks -------------------------------------------------------------------------------------
    @cached_property
    def _real_sums(self) -> np.ndarray:
        return group_sums(self.real.X, self.real.codes, self.real.names.size)

    @cached_property
    def _pred_sums(self) -> np.ndarray:
        return group_sums(self.pred.X, self.pred.codes, self.pred.names.size)

    def share_means(self) -> None:
        """Give ``pred`` and ``real`` their pseudobulk means (``GroupedCells.means``) from the group sums."""
        for cells, sums in ((self.pred, self._pred_sums), (self.real, self._real_sums)):
            cells.set_means(sums / np.maximum(cells.sizes, 1)[:, None])

    @cached_property
    def bulk_real(self) -> np.ndarray:
        return bulk_lognorm(self._real_sums[np.searchsorted(self.real.names, self.perts)])

    @cached_property
    def bulk_pred(self) -> np.ndarray:
        return bulk_lognorm(self._pred_sums[np.searchsorted(self.pred.names, self.perts)])

    @cached_property
    def bulk_ctrl(self) -> np.ndarray:
        return bulk_lognorm(self._real_sums[[self.real.control_index]])[0]

    @cached_property
    def bulk_pred_ctrl(self) -> np.ndarray:
        return bulk_lognorm(self._pred_sums[[self.pred.control_index]])[0]

    @cached_property
    def jk_real(self) -> np.ndarray:
        """Jackknife of every real group (control included), in ``real.names`` order."""
        return jackknife_groups(self.real.X, *self.real.order())

    @cached_property
    def jk_pred(self) -> np.ndarray:
        """Jackknife of the predicted perturbations, in :attr:`perts` order."""
        groups = np.searchsorted(self.pred.names, self.perts)
        return jackknife_groups(self.pred.X, *self.pred.order(), groups=groups)[groups]

    # DE ----------------------------------------------------------------------------------------------
    @cached_property
    def _de_pair(self):
        """(real DE, predicted DE) against the real control cells, from one rank-sum pass.

        When :attr:`de_real` is given already (the baseline's context reuses the submission's), only the real
        control cells are ranked with the prediction: the same predicted table, without ranking the real
        perturbations again.
        """
        real = _control_only(self.real) if "de_real" in self.__dict__ else self.real
        return counts_de_pair(self.pred, real, self.genes)

    @cached_property
    def de_real(self):
        return self._de_pair[0] if self.control_source == "real" else counts_de(self.real, self.genes)

    @cached_property
    def de_pred(self):
        return self._de_pair[1] if self.control_source == "real" else counts_de(self.pred, self.genes)

    @cached_property
    def own_gene_de(self) -> np.ndarray:
        """(perts × kept genes) True at each perturbation's own target gene."""
        kept = self.de_real.kept
        return kept[None, :] == self.target_col[:, None]


def _control_only(cells):
    """``cells`` reduced to its control cells (a :class:`~vcclib.metrics.pseudobulk.GroupedCells` of one group)."""
    from vcclib.metrics.pseudobulk import GroupedCells, stack_rows

    rows = np.sort(cells.rows(cells.control))
    return GroupedCells.from_labels(stack_rows([(cells.X, rows)]), np.full(rows.size, cells.control), cells.control)


# pds_cosine ----------------------------------------------------------------------------------------------
def cosine_distance(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """[rows of A × rows of B] cosine distance; a zero-norm operand gives similarity 0 (distance 1); in [0, 2]."""
    sim = A @ B.T
    denom = np.sqrt(np.einsum("ig,ig->i", A, A))[:, None] * np.sqrt(np.einsum("jg,jg->j", B, B))[None, :]
    out = np.zeros_like(sim)
    nz = denom != 0
    out[nz] = sim[nz] / denom[nz]
    return np.clip(1.0 - out, 0.0, 2.0)


def midrank(row: np.ndarray, j: int) -> float:
    """0-based rank of ``row[j]`` in ``row``, a tied block taking the mean of the positions it spans."""
    x = row[j]
    if np.isnan(x):
        n_less = int(np.count_nonzero(~np.isnan(row)))
        return n_less + (row.size - n_less - 1) / 2.0
    return int(np.count_nonzero(row < x)) + (int(np.count_nonzero(row == x)) - 1) / 2.0


def _pds_cosine(ctx: CountsContext):
    origin = ctx.bulk_pred_ctrl if ctx.control_source == "pred" else ctx.bulk_ctrl
    pred_eff, real_eff = ctx.bulk_pred - origin, ctx.bulk_real - ctx.bulk_ctrl
    panel = np.unique(ctx.target_col[ctx.target_col >= 0])
    if panel.size:
        keep = np.ones(ctx.genes.size, dtype=bool)
        keep[panel] = False
        pred_eff, real_eff = pred_eff[:, keep], real_eff[:, keep]
    D = cosine_distance(pred_eff, real_eff)
    n = ctx.n_perts
    denominator = n - 1
    if denominator <= 0:
        return ctx.series(np.ones(n))
    return ctx.series([1.0 - midrank(D[i], i) / denominator for i in range(n)])


# expression error ----------------------------------------------------------------------------------------
def _row_weights(ctx: CountsContext) -> np.ndarray:
    n_row = np.where(ctx.target_col >= 0, ctx.genes.size - 1, ctx.genes.size).astype(np.float64)
    return np.divide(1.0, n_row, out=np.zeros_like(n_row), where=n_row > 0)


def across_perturbation_budget(pred: np.ndarray, target_col: np.ndarray, weights: np.ndarray) -> float:
    """B = Σ_g Σ_{p retaining g} w_p (b̂_p,g − weighted mean)²: the spread a submission's profiles actually have."""
    n_rows, n_genes = pred.shape
    dev = pred - pred.mean(axis=0)
    s1 = np.einsum("ij,i->j", dev, weights)
    s2 = np.einsum("ij,ij,i->j", dev, dev, weights)
    wsum = np.full(n_genes, float(weights.sum()))
    cnt = np.full(n_genes, float(n_rows))
    for k in np.flatnonzero(target_col >= 0):
        col = target_col[k]
        v = dev[k, col]
        s1[col] -= weights[k] * v
        s2[col] -= weights[k] * v * v
        wsum[col] -= weights[k]
        cnt[col] -= 1.0
    ok = (cnt >= 2.0) & (wsum > 0.0)
    if not ok.any():
        return 0.0
    return float(np.maximum(s2[ok] - s1[ok] ** 2 / wsum[ok], 0.0).sum())


def _sq_without_target(a: np.ndarray, b: np.ndarray, target_col: np.ndarray) -> np.ndarray:
    d = a - b
    summed = np.einsum("ij,ij->i", d, d)
    rows = np.flatnonzero(target_col >= 0)
    summed[rows] -= d[rows, target_col[rows]] ** 2
    return summed


def expression_terms(ctx: CountsContext) -> dict[str, np.ndarray]:
    """Per perturbation: numerators (uncapped, capped) and the denominator, gene-averaged; cached on ctx."""
    if "_expr_terms" in ctx.__dict__:
        return ctx.__dict__["_expr_terms"]
    n_row = np.where(ctx.target_col >= 0, ctx.genes.size - 1, ctx.genes.size).astype(np.float64)
    weights = _row_weights(ctx)
    real_rows = np.searchsorted(ctx.real.names, ctx.perts)
    c_real, c_ctrl = ctx.jk_real[real_rows], ctx.jk_real[ctx.real.control_index]
    c_pred = ctx.jk_pred
    sq_pred = _sq_without_target(ctx.bulk_pred, ctx.bulk_real, ctx.target_col)
    sq_real = _sq_without_target(ctx.bulk_real, ctx.bulk_ctrl[None, :], ctx.target_col)
    credited = np.minimum(c_pred, c_real)
    claim = float((credited * weights).sum())
    ratio = 1.0
    if claim > 0.0:
        ratio = across_perturbation_budget(ctx.bulk_pred, ctx.target_col, weights) / claim
        if ratio < 1.0:
            credited = credited * ratio
    if ratio < BUDGET_FLAG_RATIO:
        ctx.notes.append(
            f"the prediction's across-perturbation spread is {ratio:.3g}× its claimed sampling correction "
            f"(< {BUDGET_FLAG_RATIO}): its per-cell scatter cancels in the pseudobulk, unlike a sample of cells "
            "(cell-eval2 flags this; the correction is bounded so the score is not inflated)"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = {
            "expr_mse_unbiased": (sq_pred - c_pred - c_real) / n_row,
            "expr_mse_unbiased_capped": (sq_pred - credited - c_real) / n_row,
            "expr_distance_unbiased": (sq_real - c_real - c_ctrl) / n_row,
            "budget_ratio": np.array(ratio),
        }
    ctx.__dict__["_expr_terms"] = terms
    return terms


def _expr_term(ctx: CountsContext, name: str = "expr_mse_unbiased_capped"):
    return ctx.series(expression_terms(ctx)[name])


def _expr_norm(ctx: CountsContext) -> float:
    terms = expression_terms(ctx)
    num, den = terms["expr_mse_unbiased_capped"], terms["expr_distance_unbiased"]
    ok = np.isfinite(num) & np.isfinite(den)
    if not ok.any():
        return float("nan")
    if den[ok].sum() <= 0:
        from vcclib.metrics.inputs import InputError

        raise InputError(
            f"expr_mse_unbiased_capped_norm: the reference's corrected effects sum to {den[ok].sum():.4g} over "
            f"{int(ok.sum())} perturbations (not positive): at this cell depth the reference carries no measurable "
            "aggregate effect, so the ratio is undefined (cell-eval2 refuses the same panel)"
        )
    return float(num[ok].sum() / den[ok].sum())


# DE metrics ----------------------------------------------------------------------------------------------
def _on_real_axis(ctx: CountsContext, values: np.ndarray) -> np.ndarray:
    """Predicted DE values (perts × the prediction's kept genes) on the reference's kept genes (NaN: absent).

    The two tables share their genes when the reference's control is the origin of both; with each side's own
    control (the replicate anchor) their 5 CPM gates differ and cell-eval2 joins them on gene names.
    """
    real_kept, pred_kept = ctx.de_real.kept, ctx.de_pred.kept
    if np.array_equal(real_kept, pred_kept):
        return values
    out = np.full((values.shape[0], real_kept.size), np.nan)
    pos = np.searchsorted(real_kept, pred_kept)
    found = (pos < real_kept.size) & (real_kept[np.minimum(pos, real_kept.size - 1)] == pred_kept)
    out[:, pos[found]] = values[:, found]
    return out


def _de_sets(ctx: CountsContext) -> dict[str, np.ndarray]:
    if "_de_sets" in ctx.__dict__:
        return ctx.__dict__["_de_sets"]
    real, pred = ctx.de_real, ctx.de_pred
    if not np.array_equal(real.targets, pred.targets):
        raise ValueError("DE target sets differ between the prediction and the reference")
    own = ctx.own_gene_de
    lr = real.log2_fold_change
    lp = _on_real_axis(ctx, pred.log2_fold_change)
    present = ~np.isnan(_on_real_axis(ctx, pred.p_value)) | ~np.isnan(lp)
    defined_r = ~np.isnan(lr) & (lr != 0)  # adjudicable: a defined, non-zero reference fold change
    committed = ~np.isnan(lp) & (lp != 0)
    own_pred = pred.kept[None, :] == ctx.target_col[:, None]
    out = {
        "sig_r": real.significant(ALPHA) & ~own,
        "sig_p": (_on_real_axis(ctx, pred.p_adj) < ALPHA) & ~own,  # NaN (absent) compares False
        "n_sig_p": (pred.significant(ALPHA) & ~own_pred).sum(1),  # over the prediction's own table
        "present": present,
        "lfc_p": lp,
        "p_adj_p": _on_real_axis(ctx, pred.p_adj),
        "p_p": _on_real_axis(ctx, pred.p_value),
        "defined_r": defined_r,
        "match": defined_r & committed & (np.sign(lp) == np.sign(lr)),
    }
    ctx.__dict__["_de_sets"] = out
    return out


def _fidelity_yield_raw(ctx: CountsContext):
    s = _de_sets(ctx)
    n_conf = s["sig_r"].sum(1)
    scored = s["sig_p"] & s["defined_r"]  # sig_p is False where the prediction's table lacks the gene
    n_pred, k = scored.sum(1), (scored & s["match"]).sum(1)
    den = np.maximum(n_pred, n_conf).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return ctx.series(np.where(den > 0, k / den, np.nan))


def _sig_jaccard(ctx: CountsContext):
    s = _de_sets(ctx)
    inter = (s["sig_r"] & s["sig_p"]).sum(1)
    union = s["sig_r"].sum(1) + s["n_sig_p"] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return ctx.series(np.where(union == 0, 1.0, inter / np.maximum(union, 1)))


def _lfc_nmae(ctx: CountsContext, min_gate_size: int = MIN_GATE_SIZE):
    s = _de_sets(ctx)
    lr, lp = ctx.de_real.log2_fold_change, s["lfc_p"]
    gate = s["sig_r"] & np.isfinite(lr)
    lp = np.where(np.isfinite(lp), lp, 0.0)
    values, index = [], []
    for i in range(ctx.n_perts):
        g = gate[i]
        if g.sum() < min_gate_size:
            continue
        den = np.abs(lr[i, g]).mean()
        if not np.isfinite(den) or den == 0.0:
            continue
        values.append(np.abs(lp[i, g] - lr[i, g]).mean() / den)
        index.append(ctx.perts[i])
    return pd.Series(values, index=np.asarray(index, dtype=object), dtype=np.float64)


def _reach_raw(ctx: CountsContext, purity_floor: float = REACH_PURITY_FLOOR):
    s = _de_sets(ctx)
    name_rank = np.argsort(np.argsort(ctx.de_real.genes, kind="stable"), kind="stable")
    rank_padj = np.where(np.isnan(s["p_adj_p"]), np.inf, s["p_adj_p"])
    rank_p = np.where(np.isnan(s["p_p"]), np.inf, s["p_p"])
    abs_lfc = np.where(np.isnan(s["lfc_p"]), -np.inf, np.abs(s["lfc_p"]))
    out = np.full(ctx.n_perts, np.nan)
    for i in range(ctx.n_perts):
        n_real = int(s["sig_r"][i].sum())
        if n_real == 0:
            continue
        pool = np.flatnonzero(s["sig_r"][i] & s["present"][i])  # the genes both tables carry
        order = pool[
            np.lexsort((name_rank[pool], -abs_lfc[i, pool], rank_p[i, pool], rank_padj[i, pool], ~s["sig_p"][i, pool]))
        ]
        n_denom = np.cumsum(s["defined_r"][i, order])
        n_match = np.cumsum(s["match"][i, order])
        with np.errstate(divide="ignore", invalid="ignore"):
            purity = n_match / n_denom
        hit = (n_denom > 0) & (purity >= purity_floor)
        k_star = int(n_denom[hit].max()) if hit.any() else 0
        out[i] = k_star / n_real
    return ctx.series(out)


_COUNTS = {
    "pseudobulk": "log1p(5e4 · summed counts / group total)",
    "reference": "real control cells (both sides)",
    "cells": "raw counts",
}
_DE = {
    "gene_space": "genes above 5 CPM in the real control, own target gene excluded",
    "pseudobulk": "arithmetic mean of counts normalised to 1e6 per cell",
    "reference": "real control cells (both sides)",
    "cells": "raw counts; Wilcoxon rank-sum, BH per perturbation, α 0.05",
}
register(
    "pds_cosine",
    _pds_cosine,
    family=FAMILY,
    best_value=1.0,
    source=SOURCE,
    needs="counts",
    conventions={**_COUNTS, "gene_space": "all genes but every panel target gene"},
    description="VCC 2026 PDS: 1 − mid-rank of the true perturbation among real effects by cosine distance / (n−1).",
)
register(
    "expr_mse_unbiased_capped_norm",
    _expr_norm,
    family=FAMILY,
    best_value=0.0,
    source=SOURCE,
    needs="counts",
    conventions={**_COUNTS, "gene_space": "all genes but the perturbation's own"},
    description="Σ jackknife-corrected squared error / Σ corrected measured effect (one value; 1 = control).",
)
register(
    "de_wilcoxon_direction_fidelity_yield_raw",
    _fidelity_yield_raw,
    family=FAMILY,
    best_value=1.0,
    source=SOURCE,
    needs="counts",
    conventions=_DE,
    description="Correct-sign significant calls / max(# predicted calls, # real significant genes).",
)
register(
    "de_wilcoxon_direction_reach_raw",
    _reach_raw,
    family=FAMILY,
    best_value=1.0,
    source=SOURCE,
    needs="counts",
    conventions=_DE,
    description="Deepest prefix of the prediction's ranking of real significant genes with sign purity ≥ 0.9.",
)
register(
    "de_wilcoxon_sig_jaccard",
    _sig_jaccard,
    family=FAMILY,
    best_value=1.0,
    source=SOURCE,
    needs="counts",
    conventions=_DE,
    description="Jaccard index of the real and predicted significant gene sets.",
)
register(
    "de_wilcoxon_lfc_nmae",
    _lfc_nmae,
    family=FAMILY,
    best_value=0.0,
    source=SOURCE,
    needs="counts",
    conventions=_DE,
    description="Σ|predicted − real log2FC| / Σ|real log2FC| over ≥ 10 real significant genes.",
)
for _name, _desc in (
    ("expr_mse_unbiased", "jackknife-corrected squared error per gene (uncapped correction)"),
    ("expr_mse_unbiased_capped", "numerator of expr_mse_unbiased_capped_norm"),
    ("expr_distance_unbiased", "denominator of expr_mse_unbiased_capped_norm (reference only)"),
):
    register(
        _name,
        _expr_term,
        family=FAMILY,
        best_value=None,
        source=SOURCE,
        needs="counts",
        kwargs={"name": _name},
        conventions={**_COUNTS, "gene_space": "all genes but the perturbation's own"},
        description=f"Diagnostic: {_desc}.",
    )
