"""Per cell: is a perturbed cell perturbed, or has it escaped? pertpy's Mixscape (Papalexi et al. 2021).

Mixscape (pertpy 1.0.3) computes each cell's perturbation signature (its expression minus the mean of control cells
of its replicate, ``split_by``), finds each target's DE genes on it and fits a two-component Gaussian mixture along
them: cells in the component that looks like control are *non-perturbed* (NP, escaping), the others *perturbed*
(KO). A target with fewer than ``min_de_genes`` DE genes is left unclassified by Mixscape (all NP), so its escape
fraction is 1 by construction: ``classified`` says which targets Mixscape could split.

Mixscape takes one perturbation per cell, so it does not fit high-MOI data (a cell carries several gRNAs); there the
escape columns are NaN with a note.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from vcclib.analyses.quiet import quietly


def _patch_pertpy_mixture() -> None:
    """Let pertpy 1.0.3's Mixscape mixture run with scikit-learn ≥ 1.6.

    Its ``MixscapeGaussianMixture._m_step(X, log_resp)`` predates scikit-learn's extra ``xp`` argument, so its fit
    raises ``TypeError``: accept and drop it (the body, the parent's M-step and then re-fixing the control
    component's mean and covariance, is unchanged).
    """
    from pertpy.tools import _mixscape

    cls = _mixscape.MixscapeGaussianMixture
    if getattr(cls, "_vcc_patched", False):
        return
    original = cls._m_step

    def _m_step(self, X, log_resp, xp=None):
        return original(self, X, log_resp)

    cls._m_step = _m_step
    cls._vcc_patched = True


def mixscape_classes(adata, perturbation_column: str, control_label: str, *, split_by: str | None = None,
                     min_de_genes: int = 5, seed: int = 0) -> pd.Series:
    """Per-cell Mixscape class (``<target> KO``, ``<target> NP`` or the control label), from pertpy."""
    import anndata as ad
    import pertpy as pt
    import scipy.sparse as sp

    # pertpy 1.0.3 indexes a sparse X with a pandas mask and fails: hand it a dense copy (the data are small)
    X = adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)
    obs = pd.DataFrame({perturbation_column: adata.obs[perturbation_column].astype(str).to_numpy(),
                        "split": adata.obs[split_by].astype(str).to_numpy() if split_by else "all"},
                       index=adata.obs_names)
    work = ad.AnnData(X=X.astype(np.float32), obs=obs, var=pd.DataFrame(index=adata.var_names))
    _patch_pertpy_mixture()
    ms = pt.tl.Mixscape()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quietly(ms.perturbation_signature, work, perturbation_column, control_label,
                ref_selection_mode="split_by", split_by="split")
        quietly(ms.mixscape, work, perturbation_column, control_label, layer="X_pert", min_de_genes=min_de_genes,
                random_state=seed, split_by="split")
    return work.obs["mixscape_class"].astype(str)


def escape_fractions(classes: pd.Series, labels: pd.Series, guides: pd.Series | None, control_label: str
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Escape fraction (NP share of a target's cells) per perturbation and per guide."""
    perturbed = labels != control_label
    np_cell = classes.str.endswith(" NP")
    frame = pd.DataFrame({"perturbation": labels[perturbed], "np": np_cell[perturbed]})
    per = frame.groupby("perturbation")["np"].agg(["mean", "size"]).rename(
        columns={"mean": "escape_fraction", "size": "n_cells_classified"})
    per["n_perturbed_cells"] = ((1 - per["escape_fraction"]) * per["n_cells_classified"]).round().astype(int)
    per["classified"] = per["escape_fraction"] < 1
    if guides is None:
        return per, pd.DataFrame(columns=["perturbation", "guide", "escape_fraction", "n_cells"])
    frame["guide"] = guides[perturbed].astype(str)
    by_guide = frame.groupby(["perturbation", "guide"])["np"].agg(["mean", "size"]).reset_index()
    by_guide.columns = ["perturbation", "guide", "escape_fraction", "n_cells"]
    return per, by_guide


def escape_explains(effects: pd.DataFrame, escape: pd.DataFrame, min_cells: int = 30) -> list[str]:
    """Null calls with a Mixscape-perturbed subpopulation of at least ``min_cells`` cells.

    Escape (dilution by non-perturbed cells) may explain why the whole group shows nothing.
    """
    null = effects.index[effects["call"].isin(["no effect", "failed knockdown"])]
    ok = escape.reindex(null)
    return ok.index[(ok["classified"].fillna(False).astype(bool)) & (ok["n_perturbed_cells"] >= min_cells)].tolist()


def empty_escape(names) -> pd.DataFrame:
    """Escape columns for data Mixscape does not fit (NaN fractions)."""
    return pd.DataFrame({"escape_fraction": np.nan, "n_cells_classified": 0, "n_perturbed_cells": 0,
                         "classified": False}, index=pd.Index(list(names)))
