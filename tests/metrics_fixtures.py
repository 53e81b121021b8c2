"""Synthetic perturbation data for the metrics tests (synthetic on purpose: small, seeded, with edge cases).

``make_pair`` builds a real AnnData and a prediction of it whose X is log1p of small integer counts (so ties
are everywhere), with: perturbations named after genes (``G0``, ``G1``, ... so PDS must leave the target gene
out), one perturbation with no effect (no DE genes), an all-zero gene, a constant gene, and a prediction with
two perturbation labels swapped.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

CONTROL = "non-targeting"


def make_adata(
    n_perts: int = 6,
    n_cells: int = 40,
    n_ctrl: int = 80,
    n_genes: int = 60,
    *,
    seed: int = 0,
    sparse: bool = True,
    effect_seed: int = 1,
    swap: tuple[int, int] | None = None,
    dtype=np.float32,
) -> ad.AnnData:
    """One AnnData: control plus ``n_perts`` perturbations; perturbation 0 has no effect."""
    rng = np.random.default_rng(seed)
    effects_rng = np.random.default_rng(effect_seed)
    base = effects_rng.gamma(0.6, 2.0, size=n_genes)
    base[0] = 0.0  # all-zero gene
    effects = np.exp(
        effects_rng.normal(0, 0.9, size=(n_perts, n_genes)) * (effects_rng.random((n_perts, n_genes)) < 0.3)
    )
    effects[0] = 1.0  # a perturbation with no effect
    labels = [CONTROL] * n_ctrl
    rates = [np.tile(base, (n_ctrl, 1))]
    names = [f"G{i + 1}" for i in range(n_perts)]
    order = list(range(n_perts))
    if swap is not None:
        order[swap[0]], order[swap[1]] = order[swap[1]], order[swap[0]]
    for i, name in enumerate(names):
        labels += [name] * n_cells
        rates.append(np.tile(base * effects[order[i]], (n_cells, 1)))
    lam = np.vstack(rates)
    counts = rng.poisson(lam).astype(np.float64)
    X = np.log1p(counts)
    X[:, 1] = np.log1p(3.0)  # constant gene
    X = X.astype(dtype)
    obs = pd.DataFrame({"perturbation": labels}, index=[f"c{seed}_{i}" for i in range(len(labels))])
    var = pd.DataFrame(index=[f"G{i}" for i in range(n_genes)])
    adata = ad.AnnData(X=sp.csr_matrix(X) if sparse else X, obs=obs, var=var)
    adata.uns["vcc"] = {"control_label": CONTROL}
    return adata


def make_pair(sparse: bool = True, **kwargs) -> tuple[ad.AnnData, ad.AnnData]:
    """(pred, real): the prediction is a fresh draw with perturbations 2 and 3 swapped."""
    real = make_adata(seed=0, sparse=sparse, **kwargs)
    pred = make_adata(seed=7, sparse=sparse, swap=(2, 3), **kwargs)
    return pred, real


def make_counts(
    n_perts: int = 8,
    n_cells: int = 30,
    n_ctrl: int = 60,
    n_genes: int = 80,
    *,
    seed: int = 0,
    effect_seed: int = 1,
    sparse: bool = True,
    column: str = "perturbation",
    depth: float = 3.0,
) -> ad.AnnData:
    """Raw counts (the vcc2026 profile's input): control plus ``n_perts`` perturbations named after genes.

    Edge cases on purpose: perturbation G1 has no effect (an empty real DE set), gene G0 is all zero, small
    Poisson counts (ties everywhere), knock-downs of the target gene, and a few perturbations with < 10 real
    DE genes (the lfc_nmae gate-size rule).
    """
    rng = np.random.default_rng(seed)
    erng = np.random.default_rng(effect_seed)
    base = erng.gamma(0.6, depth, size=n_genes)
    base[0] = 0.0
    strength = np.linspace(0.2, 1.2, n_perts)
    effects = np.exp(
        erng.normal(0, 1.0, (n_perts, n_genes)) * strength[:, None] * (erng.random((n_perts, n_genes)) < 0.3)
    )
    effects[0] = 1.0
    for i in range(1, n_perts):
        if i + 1 < n_genes:
            effects[i, i + 1] = 0.1  # knock-down of the target gene G{i+1}
    labels = [CONTROL] * n_ctrl
    lam = [np.tile(base, (n_ctrl, 1))]
    for i in range(n_perts):
        labels += [f"G{i + 1}"] * n_cells
        lam.append(np.tile(base * effects[i], (n_cells, 1)))
    X = rng.poisson(np.vstack(lam)).astype(np.float32)
    obs = pd.DataFrame({column: labels}, index=[f"c{seed}_{i}" for i in range(len(labels))])
    var = pd.DataFrame(index=[f"G{i}" for i in range(n_genes)])
    adata = ad.AnnData(X=sp.csr_matrix(X) if sparse else X, obs=obs, var=var)
    adata.uns["vcc"] = {"control_label": CONTROL}
    return adata


def make_counts_pair(**kwargs) -> tuple[ad.AnnData, ad.AnnData]:
    """(pred, real) of raw counts: the prediction is a fresh draw with other effects for half the genes."""
    real = make_counts(seed=0, **kwargs)
    pred = make_counts(seed=7, effect_seed=kwargs.pop("pred_effect_seed", 1), **kwargs)
    return pred, real


def make_adversarial(seed: int = 0, *, sparse: bool = True, dtype=np.float32) -> ad.AnnData:
    """Inputs that stress E-distances (synthetic on purpose): near-duplicate control cells (jitter 1e-6, where
    the Gram expansion loses digits), a perturbation of two cells, a constant gene, and one perturbation far
    from all others (every value log1p(5000))."""
    a = make_adata(n_perts=8, n_cells=20, n_ctrl=60, n_genes=40, seed=seed, sparse=False, dtype=np.float64)
    X = a.X.copy()
    labels = a.obs["perturbation"].astype(str).to_numpy()
    rng = np.random.default_rng(seed + 100)
    ctrl = np.flatnonzero(labels == CONTROL)
    X[ctrl[1::2]] = X[ctrl[0::2]][: ctrl[1::2].size] + rng.normal(0, 1e-6, X[ctrl[1::2]].shape).clip(0)
    X[labels == "G8"] = np.log1p(5000.0)
    keep = np.ones(labels.size, dtype=bool)
    keep[np.flatnonzero(labels == "G7")[2:]] = False
    X = X[keep]
    X[:, 2] = 1.0
    X = X.astype(dtype)
    obs = a.obs[keep].copy()
    obs.index = [f"s{seed}_{i}" for i in range(obs.shape[0])]
    out = ad.AnnData(X=sp.csr_matrix(X) if sparse else X, obs=obs, var=a.var.copy())
    out.uns["vcc"] = {"control_label": CONTROL}
    return out
