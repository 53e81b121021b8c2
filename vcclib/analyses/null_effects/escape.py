"""Per cell: is a perturbed cell perturbed, or has it escaped? pertpy's Mixscape (Papalexi et al. 2021).

Mixscape (pertpy 1.0.3) computes each cell's perturbation signature (its expression minus the mean of its
``n_neighbors`` nearest control cells in PCA space, within its replicate, ``split_by``: the paper's and the pertpy
tutorial's settings), finds each target's DE genes (Wilcoxon on the log-normalised data, BH q < 0.05, |log FC| ≥
0.25, all replicates together) and fits a two-component Gaussian mixture along them, the
control component's mean and variance fixed at the control cells': cells in the component that looks like control
are *non-perturbed* (NP, escaping), the others perturbed (KO). A target with fewer than ``min_de_genes`` DE genes
cannot be split: it is *not classified* (``classified`` False, ``escape_fraction`` NaN), never "100% escape".

Mixscape takes one perturbation per cell, so it does not fit high-MOI data (a cell carries several gRNAs); there the
escape columns are NaN with a note.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vcclib.analyses.mixscape import fit_mixscape


def mixscape_classes(
    adata,
    perturbation_column: str,
    control_label: str,
    *,
    split_by: str | None = None,
    n_neighbors: int = 20,
    n_pcs: int = 20,
    min_de_genes: int = 5,
    seed: int = 0,
) -> pd.DataFrame:
    """Per-cell Mixscape class from pertpy, with the settings of Papalexi et al. 2021 and pertpy's tutorial.

    Returns per cell ``mixscape_class`` (``<target> KO``, ``<target> NP`` or the control label) and
    ``classified`` (the cell's target had at least ``min_de_genes`` DE genes, so Mixscape could split it).
    ``split_by`` (replicates) applies to the signature only, as in the paper's and pertpy's tutorial.
    """
    import anndata as ad
    import scipy.sparse as sp

    # pertpy 1.0.3 indexes a sparse X with a pandas mask and fails: hand it a dense copy (the data are small)
    X = adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)
    labels = adata.obs[perturbation_column].astype(str).to_numpy()
    split = adata.obs[split_by].astype(str).to_numpy() if split_by else np.full(adata.n_obs, "all")
    obs = pd.DataFrame({perturbation_column: labels, "split": split}, index=adata.obs_names)
    work = ad.AnnData(X=X.astype(np.float32), obs=obs, var=pd.DataFrame(index=adata.var_names))
    fit_mixscape(
        work,
        perturbation_column,
        control_label,
        split_by="split",
        n_neighbors=n_neighbors,
        n_pcs=n_pcs,
        min_de_genes=min_de_genes,
        seed=seed,
    )
    fitted = {str(t) for t in work.uns.get("mixscape", {})}  # pertpy keeps projections only of targets it split
    return pd.DataFrame(
        {
            "mixscape_class": work.obs["mixscape_class"].astype(str).to_numpy(),
            "classified": np.isin(labels, sorted(fitted)),
        },
        index=adata.obs_names,
    )


def escape_fractions(
    classes: pd.DataFrame, labels: pd.Series, guides: pd.Series | None, control_label: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Escape fraction (non-KO share of a target's classified cells) per perturbation and per guide.

    Only cells whose target Mixscape could split count (``classified``); a target with none is not classified:
    ``escape_fraction`` NaN, ``classified`` False. A cell is perturbed only if Mixscape calls it ``<target> KO``
    (pertpy labels the cells of a split left with fewer than ``min_de_genes`` KO cells plain ``NP``).
    """
    perturbed = (labels != control_label).to_numpy()
    frame = pd.DataFrame(
        {
            "perturbation": labels[perturbed].to_numpy(),
            "np": ~classes["mixscape_class"].str.endswith(" KO").to_numpy()[perturbed],
            "classified": classes["classified"].to_numpy()[perturbed],
        },
        index=labels.index[perturbed],
    )
    frame["np_classified"] = frame["np"].where(frame["classified"])
    frame["ko_classified"] = ~frame["np"] & frame["classified"]
    grouped = frame.groupby("perturbation")
    per = pd.DataFrame(
        {
            "escape_fraction": grouped["np_classified"].mean(),
            "n_cells_classified": grouped["classified"].sum().astype(int),
            "n_perturbed_cells": grouped["ko_classified"].sum().astype(int),
        }
    )
    per["classified"] = per["n_cells_classified"] > 0
    if guides is None:
        return per, pd.DataFrame(columns=["perturbation", "guide", "escape_fraction", "n_cells", "classified"])
    frame["guide"] = guides.astype(str).to_numpy()[perturbed]
    by = frame.groupby(["perturbation", "guide"])
    by_guide = pd.DataFrame(
        {"escape_fraction": by["np_classified"].mean(), "n_cells": by.size(), "classified": by["classified"].any()}
    ).reset_index()
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
    return pd.DataFrame(
        {"escape_fraction": np.nan, "n_cells_classified": 0, "n_perturbed_cells": 0, "classified": False},
        index=pd.Index(list(names)),
    )
