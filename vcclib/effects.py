"""Which perturbations do nothing? A per-perturbation call of a detectable transcriptional effect.

Two tests of each perturbation against control, both from :mod:`vcclib.metrics`:

* the E-distance permutation test (:func:`vcclib.metrics.distances.etest`, pertpy convention: Euclidean distances,
  N² within-group pairs, p = max(#{E_perm > E_obs}, 1) / n_permutations) on the top principal components of all
  cells, as pertpy's ``DistanceTest`` does on ``X_pca``; control cells are subsampled to a fixed number;
* per-gene Mann–Whitney DE (:func:`vcclib.metrics.de.differential_expression`, cell-eval convention, BH within
  each perturbation) against *all* control cells.

E-test p-values are corrected across perturbations (Benjamini–Hochberg or Holm–Šidák).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import false_discovery_control

from vcclib.data.schema import COMBINATION_SEPARATOR, split_targets
from vcclib.metrics.de import differential_expression
from vcclib.metrics.distances import edistance, etest

NULL_CALL, EFFECT_CALL = "no detectable effect", "effect"


def adjust_pvalues(p, method: str = "bh") -> np.ndarray:
    """Multiple-testing correction across perturbations.

    Parameters
    ----------
    p
        Raw p-values (NaN stays NaN and is not counted).
    method
        ``"bh"`` (Benjamini–Hochberg FDR) or ``"holm-sidak"`` (step-down Holm–Šidák, family-wise error).

    Returns
    -------
    numpy.ndarray
        Adjusted p-values, same order as ``p``.
    """
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    q = p[ok]
    if q.size == 0:
        return out
    if method == "bh":
        out[ok] = false_discovery_control(q)
    elif method == "holm-sidak":
        order = np.argsort(q)
        m = q.size
        adj = 1.0 - (1.0 - q[order]) ** (m - np.arange(m))
        adj = np.minimum(np.maximum.accumulate(adj), 1.0)
        res = np.empty(m)
        res[order] = adj
        out[ok] = res
    else:
        raise ValueError(f"correction {method!r}: use 'bh' or 'holm-sidak'")
    return out


def pca_embedding(X, n_pcs: int = 20, seed: int = 0) -> np.ndarray:
    """Top ``n_pcs`` principal components of the rows of X (centred, not scaled; scanpy's ``pp.pca`` default)."""
    from sklearn.decomposition import PCA

    n_pcs = int(min(n_pcs, X.shape[1] - 1, X.shape[0] - 1))
    X = X.astype(np.float64) if sp.issparse(X) else np.asarray(X, dtype=np.float64)
    return PCA(n_components=n_pcs, svd_solver="arpack", random_state=seed).fit_transform(X)


def _subsample(idx: np.ndarray, cap: int | None, rng: np.random.Generator) -> np.ndarray:
    if cap is None or idx.size <= cap:
        return idx
    return np.sort(rng.choice(idx, size=cap, replace=False))


def perturbation_effects(
    adata,
    *,
    perturbation_column: str = "perturbation",
    control_label: str | None = None,
    n_pcs: int = 20,
    n_permutations: int = 1000,
    max_control_cells: int | None = 2000,
    max_cells_per_perturbation: int | None = None,
    alpha: float = 0.05,
    correction: str = "bh",
    seed: int = 0,
) -> pd.DataFrame:
    """Call, per perturbation, whether it has a detectable transcriptional effect.

    Parameters
    ----------
    adata
        AnnData with log1p X (project schema).
    perturbation_column
        obs column of perturbation labels; ``+`` joins the targets of a combination.
    control_label
        Control label; default ``adata.uns["vcc"]["control_label"]``.
    n_pcs
        Principal components (of all cells) the E-test is computed in.
    n_permutations
        Label permutations of each E-test (smallest attainable p is ``1 / n_permutations``).
    max_control_cells, max_cells_per_perturbation
        Cells drawn at random (``seed``) for the E-test: one control subsample shared by every perturbation, and
        at most this many cells of each perturbation; ``None`` keeps all. DE always uses all cells.
    alpha
        Level for the adjusted E-test p-value and for the per-gene DE FDR.
    correction
        ``"bh"`` or ``"holm-sidak"``, across perturbations (see :func:`adjust_pvalues`).
    seed
        Seed of subsampling, PCA and permutations.

    Returns
    -------
    pandas.DataFrame
        One row per perturbation (index), sorted by E-distance: ``n_cells``, ``n_cells_etest``, ``edistance``
        (pertpy convention, PCA space, vs the control subsample), ``etest_p``, ``etest_p_adj``, ``n_de_genes``
        (genes with DE FDR < ``alpha``), ``n_de_other`` (the same without the target gene(s) themselves: an effect
        beyond the knockdown), ``target_measured``, ``target_log2fc`` and ``target_fdr`` (the target
        gene's own DE row; NaN for a combination or an unmeasured target), ``evidence`` (``"both"``,
        ``"E-test only"``, ``"DE only"``, ``"neither"``) and ``call``. ``attrs`` holds the settings and
        ``control_split_edistance``: the E-distance between two disjoint halves of the control subsample, a
        noise floor for ``edistance``.

    Notes
    -----
    Rule: ``call`` is ``"no detectable effect"`` when ``etest_p_adj >= alpha`` **and** ``n_de_genes == 0``
    (neither test finds anything); otherwise ``"effect"``. A null call is absence of evidence at this depth,
    not evidence of absence.
    """
    if control_label is None:
        control_label = adata.uns["vcc"]["control_label"]
    labels = adata.obs[perturbation_column].astype(str).to_numpy()
    if control_label not in set(labels):
        raise ValueError(f"control label {control_label!r} is missing from obs[{perturbation_column!r}]")
    perts = sorted(set(labels) - {control_label})
    rng = np.random.default_rng(seed)

    pcs = pca_embedding(adata.X, n_pcs, seed)
    ctrl = _subsample(np.flatnonzero(labels == control_label), max_control_cells, rng)
    half = rng.permutation(ctrl)
    floor = edistance(pcs[half[: half.size // 2]], pcs[half[half.size // 2 :]], convention="pertpy")

    de = differential_expression(adata, perturbation_column, control_label, convention="cell-eval")
    sig = de["fdr"].to_numpy() < alpha
    n_de = pd.Series(sig).groupby(de["target"].to_numpy()).sum()
    is_target = [f in split_targets(t) for t, f in zip(de["target"], de["feature"], strict=True)]
    n_other = pd.Series(sig & ~np.array(is_target, dtype=bool)).groupby(de["target"].to_numpy()).sum()
    own = de.set_index(["target", "feature"])
    genes = set(map(str, adata.var_names))

    rows = []
    for i, p in enumerate(perts):
        idx = np.flatnonzero(labels == p)
        sub = _subsample(idx, max_cells_per_perturbation, rng)
        if sub.size >= 2:
            e, pval = etest(pcs[sub], pcs[ctrl], n_perms=n_permutations, seed=seed + i, convention="pertpy")
        else:
            e, pval = np.nan, np.nan
        measured = COMBINATION_SEPARATOR not in p and p in genes
        lfc, fdr = (own.loc[(p, p), ["log2_fold_change", "fdr"]] if measured else (np.nan, np.nan))
        rows.append({"perturbation": p, "n_cells": idx.size, "n_cells_etest": sub.size, "edistance": e,
                     "etest_p": pval, "n_de_genes": int(n_de.get(p, 0)),
                     "n_de_other": int(n_other.get(p, 0)), "target_measured": measured,
                     "target_log2fc": float(lfc), "target_fdr": float(fdr)})
    out = pd.DataFrame(rows).set_index("perturbation")
    out.insert(4, "etest_p_adj", adjust_pvalues(out["etest_p"], correction))
    sig_e, sig_de = out["etest_p_adj"] < alpha, out["n_de_genes"] > 0
    out["evidence"] = np.select([sig_e & sig_de, sig_e, sig_de], ["both", "E-test only", "DE only"], "neither")
    out["call"] = np.where(sig_e | sig_de, EFFECT_CALL, NULL_CALL)
    out = out.sort_values("edistance", ascending=False)
    out.attrs.update(n_pcs=pcs.shape[1], n_permutations=n_permutations, n_control_cells_etest=int(ctrl.size),
                     n_control_cells_de=int((labels == control_label).sum()), alpha=alpha, correction=correction,
                     control_split_edistance=float(floor), seed=seed)
    return out
