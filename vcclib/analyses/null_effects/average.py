"""Versus the average perturbation: is each perturbation distinguishable from the mean perturbed state.

* ``systematic_share``: the share of a perturbation's pseudobulk effect (mean log1p minus control's, all genes)
  along the mean effect of the *other* perturbations (cos² of the angle); ``cosine`` keeps the sign. A high share
  means the perturbation mostly shows the screen's common response (systematic variation, e.g. stress or
  selection), not its own.
* ``etest_vs_average_p``: E-distance permutation test (pertpy convention, PCA space) of the perturbation's cells
  against an equal-weight sample of the other perturbations' cells; BH across perturbations.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from vcclib.analyses.null_effects.classic import adjust_pvalues
from vcclib.metrics.distances import etest


def _mean(X, idx) -> np.ndarray:
    block = X[idx]
    return np.asarray(block.mean(0)).ravel() if sp.issparse(block) else np.asarray(block).mean(0)


def versus_average(
    X,
    pcs,
    groups: dict[str, np.ndarray],
    control: np.ndarray,
    *,
    max_cells: int = 200,
    n_permutations: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """Systematic-variation share and the E-test against the average perturbed state, one row per group."""
    rng = np.random.default_rng(seed)
    names = [g for g, idx in groups.items() if len(idx) >= 2]
    ctrl = _mean(X, control)
    effects = np.vstack([_mean(X, groups[g]) - ctrl for g in names]) if names else np.zeros((0, X.shape[1]))
    total = effects.sum(0)
    per_group = max(1, max_cells // max(len(names) - 1, 1))
    rows = []
    for i, g in enumerate(names):
        mean_other = (total - effects[i]) / max(len(names) - 1, 1)
        d, m = effects[i], mean_other
        denom = np.linalg.norm(d) * np.linalg.norm(m)
        cosine = float(d @ m / denom) if denom > 0 else np.nan
        own = groups[g]
        own = rng.choice(own, size=min(len(own), max_cells), replace=False)
        others = np.concatenate(
            [rng.choice(groups[h], size=min(len(groups[h]), per_group), replace=False) for h in names if h != g]
        )
        others = np.setdiff1d(others, groups[g])  # high-MOI: a cell carrying g is not part of the average
        if len(others) >= 2 and len(own) >= 2:
            e, p = etest(pcs[own], pcs[others], n_perms=n_permutations, seed=seed + i, convention="pertpy")
        else:
            e, p = np.nan, np.nan
        rows.append(
            {
                "group": g,
                "cosine_to_mean_effect": cosine,
                "systematic_share": cosine**2 if np.isfinite(cosine) else np.nan,
                "edistance_vs_average": e,
                "etest_vs_average_p": p,
            }
        )
    out = pd.DataFrame(rows).set_index("group")
    out["etest_vs_average_q"] = adjust_pvalues(out["etest_vs_average_p"], "bh") if len(out) else []
    return out
