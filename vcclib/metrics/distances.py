"""Distribution distances between cell populations: E-distance (scPerturb and pertpy/cell-eval conventions),
MMD, the E-distance permutation test, and cell-eval's ``pearson_edistance``.

All pairwise sums are computed in row blocks (Gram trick, float64), so memory stays O(block × cells) and no
cell × cell matrix over all cells is ever built.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from vcclib.metrics.registry import register

BLOCK = 1024


def _dense(X) -> np.ndarray:
    return X.toarray().astype(np.float64) if sp.issparse(X) else np.asarray(X, dtype=np.float64)


def pairwise_sum(X, Y=None, *, squared: bool = False) -> float:
    """Σ_ij d(x_i, y_j) (Euclidean, or squared Euclidean); ``Y=None`` means within X (zero diagonal)."""
    X = _dense(X)
    same = Y is None
    Y = X if same else _dense(Y)
    nx, ny = (X * X).sum(1), (Y * Y).sum(1)
    total = 0.0
    for lo in range(0, X.shape[0], BLOCK):
        hi = min(lo + BLOCK, X.shape[0])
        d2 = nx[lo:hi, None] + ny[None, :] - 2.0 * (X[lo:hi] @ Y.T)
        np.maximum(d2, 0, out=d2)
        if same:
            d2[np.arange(hi - lo), np.arange(lo, hi)] = 0.0
        total += float(d2.sum() if squared else np.sqrt(d2).sum())
    return total


def edistance(X, Y, convention: str = "scperturb") -> float:
    """E-distance 2δ − σ_X − σ_Y between the rows of X and of Y.

    Parameters
    ----------
    convention
        ``"scperturb"``: squared Euclidean distances, within-group means over the N(N−1) off-diagonal pairs
        (scPerturb ``edistance.py``). ``"pertpy"``: plain Euclidean, within-group means over all N² pairs
        including the zero diagonal (pertpy ``Edistance`` and cell-eval ``pearson_edistance``).
    """
    n, m = X.shape[0], Y.shape[0]
    if convention == "scperturb":
        delta = pairwise_sum(X, Y, squared=True) / (n * m)
        sx = pairwise_sum(X, squared=True) / (n * (n - 1)) if n > 1 else 0.0
        sy = pairwise_sum(Y, squared=True) / (m * (m - 1)) if m > 1 else 0.0
    elif convention == "pertpy":
        delta = pairwise_sum(X, Y) / (n * m)
        sx, sy = pairwise_sum(X) / n**2, pairwise_sum(Y) / m**2
    else:
        raise ValueError(f"E-distance convention {convention!r}: use 'scperturb' or 'pertpy'")
    return 2.0 * delta - sx - sy


def mmd(X, Y, kernel: str = "linear", gamma: float = 1.0, degree: int = 2) -> float:
    """Maximum mean discrepancy mean(K_XX) + mean(K_YY) − 2 mean(K_XY) (pertpy ``MMD``; kernel linear, rbf, poly)."""
    X, Y = _dense(X), _dense(Y)
    if kernel == "linear":
        mx, my = X.mean(0), Y.mean(0)
        return float(mx @ mx + my @ my - 2 * mx @ my)

    def kmean(A, B):
        total = 0.0
        for lo in range(0, A.shape[0], BLOCK):
            G = A[lo : lo + BLOCK] @ B.T
            if kernel == "rbf":
                d2 = (A[lo : lo + BLOCK] ** 2).sum(1)[:, None] + (B**2).sum(1)[None, :] - 2 * G
                total += np.exp(-gamma * np.maximum(d2, 0)).sum()
            elif kernel == "poly":
                total += ((gamma * G) ** degree).sum()
            else:
                raise ValueError(f"kernel {kernel!r}: use linear, rbf or poly")
        return total / (A.shape[0] * B.shape[0])

    return float(kmean(X, X) + kmean(Y, Y) - 2 * kmean(X, Y))


def etest(X, Y, n_perms: int = 1000, seed: int | None = 0, convention: str = "pertpy") -> tuple[float, float]:
    """E-distance permutation test (pertpy ``DistanceTest``): returns (E-distance, p-value).

    Labels of X ∪ Y are permuted ``n_perms`` times; p = max(#{E_perm > E_obs}, 1) / n_perms. Pairwise distances
    of the union (only these two groups) are computed once and every permutation is a pair of quadratic forms.
    """
    Z = np.vstack([_dense(X), _dense(Y)])
    n, m = X.shape[0], Y.shape[0]
    nz = (Z * Z).sum(1)
    D = nz[:, None] + nz[None, :] - 2 * Z @ Z.T
    np.maximum(D, 0, out=D)
    np.fill_diagonal(D, 0)
    if convention == "pertpy":
        D = np.sqrt(D)

    def estat(A):  # A: (n+m) × k indicator of the X group
        B = 1.0 - A
        DA = D @ A
        sxy = (DA * B).sum(0)
        sxx = (DA * A).sum(0)
        syy = ((D @ B) * B).sum(0)
        if convention == "pertpy":
            return 2 * sxy / (n * m) - sxx / n**2 - syy / m**2
        return 2 * sxy / (n * m) - sxx / max(n * (n - 1), 1) - syy / max(m * (m - 1), 1)

    observed = float(estat(np.r_[np.ones(n), np.zeros(m)][:, None])[0])
    rng = np.random.default_rng(seed)
    exceed = 0
    for lo in range(0, n_perms, 256):
        k = min(256, n_perms - lo)
        A = np.zeros((n + m, k))
        for j in range(k):
            A[rng.permutation(n + m)[:n], j] = 1.0
        exceed += int((estat(A) > observed).sum())
    return observed, max(exceed, 1) / n_perms


#: largest distance matrix (elements) that :func:`mean_pairwise` hands to scikit-learn whole
EXACT_LIMIT = 25_000_000


def mean_pairwise(X, Y=None, *, exact_limit: int = EXACT_LIMIT):
    """Mean Euclidean distance between the rows of X and Y (within X, zero diagonal, when ``Y`` is None), with
    the arithmetic of ``sklearn.metrics.pairwise_distances(X, Y).mean()`` -- cell-eval's E-distance.

    scikit-learn's result depends on its arithmetic: the Gram expansion ``−2·XYᵀ + ‖x‖² + ‖y‖²`` (which loses
    digits for near-duplicate cells), float32 inputs upcast in chunks but rounded back to float32 before the
    square root and a float32 mean, sparse products for sparse input. Up to ``exact_limit`` matrix elements
    the matrix is therefore computed by scikit-learn itself on the cells as stored (same dtype, same sparsity),
    so the value is cell-eval's to the last bit; beyond it (where cell-eval would need a matrix of that size)
    the Gram expansion is summed in float64 row blocks. Returns a numpy scalar of scikit-learn's dtype (float32
    for float32 cells), so that sums of these means round as cell-eval's do.
    """
    n = X.shape[0]
    m = n if Y is None else Y.shape[0]
    if n * m <= exact_limit:
        from sklearn.metrics import pairwise_distances

        return pairwise_distances(X, Y, metric="euclidean").mean()
    return np.float64(pairwise_sum(X, Y) / (n * m))


def _pearson_edistance(ctx):
    """Pearson across perturbations of E(real_p, real_ctrl) vs E(pred_p, pred_ctrl), pertpy convention, with
    cell-eval's arithmetic (see :func:`mean_pairwise`)."""
    from scipy.stats import pearsonr

    if ctx.n_perts < 2:
        return float("nan")
    out = []
    for side in (ctx.real, ctx.pred):
        ctrl = side.cells(side.control, dense=False)
        s_ctrl = mean_pairwise(ctrl)
        values = []
        for p in ctx.perts:
            x = side.cells(p, dense=False)
            values.append(2 * mean_pairwise(x, ctrl) - mean_pairwise(x) - s_ctrl)  # in sklearn's dtype
        out.append(np.array(values, dtype=np.float64))
    return float(pearsonr(out[0], out[1]).statistic)


