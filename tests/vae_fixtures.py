"""Synthetic data with a known answer for the conditional VAE's tests (CPU and GPU); synthetic, and said so."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData


def additive_shifts(seed=0, n_per=60, genes=40, combination=True):
    """Known truth: controls ~ 1.5 + noise; A raises genes 0–9 by 1.5, B lowers genes 10–19 by 1, and (with
    ``combination``) A+B does both (additive)."""
    rng = np.random.default_rng(seed)
    effect = {"ctrl": np.zeros(genes), "A": np.zeros(genes), "B": np.zeros(genes)}
    effect["A"][:10], effect["B"][10:20] = 1.5, -1.0
    labels = ["ctrl"] * (3 * n_per) + ["A"] * n_per + ["B"] * n_per
    if combination:
        effect["A+B"] = effect["A"] + effect["B"]
        labels += ["A+B"] * n_per
    X = np.clip(1.5 + np.vstack([effect[p] for p in labels]) + rng.normal(0, 0.3, (len(labels), genes)), 0, None)
    obs = pd.DataFrame(
        {
            "perturbation": labels,
            "cell_line": "synthetic",
            "is_control": [p == "ctrl" for p in labels],
            "dataset": "synthetic",
            "perturbation_type": "CRISPRi",
        },
        index=[f"c{i}" for i in range(len(labels))],
    )
    adata = AnnData(X.astype(np.float32), obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(genes)]))
    adata.uns["vcc"] = {
        "control_label": "ctrl",
        "dataset": "synthetic",
        "x_scale": "log1p",
        "organism": "human",
        "normalisation": "synthetic log1p-like values",
    }
    return adata, effect
