"""Replogle et al. 2022 supplementary tables (Cell, mmc1-mmc3) as tidy tables.

Table S2's perturbation id is ``<index>_<gene>_<transcripts>_<Ensembl gene id>`` (``0_A1BG_P1_ENSG00000121410``;
transcripts are promoter names P1/P2/P1P2 or Ensembl transcript ids; controls are
``<index>_non-targeting_non-targeting_non-targeting``); :func:`parse_perturbation_id` splits it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from vcclib.data.loaders import loader
from vcclib.data.schema import SchemaError

CONTROL = "non-targeting"
#: Table S2 sheets → screen name.
SCREENS = {
    "TabA_K562_day8_summary_stat": "K562_genome_wide_day8",
    "TabB_K562_day6_summary_stat": "K562_essential_day6",
    "TabC_RPE1_summary_statistic": "RPE1_essential_day7",
}
LIBRARIES = {
    "TabA_K562_day8_library": "K562_genome_wide_day8",
    "TabB_K562_day6_library": "K562_essential_day6",
    "TabC_RPE1_day7_library": "RPE1_essential_day7",
}
#: Table S2 column → (clean name, unit / meaning), from the table's own description sheet.
STATISTICS = {
    "mean UMI count": ("mean_umis", "UMIs per cell, before quality filtering"),
    "number of cells (unfiltered)": ("n_cells_unfiltered", "cells"),
    "number of cells (filtered)": ("n_cells_filtered", "cells, after removing low-quality or dying cells"),
    "target expression": ("target_expression", "normalised expression of the target in control cells"),
    "fold knockdown": ("fold_knockdown", "target expression in perturbed / control cells (ratio)"),
    "percent knockdown": (
        "percent_knockdown",
        "fraction change of the target (-1 = fully silenced; a fraction, not %)",
    ),
    "core_control": ("core_control", "bool: a core non-targeting control"),
    "mean leverage score": ("mean_leverage", "mean leverage score of the perturbation's cells"),
    "std of leverage score": ("std_leverage", "standard deviation of the leverage score"),
    "energy test (p-value)": ("energy_test_p", "p-value of the energy test (perturbed vs control)"),
    "Number of DEGs (anderson-darling)": ("n_degs_anderson_darling", "genes, BH-adjusted p < 0.05"),
    "Number of DEGs (Mann-Whitney)": ("n_degs_mann_whitney", "genes, BH-adjusted p < 0.05"),
    "Z-scored number of UMIs": ("umis_zscore", "z-score vs control cells of the same gem group"),
    "Fraction of mitochondrially encoded RNA": (
        "mito_fraction",
        "fraction of UMIs from the 13 mtDNA protein-coding genes",
    ),
    "Fraction of TE RNA": ("te_fraction", "fraction of UMIs from transposable elements"),
    "Z-scored CIN score": ("cin_zscore", "chromosomal-instability score, z-scored vs control cells"),
}
TABLES = ("statistics", "gene_clusters", "perturbation_clusters", "sgrna_libraries")


def parse_perturbation_id(ids: pd.Series) -> pd.DataFrame:
    """Split Table S2 ids into ``library_index``, ``target`` (symbol), ``transcripts``, ``ensembl_id``.

    Controls get target ``non-targeting`` and no Ensembl id; a missing Ensembl id (``nan`` in the source) is NA.
    """
    text = ids.astype(str)
    head = text.str.split("_", n=1, expand=True)
    rest = head[1].str.rsplit("_", n=2, expand=True)
    if head[0].str.fullmatch(r"\d+").eq(False).any() or rest.isna().any().any():
        bad = text[head[0].str.fullmatch(r"\d+").eq(False) | rest.isna().any(axis=1)].head(3).tolist()
        raise SchemaError(f"perturbation ids not of the form <index>_<gene>_<transcripts>_<ensembl>: {bad}")
    ensembl = rest[2].where(rest[2].str.startswith("ENSG"), pd.NA)
    return pd.DataFrame(
        {
            "library_index": head[0].astype(int).to_numpy(),
            "target": rest[0].to_numpy(),
            "transcripts": rest[1].where(rest[0] != CONTROL, pd.NA).to_numpy(),
            "ensembl_id": ensembl.to_numpy(),
        },
        index=ids.index,
    )


def statistics_table(sheets: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The three screens' per-perturbation statistics as one tidy table (units in ``.attrs['units']``)."""
    frames = []
    for sheet, screen in SCREENS.items():
        if sheet not in sheets:
            raise SchemaError(f"Table S2 lacks sheet {sheet!r}; sheets: {sorted(sheets)}")
        table = sheets[sheet]
        missing = [c for c in ["genetic perturbation", *STATISTICS] if c not in table.columns]
        if missing:
            raise SchemaError(f"Table S2 sheet {sheet} lacks columns {missing}")
        ids = table["genetic perturbation"].astype(str)
        frame = pd.concat(
            [pd.DataFrame({"perturbation_id": ids, "screen": screen}), parse_perturbation_id(ids)], axis=1
        )
        for column, (name, _) in STATISTICS.items():
            frame[name] = table[column].to_numpy()
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    out["is_control"] = out["target"] == CONTROL
    out["core_control"] = out["core_control"].astype(bool)
    for name in ("n_cells_unfiltered", "n_cells_filtered", "n_degs_anderson_darling", "n_degs_mann_whitney"):
        out[name] = pd.array(np.round(out[name].to_numpy(dtype=float)), dtype="Int64")
    out["screen"] = out["screen"].astype("category")
    out.attrs["units"] = {name: unit for name, unit in STATISTICS.values()}
    return out


