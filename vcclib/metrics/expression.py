"""cell-eval's expression metrics on pseudobulks (``metrics/_anndata.py`` of cell-eval 0.8.2), vectorised.

Pseudobulk = mean of log1p over a perturbation's cells; Δ = pseudobulk − the same file's control pseudobulk
(the prediction's own control cells for the predicted Δ, as cell-eval).
"""

from __future__ import annotations

import numpy as np

from vcclib.metrics.registry import register

CE = "cell-eval 0.8.2 metrics/_anndata.py"
PB = "mean of log1p over cells"
OWN = "each file's own control (predicted Δ uses the prediction's control cells)"


def rowwise_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair (NaN where a row is constant, as scipy's pearsonr)."""
    xm = x - x.mean(axis=1, keepdims=True)
    ym = y - y.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (xm * ym).sum(1) / np.sqrt((xm * xm).sum(1) * (ym * ym).sum(1))
    return np.clip(r, -1.0, 1.0)


def _mae(ctx):
    return ctx.series(np.abs(ctx.bulk_pred - ctx.bulk_real).mean(axis=1))


def _mse(ctx):
    return ctx.series(((ctx.bulk_pred - ctx.bulk_real) ** 2).mean(axis=1))


def _mae_delta(ctx):
    return ctx.series(np.abs(ctx.delta_pred - ctx.delta_real).mean(axis=1))


def _mse_delta(ctx):
    return ctx.series(((ctx.delta_pred - ctx.delta_real) ** 2).mean(axis=1))


def _pearson_delta(ctx):
    return ctx.series(rowwise_pearson(ctx.delta_pred, ctx.delta_real))


def pairwise_without_target(pred: np.ndarray, real: np.ndarray, exclude: np.ndarray, metric: str) -> np.ndarray:
    """D[p, q] = dist(pred_p, real_q) over all genes but gene ``exclude[p]`` (−1: none left out).

    Distances over all genes are computed once (cdist) and the left-out gene's term removed per row, so the cost
    is one (P × Q × genes) pass instead of one per perturbation.
    """
    from scipy.spatial.distance import cdist

    rows = np.flatnonzero(exclude >= 0)
    g = exclude[rows]
    a = pred[rows, g][:, None]  # pred_p at its own gene
    b = real[:, g].T  # real_q at p's gene, (rows × Q)
    if metric == "l1":
        D = cdist(pred, real, "cityblock")
        D[rows] -= np.abs(a - b)
        return np.maximum(D, 0)
    if metric == "l2":
        D = cdist(pred, real, "sqeuclidean")
        D[rows] -= (a - b) ** 2
        return np.sqrt(np.maximum(D, 0))
    if metric == "cosine":
        dot = pred @ real.T
        n_pred = (pred**2).sum(1)[:, None] * np.ones((1, real.shape[0]))
        n_real = np.ones((pred.shape[0], 1)) * (real**2).sum(1)[None, :]
        dot[rows] -= a * b
        n_pred[rows] -= a**2
        n_real[rows] -= b**2
        with np.errstate(divide="ignore", invalid="ignore"):
            D = 1.0 - dot / np.sqrt(np.maximum(n_pred, 0) * np.maximum(n_real, 0))
        return D
    raise ValueError(f"unknown distance {metric!r}")


def _discrimination(ctx, metric: str = "l1", exclude_target_gene: bool = True):
    """PDS: 1 − rank(p among real Δ_q by distance to predicted Δ_p) / N (cell-eval ≥ 0.6, 1 best)."""
    gene_index = {g: i for i, g in enumerate(ctx.genes)}
    exclude = np.array([gene_index.get(p, -1) if exclude_target_gene else -1 for p in ctx.perts])
    D = pairwise_without_target(ctx.delta_pred, ctx.delta_real, exclude, metric)
    own = D[np.arange(ctx.n_perts), np.arange(ctx.n_perts)][:, None]
    rank = (D < own).sum(axis=1)
    return ctx.series(1.0 - rank / ctx.n_perts)


def _clustering_agreement(
    ctx,
    real_resolution: float = 1.0,
    pred_resolutions: tuple = (0.2, 0.4, 0.6, 0.8, 1.0, 1.5, 2.0),
    n_neighbors: int = 15,
):
    """Leiden (igraph) on real vs predicted centroids; best AMI over the predicted resolutions (cell-eval).

    Undefined (NaN) with fewer than 3 perturbations: a neighbour graph of one or two centroids has no clusters to
    agree on (cell-eval's scanpy call fails there and the metric is skipped).
    """
    if len(ctx.bulk_real) < 3:
        return float("nan")
    import anndata as ad
    import scanpy as sc
    from sklearn.metrics import adjusted_mutual_info_score

    def leiden(centroids, resolution, adata=None):
        if adata is None:
            adata = ad.AnnData(X=centroids)
            sc.pp.neighbors(adata, n_neighbors=min(n_neighbors, adata.n_obs - 1), use_rep="X")
        sc.tl.leiden(adata, resolution=resolution, key_added="c", flavor="igraph", n_iterations=2)
        return adata, adata.obs["c"].to_numpy()

    _, real_labels = leiden(ctx.bulk_real, real_resolution)
    best = 0.0
    pred_adata = None
    for r in pred_resolutions:
        pred_adata, labels = leiden(ctx.bulk_pred, r, pred_adata)
        best = max(best, adjusted_mutual_info_score(real_labels, labels))
    return float(best)


_delta = {"gene_space": "all genes", "pseudobulk": PB, "reference": OWN}
_raw = {"gene_space": "all genes", "pseudobulk": PB, "reference": "none (raw pseudobulk)"}
register(
    "mae",
    _mae,
    family="cell-eval",
    best_value=0.0,
    conventions=_raw,
    source=CE,
    description="Mean absolute error of the perturbation pseudobulks over genes.",
)
register(
    "mse",
    _mse,
    family="cell-eval",
    best_value=0.0,
    conventions=_raw,
    source=CE,
    description="Mean squared error of the perturbation pseudobulks over genes.",
)
register(
    "mae_delta",
    _mae_delta,
    family="cell-eval",
    best_value=0.0,
    conventions=_delta,
    source=CE,
    description="Mean absolute error of Δ (perturbation − control pseudobulk).",
)
register(
    "mse_delta",
    _mse_delta,
    family="cell-eval",
    best_value=0.0,
    conventions=_delta,
    source=CE,
    description="Mean squared error of Δ (perturbation − control pseudobulk).",
)
register(
    "pearson_delta",
    _pearson_delta,
    family="cell-eval",
    best_value=1.0,
    conventions=_delta,
    source=CE,
    description="Pearson correlation of predicted and real Δ over all genes.",
)
for _m in ("l1", "l2", "cosine"):
    register(
        f"discrimination_score_{_m}",
        _discrimination,
        family="cell-eval",
        best_value=1.0,
        min_perturbations=3,
        conventions={**_delta, "gene_space": "all genes but the gene named like the perturbation"},
        source=CE,
        kwargs={"metric": _m},
        description=f"PDS: 1 − normalised rank of the true perturbation among real Δ by {_m} distance.",
    )
register(
    "clustering_agreement",
    _clustering_agreement,
    family="cell-eval",
    best_value=1.0,
    min_perturbations=3,
    conventions={"gene_space": "all genes", "pseudobulk": PB, "reference": "none (centroids)"},
    source=CE,
    description="Best AMI of Leiden clusters of predicted centroids against real centroids (one value).",
)
