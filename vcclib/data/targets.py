"""Which genes a table dataset perturbs, for the catalog's perturbation records.

Perturbation AnnData carry their targets in ``obs['perturbation']``; table datasets (fitness screens, imaging
summaries, interaction maps, signatures) carry them in loader-specific places, so each loader declares how to
read them: ``@loader(..., targets=func)`` (:class:`vcclib.data.loaders.LoaderSpec`). The helpers below are the
readers those loaders share. Only human, genetic perturbations count (the mouse screen has none).
"""

from __future__ import annotations

import pandas as pd

NOT_A_TARGET = ("", "nan", "none", "control", "non-targeting")


def column_genes(frame: pd.DataFrame, *columns: str) -> set[str]:
    """The non-missing values of ``columns`` of ``frame``."""
    genes: set[str] = set()
    for column in columns:
        genes.update(frame[column].dropna().astype(str))
    return genes


def index_genes(frame) -> set[str]:
    """The index (a table's rows) or ``var_names`` (an AnnData's genes) as gene symbols."""
    names = frame.var_names if hasattr(frame, "var_names") else frame.index
    return set(pd.Index(names).astype(str))


def screen_genes(tables: dict) -> set[str]:
    """Genes of gene-level screen tables (``gene``) and pairwise GI tables (``gene_a``, ``gene_b``)."""
    genes: set[str] = set()
    for frame in tables.values():
        if {"gene_a", "gene_b"} <= set(frame.columns):
            genes |= column_genes(frame, "gene_a", "gene_b")
        elif "gene" in frame.columns:
            genes |= column_genes(frame, "gene")
    return genes


def table_targets(dataset_id: str, loaded) -> list[str]:
    """Perturbed gene symbols of a table dataset, read by its loader's ``targets`` (empty when it has none)."""
    from vcclib.data.loaders import get_loader
    from vcclib.data.manifest import get_manifest

    manifest = get_manifest(dataset_id)
    spec = get_loader(manifest.loader) if manifest.loader else None
    if spec is None or spec.targets is None or manifest.organism != "human":
        return []
    return sorted(g for g in spec.targets(loaded) if g and g.lower() not in NOT_A_TARGET)
