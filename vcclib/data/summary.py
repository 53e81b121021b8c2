"""Summaries of the dataset catalog for readers: one row per dataset, and overlaps of perturbed genes."""

from __future__ import annotations

import itertools

import pandas as pd
from tqdm.std import tqdm

from vcclib.data.fetch import availability, is_available
from vcclib.data.manifest import all_manifests


def _joined(values) -> str:
    if values is None or (isinstance(values, float) and pd.isna(values)):
        return ""
    if isinstance(values, (set, list, tuple)):
        return ", ".join(sorted(str(v) for v in values))
    return str(values)


def catalog_table(register: bool | str | list[str] = True) -> pd.DataFrame:
    """Every dataset with what a reader needs to choose one.

    Parameters
    ----------
    register
        Register datasets in the lamindb catalog first (idempotent), so that the cell and perturbation counts come
        from the catalog: True or ``"all"`` for every locally available dataset, a list (or comma-separated
        string) of ids for those, False or ``""`` for none.

    Returns
    -------
    DataFrame
        Columns: dataset, title, modality, organism, cell_lines (or types), perturbation_type, availability
        (``mirror``/``cache``: a verified local copy exists; ``download``: needs internet), size_mb, n_cells,
        n_perturbations, n_perturbed_genes, licence, citation, in_catalog.
    """
    from vcclib.data import catalog

    manifests = all_manifests()
    if isinstance(register, str):
        register = True if register == "all" else [i.strip() for i in register.split(",") if i.strip()]
    if register is True:
        register = [m.id for m in manifests.values() if m.loader and is_available(m.id)]
    for dataset_id in tqdm(register or [], desc="catalog", unit="dataset"):
        catalog.register(dataset_id)
    registered = catalog.registered()
    by_id = registered.set_index("dataset_id") if not registered.empty else pd.DataFrame()
    rows = []
    for manifest in manifests.values():
        entry = by_id.loc[manifest.id].dropna().to_dict() if manifest.id in by_id.index else {}
        value = entry.get
        genes = value("perturbed_gene")
        rows.append(
            {
                "dataset": manifest.id,
                "title": manifest.title,
                "modality": manifest.modality,
                "organism": manifest.organism,
                "cell_lines": _joined(
                    value("cell_line") or value("cell_type") or manifest.cell_lines or manifest.cell_types
                ),
                "perturbation_type": _joined(manifest.perturbation_type),
                "availability": availability(manifest.id),
                "size_mb": round(manifest.total_size / 1e6, 1),
                "n_cells": value("n_cells"),
                "n_perturbations": value("n_perturbations"),
                "n_perturbed_genes": len(genes) if isinstance(genes, (set, list, tuple)) else None,
                "licence": manifest.licence,
                "citation": manifest.citation,
                "in_catalog": manifest.id in by_id.index,
            }
        )
    return pd.DataFrame(rows)


def perturbed_gene_sets() -> dict[str, set[str]]:
    """Perturbed genes of every registered dataset that has any, from the catalog's ``perturbed_gene`` labels."""
    from vcclib.data import catalog

    registered = catalog.registered()
    sets: dict[str, set[str]] = {}
    if registered.empty or "perturbed_gene" not in registered:
        return sets
    for _, row in registered.iterrows():
        genes = row["perturbed_gene"]
        if isinstance(genes, (set, list, tuple)) and genes:
            sets[row["dataset_id"]] = set(genes)
    return sets


def overlap_matrix(gene_sets: dict[str, set[str]]) -> pd.DataFrame:
    """Number of shared perturbed genes for each pair of datasets (diagonal: each dataset's own count)."""
    names = sorted(gene_sets)
    matrix = pd.DataFrame(0, index=names, columns=names, dtype=int)
    for a, b in itertools.product(names, names):
        matrix.loc[a, b] = len(gene_sets[a] & gene_sets[b])
    return matrix


def overlap_long(gene_sets: dict[str, set[str]]) -> pd.DataFrame:
    """Pairwise overlaps as a tidy table: dataset_a, dataset_b, n_a, n_b, shared, jaccard, shared_genes."""
    rows = []
    for a, b in itertools.combinations(sorted(gene_sets), 2):
        shared = gene_sets[a] & gene_sets[b]
        union = gene_sets[a] | gene_sets[b]
        rows.append(
            {
                "dataset_a": a,
                "dataset_b": b,
                "n_a": len(gene_sets[a]),
                "n_b": len(gene_sets[b]),
                "shared": len(shared),
                "jaccard": len(shared) / len(union) if union else 0.0,
                "shared_genes": ",".join(sorted(shared)[:50]),
            }
        )
    return pd.DataFrame(rows)
