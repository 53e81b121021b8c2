"""Chapter *Data catalog*: what real data the project stands on, and how the datasets overlap in perturbed genes.

The tables come from the lamindb catalog (:mod:`vcclib.data.catalog`, :mod:`vcclib.data.summary`); this module
adds the chapter's rules (what counts as a genome-wide library, which pairs are "focused"), the records its
conclusions quote (:func:`chapter_records`) and the conclusions themselves (:func:`conclusions`).
"""

from __future__ import annotations

import pandas as pd

from vcclib.analyses.quiet import quietly
from vcclib.analyses.takeaways import Takeaways, names, number, plural

#: a dataset perturbing at least this many genes is a genome-wide library: it overlaps everything, so the
#: "largest overlap" is looked for among the other ("focused") datasets
GENOME_WIDE = 5000
#: pairs of focused datasets sharing fewer perturbed genes than this are counted as barely overlapping
FEW_SHARED = 10
AVAILABILITY_ORDER = ("mirror", "cache", "download")


def datasets_to_register(register: str) -> list[str]:
    """Dataset ids to register: ``"all"`` locally available datasets with a loader, or comma-separated ids."""
    from vcclib.data.fetch import is_available
    from vcclib.data.manifest import all_manifests

    if register.strip() == "all":
        return [m.id for m in all_manifests().values() if m.loader and is_available(m.id)]
    return [i.strip() for i in register.split(",") if i.strip()]


def register_datasets(register: str) -> list[str]:
    """Register datasets in the lamindb catalog (idempotent, offline, no progress bar); returns their ids."""
    from vcclib.data import catalog

    ids = datasets_to_register(register)
    for dataset_id in ids:
        quietly(catalog.register, dataset_id)
    return ids


def catalog_table() -> pd.DataFrame:
    """:func:`vcclib.data.summary.catalog_table` of the registered datasets, without its progress bar."""
    from vcclib.data.summary import catalog_table as table

    return quietly(table, register=False)


def availability_counts(catalog: pd.DataFrame) -> pd.DataFrame:
    """Datasets per modality (rows) and availability (columns), largest modalities first."""
    counts = catalog.groupby(["modality", "availability"]).size().unstack(fill_value=0)
    counts = counts[[a for a in AVAILABILITY_ORDER if a in counts.columns]]
    return counts.loc[counts.sum(axis=1).sort_values(ascending=True).index]


def size_by_availability(catalog: pd.DataFrame) -> pd.DataFrame:
    """Total megabytes per availability."""
    return catalog.groupby("availability")["size_mb"].sum().round(1).reset_index()


def genome_wide_datasets(gene_sets: dict[str, set[str]], threshold: int = GENOME_WIDE) -> list[str]:
    """Datasets perturbing at least ``threshold`` genes."""
    return sorted(name for name, genes in gene_sets.items() if len(genes) >= threshold)


def focused_pairs(pairs: pd.DataFrame, threshold: int = GENOME_WIDE) -> pd.DataFrame:
    """Pairs (:func:`vcclib.data.summary.overlap_long`) where neither dataset is genome-wide, most shared first."""
    if pairs.empty:
        return pairs
    keep = pairs[["n_a", "n_b"]].max(axis=1) < threshold
    return pairs[keep].sort_values("shared", ascending=False, kind="stable")


def cells_per_perturbation(adata) -> pd.DataFrame:
    """Cells per perturbation label (control included), most first."""
    counts = adata.obs["perturbation"].value_counts()
    return counts.rename_axis("perturbation").reset_index(name="n_cells")


def shared_targets(focus_genes: set[str], gene_sets: dict[str, set[str]], focus: str, shown: int = 15) -> pd.DataFrame:
    """For every other dataset: how many of the focus dataset's targets it also perturbs (and the first ``shown``)."""
    rows = [
        {"dataset": other, "shared": len(focus_genes & genes), "genes": ", ".join(sorted(focus_genes & genes)[:shown])}
        for other, genes in gene_sets.items()
        if other != focus
    ]
    return pd.DataFrame(rows, columns=["dataset", "shared", "genes"]).sort_values(
        "shared", ascending=False, kind="stable"
    )


