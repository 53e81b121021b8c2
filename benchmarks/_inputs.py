"""Synthetic inputs shared by the speed benchmarks (``whole_process.py``, ``metrics_vs_cell_eval.py``).

Synthetic on purpose (a speed test, not data): Poisson counts with sparse multiplicative per-perturbation
effects on a gamma-distributed base expression; the log1p version is library-size normalised to 10,000 counts
(``x · 1e4/ℓ`` in float32, as scanpy's ``normalize_total``) and log1p'd, sparse CSR with sorted indices as
scanpy writes it.
"""

from __future__ import annotations

from pathlib import Path

CONTROL = "non-targeting"
#: design → (perturbations, cells per perturbation, control cells, genes)
SIZES = {
    "warm": (4, 100, 150, 400),
    "tiny": (3, 20, 40, 60),
    "small": (20, 200, 1000, 2000),
    "medium": (50, 300, 3000, 8000),
    "large": (200, 300, 5000, 8000),
}


def make_counts(n_perts, n_cells, n_ctrl, n_genes, seed, effect_seed=1):
    """AnnData of raw counts (float32 CSR): ``n_ctrl`` control cells, then ``n_perts`` groups of ``n_cells``."""
    import anndata as ad
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    rng, erng = np.random.default_rng(seed), np.random.default_rng(effect_seed)
    base = erng.gamma(0.3, 1.5, size=n_genes)
    effects = np.exp(erng.normal(0, 0.7, (n_perts, n_genes)) * (erng.random((n_perts, n_genes)) < 0.1))
    labels = np.array([CONTROL] * n_ctrl + [f"G{i}" for i in range(n_perts) for _ in range(n_cells)])
    rows = []
    for lo in range(0, labels.size, 2000):
        lab = labels[lo : lo + 2000]
        lam = np.tile(base, (lab.size, 1))
        pert = np.array([int(x[1:]) if x != CONTROL else -1 for x in lab])
        lam[pert >= 0] *= effects[pert[pert >= 0]]
        rows.append(sp.csr_matrix(rng.poisson(lam).astype(np.float32)))
    obs = pd.DataFrame({"perturbation": labels}, index=[f"c{seed}_{i}" for i in range(labels.size)])
    return ad.AnnData(X=sp.vstack(rows).tocsr(), obs=obs, var=pd.DataFrame(index=[f"G{i}" for i in range(n_genes)]))


def log1p_normalised(counts):
    """``log1p(x · 1e4/ℓ)`` of each cell, float32 CSR (the structure of ``counts.X`` kept, indices sorted)."""
    import numpy as np
    import scipy.sparse as sp

    X = sp.csr_matrix(counts.X, dtype=np.float32, copy=True)
    lib = np.maximum(np.asarray(X.sum(axis=1)).ravel(), 1)
    X.data *= np.repeat((1e4 / lib).astype(np.float32), np.diff(X.indptr))
    np.log1p(X.data, out=X.data)
    out = counts.copy()
    out.X = X
    return out


def make_pair(size: str, log1p: bool = True):
    """(pred, real) of a design of :data:`SIZES`: the prediction is a fresh draw with other effects."""
    real = make_counts(*SIZES[size], seed=0)
    pred = make_counts(*SIZES[size], seed=1, effect_seed=2)
    return (log1p_normalised(pred), log1p_normalised(real)) if log1p else (pred, real)


def write_inputs(folder: Path, size: str) -> dict[str, Path]:
    """``{size}_{real,pred}_{counts,log1p}.h5ad`` under ``folder``: the same cells as counts and as log1p."""
    folder = Path(folder)
    pred, real = make_pair(size, log1p=False)
    paths = {}
    for name, adata in (
        ("real_counts", real),
        ("pred_counts", pred),
        ("real_log1p", log1p_normalised(real)),
        ("pred_log1p", log1p_normalised(pred)),
    ):
        paths[name] = folder / f"{size}_{name}.h5ad"
        adata.write_h5ad(paths[name])
    return paths
