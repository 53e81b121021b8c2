"""cell-eval's DE metrics (``metrics/_de.py`` and ``_types/_de.py`` of cell-eval 0.8.2) on DE arrays.

As cell-eval, fdr and log2 fold changes are compared in float32 (cell-eval casts its DE tables to Float32),
significance is ``fdr < 0.05``, genes are ordered by |log2FC| descending with ties in gene order (polars'
ordinal rank), and perturbations without significant real genes are *missing* (not 0) for the metrics that
cell-eval computes by joining on significant rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vcclib.metrics.registry import register

CE = "cell-eval 0.8.2 metrics/_de.py, _types/_de.py"
CONV = {
    "gene_space": "significant DE genes (fdr < 0.05)",
    "pseudobulk": "expm1(mean log1p) for fold changes",
    "reference": "each file's own control (DE of prediction uses its control cells)",
}


def _sig(de, ctx):
    return de.significant(ctx.fdr_threshold)


def _lfc32(de):
    return de.log2_fold_change.astype(np.float32)


def _top_lists(de, sig):
    """Per perturbation: indices of significant genes ordered by |lfc| desc (ties in gene order)."""
    key = -np.abs(_lfc32(de)).astype(np.float64)
    out = []
    for k, s in zip(key, sig):
        idx = np.flatnonzero(s)  # ascending gene order; a stable sort of this subset keeps ties in gene order
        out.append(idx[np.argsort(k[idx], kind="stable")])
    return out


def _overlap(ctx, k: int | None = None, metric: str = "overlap"):
    sig_r, sig_p = _sig(ctx.de_real, ctx), _sig(ctx.de_pred, ctx)
    if not sig_r.any() or not sig_p.any():
        return ctx.series(np.zeros(ctx.n_perts))
    real_lists, pred_lists = _top_lists(ctx.de_real, sig_r), _top_lists(ctx.de_pred, sig_p)
    out = np.zeros(ctx.n_perts)
    for i, (r, p) in enumerate(zip(real_lists, pred_lists)):
        size = r.size if metric == "overlap" else p.size
        k_eff = min(size if not k else k, size)
        if k_eff:
            out[i] = np.intersect1d(r[:k_eff], p[:k_eff]).size / k_eff
    return ctx.series(out)


def _nsig(ctx, which: str = "real"):
    de = ctx.de_real if which == "real" else ctx.de_pred
    return ctx.series(_sig(de, ctx).sum(axis=1))


def _recall(ctx):
    sig_r, sig_p = _sig(ctx.de_real, ctx), _sig(ctx.de_pred, ctx)
    n = sig_r.sum(1)
    has = n > 0
    return ctx.series((sig_r & sig_p).sum(1)[has] / n[has], index=ctx.perts[has])


def _direction_match(ctx):
    sig_r = _sig(ctx.de_real, ctx)
    same = np.sign(_lfc32(ctx.de_real)) == np.sign(_lfc32(ctx.de_pred))
    n = sig_r.sum(1)
    has = n > 0
    return ctx.series((same & sig_r).sum(1)[has] / n[has], index=ctx.perts[has])


def _average_ranks(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x, method="average")


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 2:
        return float("nan")
    rx, ry = _average_ranks(x), _average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float((rx * ry).sum() / den) if den > 0 else float("nan")


def _spearman_lfc_sig(ctx):
    sig_r = _sig(ctx.de_real, ctx)
    lr = _lfc32(ctx.de_real).astype(np.float64)
    lp = _lfc32(ctx.de_pred).astype(np.float64)
    values, index = [], []
    for i, s in enumerate(sig_r):
        if s.any():
            values.append(_spearman(lr[i, s], lp[i, s]))
            index.append(ctx.perts[i])
    return pd.Series(values, index=np.asarray(index, dtype=object), dtype=np.float64)


def _spearman_sig(ctx):
    n_real = _sig(ctx.de_real, ctx).sum(1)
    n_pred = _sig(ctx.de_pred, ctx).sum(1)
    has = n_real > 0
    if not has.any():
        return 1.0
    return _spearman(n_real[has].astype(float), n_pred[has].astype(float))


def _auc(ctx, method: str = "pr"):
    from sklearn.metrics import auc, average_precision_score, roc_curve

    labels = _sig(ctx.de_real, ctx)
    q = np.clip(ctx.de_pred.fdr.astype(np.float32), np.float32(1e-10), np.float32(1.0))
    scores = -np.log10(q)
    out = np.full(ctx.n_perts, np.nan)
    for i in range(ctx.n_perts):
        y = labels[i]
        if not (0 < y.sum() < y.size):
            continue
        if method == "pr":
            out[i] = average_precision_score(y, scores[i])
        else:
            fpr, tpr, _ = roc_curve(y, scores[i])
            out[i] = auc(fpr, tpr)
    return ctx.series(out)


for _metric in ("overlap", "precision"):
    for _k in (None, 50, 100, 200, 500):
        _label = _k if _k else "N"
        register(
            f"{_metric}_at_{_label}",
            _overlap,
            family="cell-eval",
            best_value=1.0,
            conventions=CONV,
            source=CE,
            kwargs={"k": _k, "metric": _metric},
            needs="de",
            description=f"{_metric.capitalize()} of the top-{_label} significant genes (by |log2FC|), "
            "real vs predicted (overlap_at_N: DES of VCC 2025).",
        )
register(
    "de_spearman_sig",
    _spearman_sig,
    family="cell-eval",
    best_value=1.0,
    conventions=CONV,
    source=CE,
    min_perturbations=3,
    needs="de",
    description="Spearman, across perturbations with real DE genes, of the numbers of significant genes (one value).",
)
register(
    "de_direction_match",
    _direction_match,
    family="cell-eval",
    best_value=1.0,
    conventions=CONV,
    source=CE,
    needs="de",
    description="Fraction of real significant genes whose predicted log2FC has the same sign.",
)
register(
    "de_spearman_lfc_sig",
    _spearman_lfc_sig,
    family="cell-eval",
    best_value=1.0,
    conventions=CONV,
    source=CE,
    needs="de",
    description="Spearman of real and predicted log2FC over real significant genes.",
)
register(
    "de_sig_genes_recall",
    _recall,
    family="cell-eval",
    best_value=1.0,
    conventions=CONV,
    source=CE,
    needs="de",
    description="Fraction of real significant genes also significant in the prediction.",
)
register(
    "de_nsig_counts_real",
    _nsig,
    family="cell-eval",
    best_value=None,
    conventions=CONV,
    source=CE,
    needs="de",
    kwargs={"which": "real"},
    description="Number of significant genes in the real DE.",
)
register(
    "de_nsig_counts_pred",
    _nsig,
    family="cell-eval",
    best_value=None,
    conventions=CONV,
    source=CE,
    needs="de",
    kwargs={"which": "pred"},
    description="Number of significant genes in the predicted DE.",
)
register(
    "pr_auc",
    _auc,
    family="cell-eval",
    best_value=1.0,
    conventions=CONV,
    source=CE,
    needs="de",
    kwargs={"method": "pr"},
    description="Average precision of −log10(pred fdr) for real significance.",
)
register(
    "roc_auc",
    _auc,
    family="cell-eval",
    best_value=1.0,
    conventions=CONV,
    source=CE,
    needs="de",
    kwargs={"method": "roc"},
    description="ROC AUC of −log10(pred fdr) for real significance.",
)
