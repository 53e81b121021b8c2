"""Does a network explain held-out perturbation data? Regression of each gene on its regulators (geneRNIB-style).

For every target gene with at least one regulator in the network, its expression in *perturbed* cells is
regressed (ridge, α = 1, intercept) on the expression of its top ``k`` regulators (by importance), and scored by
out-of-fold R² with the folds grouped by perturbation: every fold's cells belong to perturbations the regression
never saw (geneRNIB's "regression 1" idea, here on cells rather than pseudobulk, because the embedded screens
have too few perturbations for a pseudobulk regression). The null draws the same number of regulators uniformly
from the network's regulator pool (never the target itself). A network explains the data when its regulators
predict held-out perturbations better than random regulators do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from vcclib.errors import VccError


def _ridge_oof(X: np.ndarray, y: np.ndarray, folds: np.ndarray, alpha: float) -> np.ndarray:
    """Out-of-fold ridge predictions of y from X (with intercept), one fold label per row."""
    predictions = np.empty_like(y)
    for fold in np.unique(folds):
        test = folds == fold
        train = ~test
        mean_x, mean_y = X[train].mean(axis=0), y[train].mean()
        Xc = X[train] - mean_x
        gram = Xc.T @ Xc + alpha * np.eye(X.shape[1])
        coef = np.linalg.solve(gram, Xc.T @ (y[train] - mean_y))
        predictions[test] = (X[test] - mean_x) @ coef + mean_y
    return predictions


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    total = np.sum((y - y.mean()) ** 2)
    return float(1 - np.sum((y - pred) ** 2) / total) if total > 0 else np.nan


def regression_scores(
    edges: pd.DataFrame,
    adata: AnnData,
    *,
    regulators_per_target: int = 5,
    n_folds: int = 5,
    alpha: float = 1.0,
    max_cells: int = 3000,
    seed: int = 0,
) -> pd.DataFrame:
    """Per target: held-out R² from its network regulators and from as many random regulators.

    Parameters
    ----------
    edges
        A network (:data:`vcclib.grn.inference.EDGE_COLUMNS`); only regulators and targets measured in ``adata``
        are used.
    adata
        Perturbation data in the project schema; its perturbed (non-control) cells are used, and the control
        cells too when there is a single perturbation (Kang's IFN-β: fit on one condition, score on the other).
    regulators_per_target
        ``k``: the top-``k`` regulators of each target (fewer where the network has fewer).
    n_folds
        Folds over perturbation labels (at most the number of perturbations).
    max_cells
        Subsample the perturbed cells (seeded; 0: all).

    Returns
    -------
    DataFrame
        ``target``, ``n_regulators``, ``r2`` (network regulators), ``r2_random`` (random regulators), ``gain``.
    """
    perturbed = ~adata.obs["is_control"].astype(bool).to_numpy()
    if adata.obs.loc[perturbed, "perturbation"].nunique() < 2:  # one stimulation (Kang): control is a group too
        perturbed = np.ones(adata.n_obs, dtype=bool)
    positions = np.flatnonzero(perturbed)
    rng = np.random.default_rng(seed)
    if max_cells and len(positions) > max_cells:
        positions = np.sort(rng.choice(positions, size=max_cells, replace=False))
    labels = adata.obs["perturbation"].astype(str).to_numpy()[positions]
    unique = np.unique(labels)
    if len(unique) < 2:
        raise VccError("held-out regression needs perturbed cells of at least two perturbations")
    fold_of = {p: i % min(n_folds, len(unique)) for i, p in enumerate(rng.permutation(unique))}
    folds = np.array([fold_of[p] for p in labels])
    measured = set(adata.var_names)
    net = edges[
        edges["regulator"].isin(measured) & edges["target"].isin(measured) & (edges["regulator"] != edges["target"])
    ]
    pool = np.array(sorted(set(net["regulator"])), dtype=object)
    genes = sorted(set(net["target"]) | set(pool))
    column = {g: i for i, g in enumerate(genes)}
    X = adata[positions, genes].X
    X = np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float64)
    rows = []
    top = (
        net.sort_values("importance", ascending=False, kind="mergesort")
        .groupby("target", sort=True)
        .head(regulators_per_target)
    )
    for target, block in top.groupby("target", sort=True):
        y = X[:, column[target]]
        if y.var() == 0:
            continue
        regs = block["regulator"].tolist()
        others = pool[pool != target]
        random_regs = rng.choice(others, size=min(len(regs), len(others)), replace=False)
        fitted = _r2(y, _ridge_oof(X[:, [column[r] for r in regs]], y, folds, alpha))
        null = _r2(y, _ridge_oof(X[:, [column[r] for r in random_regs]], y, folds, alpha))
        rows.append({"target": target, "n_regulators": len(regs), "r2": fitted, "r2_random": null})
    table = pd.DataFrame(rows, columns=["target", "n_regulators", "r2", "r2_random"])
    table["gain"] = table["r2"] - table["r2_random"]
    return table


def summarise_regression(table: pd.DataFrame) -> dict[str, float]:
    """Mean R² (network, random), mean gain and the share of targets where the network wins."""
    if table.empty:
        return {"n_targets": 0, "r2": np.nan, "r2_random": np.nan, "gain": np.nan, "share_better": np.nan}
    return {
        "n_targets": int(len(table)),
        "r2": float(table["r2"].mean()),
        "r2_random": float(table["r2_random"].mean()),
        "gain": float(table["gain"].mean()),
        "share_better": float((table["gain"] > 0).mean()),
    }
