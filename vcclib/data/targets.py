"""Which genes a table dataset perturbs, for the catalog's ``perturbed_gene`` labels.

Perturbation AnnData carry their targets in ``obs['perturbation']``; table datasets (fitness screens, imaging
summaries, interaction maps) carry them in dataset-specific columns, named here once per dataset. Only human,
genetic perturbations count (the mouse screen and the L1000 drug plate have no entry).
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd


def _column(frame: pd.DataFrame, *columns: str) -> set[str]:
    genes: set[str] = set()
    for column in columns:
        genes.update(frame[column].dropna().astype(str))
    return genes


def _screens(tables: dict) -> set[str]:
    genes: set[str] = set()
    for frame in tables.values():
        if {"gene_a", "gene_b"} <= set(frame.columns):
            genes |= _column(frame, "gene_a", "gene_b")
        elif "gene" in frame.columns:
            genes |= _column(frame, "gene")
    return genes


TABLE_TARGETS: dict[str, Callable[[object], set[str]]] = {
    # Chronos-fitted gene effects: the genes knocked out in the sample screens
    "depmap_chronos_sample": lambda d: set(d["gene_effect"].var_names.astype(str)),
    # every gene an Avana sgRNA targets (guides mapping to several genes count for each)
    "depmap_achilles_19q2": lambda d: _column(d["guide_map"], "symbol"),
    "periscope_a549": lambda frame: set(frame.index.astype(str)),
    "screens_biodiscoveryagent": _screens,
    "norman2019_gi": lambda d: _column(d["regr_fits"], "gene_a", "gene_b"),
    "dann2025_cd4_vs_k562": lambda frame: _column(frame, "target_contrast_gene_name"),
}


def table_targets(dataset_id: str, loaded) -> list[str]:
    """Perturbed gene symbols of a table dataset (empty when the dataset has no gene-level targets)."""
    extractor = TABLE_TARGETS.get(dataset_id)
    if extractor is None:
        return []
    return sorted(g for g in extractor(loaded) if g and g.lower() not in ("nan", "control", "non-targeting"))