def chapter_records(
    catalog: pd.DataFrame,
    gene_sets: dict[str, set[str]],
    pairs: pd.DataFrame,
    focus,
    focus_genes: set[str],
    shared: pd.DataFrame,
    device: str = "",
) -> dict:
    """The numbers the chapter's conclusions quote (JSON-serialisable).

    Parameters
    ----------
    catalog
        :func:`vcclib.data.summary.catalog_table`.
    gene_sets, pairs
        Perturbed genes per dataset and their pairwise overlaps (:func:`vcclib.data.summary.overlap_long`).
    focus, focus_genes, shared
        The dataset in focus (AnnData in the project schema), its target genes and :func:`shared_targets`.
    device
        The line of :func:`vcclib.device.describe`.
    """
    embedded = catalog[catalog["availability"] != "download"]
    download = catalog[catalog["availability"] == "download"]
    focused = focused_pairs(pairs)
    top = focused.iloc[0] if len(focused) else None
    meta = focus.uns["vcc"]
    cells = cells_per_perturbation(focus)
    perturbed_cells = cells.loc[cells["perturbation"] != meta["control_label"], "n_cells"]
    return {
        "n_datasets": int(len(catalog)),
        "n_embedded": int(len(embedded)),
        "embedded_mb": float(embedded["size_mb"].sum()),
        "n_download": int(len(download)),
        "download_gb": float(download["size_mb"].sum() / 1000),
        "n_with_perturbed_genes": len(gene_sets),
        "genome_wide_threshold": GENOME_WIDE,
        "genome_wide": genome_wide_datasets(gene_sets),
        "n_focused_pairs": int(len(focused)),
        "n_focused_pairs_few_shared": int((focused["shared"] < FEW_SHARED).sum()) if len(focused) else 0,
        "few_shared": FEW_SHARED,
        "largest_overlap": None
        if top is None
        else {
            "dataset_a": str(top["dataset_a"]),
            "dataset_b": str(top["dataset_b"]),
            "shared": int(top["shared"]),
            "jaccard": float(top["jaccard"]),
        },
        "focus": {
            "dataset": meta["dataset"],
            "n_cells": int(focus.n_obs),
            "n_genes": int(focus.n_vars),
            "n_perturbations": int(focus.obs["perturbation"].nunique() - 1),
            "n_control": int(focus.obs["is_control"].sum()),
            "median_cells_per_perturbation": int(perturbed_cells.median()) if len(perturbed_cells) else 0,
            "n_targets": len(focus_genes),
            "x_scale": meta.get("x_scale", ""),
            "normalisation": meta.get("normalisation", ""),
            "control_label": meta["control_label"],
            "shared_with": [
                {"dataset": d, "shared": int(n)}
                for d, n in zip(shared["dataset"].head(6), shared["shared"].head(6), strict=True)
            ],
        },
        "device": device,
    }


def conclusions(records: dict) -> Takeaways:
    """The chapter's answer, every number formatted from ``records`` (:func:`chapter_records`)."""
    r, f = records, records["focus"]
    top = r["largest_overlap"]
    if top is not None and top["shared"] > 0:
        others = r["n_focused_pairs"] - 1
        overlap = (
            f"Between the focused datasets the largest overlap is `{top['dataset_a']}` and `{top['dataset_b']}`:"
            f" {plural(top['shared'], 'shared perturbed gene')} (Jaccard {number(top['jaccard'])}); "
            f"{min(r['n_focused_pairs_few_shared'], others)} of the other {others} focused pairs share fewer "
            f"than {r['few_shared']}."
        )
    else:
        overlap = "No two focused datasets share a perturbed gene."
    genome_wide = (
        f"Genome-wide libraries (≥ {r['genome_wide_threshold']:,} perturbed genes: "
        f"{names(r['genome_wide'])}) cover nearly every target of the others. "
        if r["genome_wide"]
        else ""
    )
    coverage = names(f"{s['dataset']} {s['shared']}" for s in f["shared_with"])
    points = [
        f"The catalog holds **{r['n_datasets']} datasets**: **{r['n_embedded']} embedded** "
        f"({number(r['embedded_mb'], 0)} MB, real published files read through checksummed manifests) and "
        f"**{r['n_download']} full-scale** datasets that need a download ({number(r['download_gb'], 0)} GB declared).",
        f"{plural(r['n_with_perturbed_genes'], 'embedded dataset')} carry gene-level perturbation labels. "
        f"{genome_wide}{overlap}",
        f"The focus dataset `{f['dataset']}` has {f['n_cells']:,} cells over {plural(f['n_perturbations'], 'perturbation')}"
        f" and {f['n_control']:,} control cells; the median perturbation has {f['median_cells_per_perturbation']:,} "
        f"cells. "
        + (
            f"Of its {plural(f['n_targets'], 'target gene')}, other datasets perturb: {coverage}. "
            "Cross-modality questions about these targets (fitness, imaging, L1000) are answerable only "
            "for the genes counted here."
            if f["n_targets"]
            else "It perturbs no gene (not a genetic screen), so no target overlap applies."
        ),
    ]
    return Takeaways(points, conventions=conventions(records))


def conventions(records: dict) -> list[str]:
    """The conventions the chapter's numbers depend on."""
    f = records["focus"]
    lines = [
        "perturbed genes are the catalog's `perturbed_gene` labels of genetic perturbations only",
        f"focus dataset: {f['n_cells']:,} cells × {f['n_genes']:,} genes, X = {f['x_scale']} "
        f"({f['normalisation']}), control label `{f['control_label']}`",
    ]
    return lines + ([records["device"]] if records.get("device") else [])


def citation_table(catalog: pd.DataFrame) -> str:
    """Licence and reference of every dataset as a MyST table.

    Each reference cites the book's bibliography (key = dataset id, generated from the manifests by
    :func:`vcclib.pipeline.book.write_bibliography`).
    """
    rows = ["| dataset | licence | reference |", "|---|---|---|"]
    for row in catalog.itertuples():
        licence = str(row.licence).replace("|", "/").replace("\n", " ")
        rows.append(f"| `{row.dataset}` | {licence} | {{cite:p}}`{row.dataset}` |")
    return "\n".join(rows)