def _pred_real(ctx, kind: str = "edistance"):
    values = []
    for p in ctx.perts:
        x, y = ctx.pred.cells(p), ctx.real.cells(p)
        values.append(edistance(x, y, "pertpy") if kind == "edistance" else mmd(x, y))
    return ctx.series(values)


register(
    "pearson_edistance",
    _pearson_edistance,
    family="cell-eval",
    best_value=1.0,
    needs="cells",
    min_perturbations=3,
    conventions={
        "gene_space": "all genes",
        "cells": "single cells, Euclidean, N² within-group pairs",
        "reference": "each file's own control",
    },
    source="cell-eval 0.8.2 metrics/_anndata.py::edistance",
    description="Pearson across perturbations of real and predicted E-distances to control (one value).",
)
register(
    "edistance_pred_real",
    _pred_real,
    family="pertpy",
    best_value=0.0,
    needs="cells",
    kwargs={"kind": "edistance"},
    conventions={
        "gene_space": "all genes",
        "cells": "single cells, Euclidean, N² within-group pairs",
        "reference": "real cells of the same perturbation",
    },
    source="pertpy 1.0.3 tools/_distances/_distances.py::Edistance",
    description="E-distance between predicted and real cells of each perturbation.",
)
register(
    "mmd_pred_real",
    _pred_real,
    family="pertpy",
    best_value=0.0,
    needs="cells",
    kwargs={"kind": "mmd"},
    conventions={
        "gene_space": "all genes",
        "cells": "single cells, linear kernel",
        "reference": "real cells of the same perturbation",
    },
    source="pertpy 1.0.3 tools/_distances/_distances.py::MMD",
    description="Linear-kernel MMD between predicted and real cells of each perturbation.",
)