def _membership(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    """A clusters sheet (one row per cluster, ``members`` comma-separated) as cluster_id, gene, rows."""
    frame = frame.rename(columns={frame.columns[0]: "cluster_id"})
    frame = frame.dropna(subset=["cluster_id"]).copy()
    frame["cluster_id"] = frame["cluster_id"].astype(int)
    rows = []
    for _, row in frame.iterrows():
        for gene in str(row["members"]).split(","):
            if gene.strip():
                rows.append((row["cluster_id"], gene.strip()))
    members = pd.DataFrame(rows, columns=["cluster_id", "gene"])
    label = "best_description" if "best_description" in frame.columns else "manual_annotation"
    annotation = frame.set_index("cluster_id")[label]
    members["cluster_label"] = members["cluster_id"].map(annotation).to_numpy()
    members.attrs["clusters"] = frame.drop(columns=["members"]).reset_index(drop=True)
    members.attrs["kind"] = kind
    return members


def _libraries(sheets: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    frames = []
    for sheet, screen in LIBRARIES.items():
        if sheet not in sheets:
            raise SchemaError(f"Table S1 lacks sheet {sheet!r}; sheets: {sorted(sheets)}")
        table = sheets[sheet].copy()
        table.columns = [str(c).strip().lower().replace(" ", "_").replace("?", "") for c in table.columns]
        table.insert(1, "screen", screen)
        frames.append(table)
    out = pd.concat(frames, ignore_index=True)
    return out.rename(columns={"unique_sgrna_pair_id": "perturbation_id", "ensembl_gene_id": "ensembl_id"})


def _statistics_targets(tables: dict) -> set[str]:
    return set(tables["statistics"].loc[lambda t: ~t["is_control"], "target"]) if "statistics" in tables else set()


@loader("replogle2022_tables", returns="tables", targets=_statistics_targets)
def load_replogle2022_tables(
    files: Mapping[str, Path], manifest, *, tables: list[str] | tuple[str, ...] = TABLES
) -> dict[str, pd.DataFrame]:
    """Replogle et al. 2022 Tables S1-S3: per-perturbation statistics, clusters, sgRNA libraries.

    Parameters
    ----------
    tables
        Which tables to read (default all; the xlsx reading takes 10-20 s per workbook).

    Returns
    -------
    dict of pandas.DataFrame
        ``statistics`` (Table S2, 16,223 rows: 11,258 K562 genome-wide day 8 + 2,285 K562 essential day 6 + 2,680
        RPE1; columns perturbation_id, screen, library_index, target, transcripts, ensembl_id and the clean names
        of :data:`STATISTICS`, units in ``.attrs['units']``, ``is_control``); ``gene_clusters`` and
        ``perturbation_clusters`` (Table S3 membership: cluster_id, gene, cluster_label; the per-cluster
        annotation in ``.attrs['clusters']``); ``sgrna_libraries`` (Table S1: perturbation_id, screen, gene,
        transcript, ensembl_id, sgID_A/B, targeting sequences, duplication flags).
    """
    unknown = sorted(set(tables) - set(TABLES))
    if unknown:
        raise SchemaError(f"unknown tables {unknown}; tables: {list(TABLES)}")
    out: dict[str, pd.DataFrame] = {}
    if "statistics" in tables:
        out["statistics"] = statistics_table(pd.read_excel(files["mmc2_perturbation_statistics.xlsx"], sheet_name=None))
    if {"gene_clusters", "perturbation_clusters"} & set(tables):
        sheets = pd.read_excel(files["mmc3_clusters.xlsx"], sheet_name=None)
        if "gene_clusters" in tables:
            out["gene_clusters"] = _membership(sheets["gene expression clusters"], "gene expression")
        if "perturbation_clusters" in tables:
            out["perturbation_clusters"] = _membership(sheets["perturbation clusters"], "perturbation")
    if "sgrna_libraries" in tables:
        out["sgrna_libraries"] = _libraries(pd.read_excel(files["mmc1_sgrna_libraries.xlsx"], sheet_name=None))
    return out
