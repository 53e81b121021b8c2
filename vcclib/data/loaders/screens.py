"""Pooled-screen and genetic-interaction loaders: tables of gene-level phenotypes and GI scores."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from vcclib.data.loaders import loader
from vcclib.data.schema import SchemaError
from vcclib.data.targets import column_genes, screen_genes

MAGECK_RRA_COLUMNS = ("id", "num", "neg|score", "neg|fdr", "pos|score", "pos|fdr", "neg|lfc")


def _check(table: pd.DataFrame, columns, what: str) -> pd.DataFrame:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise SchemaError(f"{what} lacks columns {missing}; columns: {list(table.columns)}")
    return table


def _pair_table(path: Path) -> pd.DataFrame:
    table = _check(pd.read_csv(path), ["Gene_pairs", "Score"], path.name)
    pairs = table["Gene_pairs"].astype(str).str.extract(r"^\(\s*'([^']*)'\s*,\s*'([^']*)'\s*\)$")
    if pairs.isna().any().any():
        bad = table.loc[pairs.isna().any(axis=1), "Gene_pairs"].head(3).tolist()
        raise SchemaError(f"{path.name}: gene pairs not in the form ('A', 'B'): {bad}")
    return pd.DataFrame({"gene_a": pairs[0], "gene_b": pairs[1], "score": table["Score"].astype(float)})


@loader("screens_biodiscoveryagent", returns="tables", targets=screen_genes)
def load_biodiscoveryagent(files: Mapping[str, Path], manifest, **_: object) -> dict[str, pd.DataFrame]:
    """Gene-level pooled CRISPR screen phenotypes collected by BioDiscoveryAgent (Roohani et al. 2024).

    Returns
    -------
    dict of pandas.DataFrame
        One entry per ``ground_truth_<screen>.csv`` keyed by ``<screen>``, each a DataFrame with columns ``gene``
        and ``score`` (one row per gene, ~18.5k genes; ``Scharenberg22`` 1,061 genes): ``Carnevale22_Adenosine``,
        ``IFNG``, ``IL2`` (Schmidt 2022 primary T cells), ``Sanchez21`` and ``Sanchez21_down`` (tau),
        ``Scharenberg22``, ``Steinhart_crispra_GD2_D22`` (CRISPRa CAR-T). ``Horlbeck`` is the K562 CRISPRi
        pairwise genetic-interaction table: 100,576 rows ``gene_a``, ``gene_b``, ``score`` (GI score).
        ``schmidt_ifng_d1``/``schmidt_ifng_d2``: MAGeCK RRA gene summaries (18,899 genes; id, num, neg|…, pos|…).
    """
    out: dict[str, pd.DataFrame] = {}
    for name, path in sorted(files.items()):
        path = Path(path)
        match = re.match(r"^ground_truth_(.+)\.csv$", name)
        if match and match.group(1) == "Horlbeck":
            out["Horlbeck"] = _pair_table(path)
        elif match:
            table = pd.read_csv(path)
            if table.shape[1] != 2:
                raise SchemaError(f"{name}: expected 2 columns (gene, score), found {list(table.columns)}")
            table.columns = ["gene", "score"]  # Steinhart's header is '0,1'
            table["score"] = pd.to_numeric(table["score"], errors="raise")
            out[match.group(1)] = table
        elif name.endswith(".gene_summary.txt"):
            out[name.removesuffix(".gene_summary.txt")] = _check(pd.read_csv(path, sep="\t"), MAGECK_RRA_COLUMNS, name)
    if not out:
        raise KeyError(f"no screen tables among {sorted(files)}")
    return out


@loader("screens_mageckflute", returns="tables")
def load_mageckflute_pan2018(files: Mapping[str, Path], manifest, **_: object) -> dict[str, pd.DataFrame]:
    """MAGeCKFlute's test data: Pan et al. 2018 mouse B16F10 (Pmel-1 T-cell co-culture) CRISPR screen.

    Returns
    -------
    dict of pandas.DataFrame
        ``rra_gene`` (19,326 mouse genes, MAGeCK RRA: id, num, neg|score … pos|lfc), ``mle_gene`` (19,675 genes,
        MAGeCK MLE: Gene, sgRNA and <condition>|beta/z/p-value/fdr/wald-p-value/wald-fdr for Pmel1_Input,
        Pmel1_Ctrl, Pmel1), ``sgrna`` (794 sgRNAs, RRA sgRNA summary: sgrna, Gene, counts, LFC, FDR, …),
        ``countsummary`` (4 libraries: reads, mapped, Gini index, …).
    """
    names = {
        "rra_gene": ("rra.gene_summary.txt", MAGECK_RRA_COLUMNS),
        "mle_gene": ("mle.gene_summary.txt", ("Gene", "sgRNA")),
        "sgrna": ("rra.sgrna_summary.txt", ("sgrna", "Gene", "LFC", "FDR")),
        "countsummary": ("countsummary.txt", ("File", "Label", "Reads", "Mapped")),
    }
    out = {}
    for key, (name, columns) in names.items():
        if name not in files:
            raise KeyError(f"missing {name}; have {sorted(files)}")
        out[key] = _check(pd.read_csv(files[name], sep="\t"), columns, name)
    if not any(c.endswith("|beta") for c in out["mle_gene"].columns):
        raise SchemaError("mle.gene_summary.txt has no <condition>|beta columns")
    return out


def _square(path: Path, sep: str = ",") -> pd.DataFrame:
    table = pd.read_csv(path, sep=sep, index_col=0)
    table.index = table.index.astype(str)
    table.index.name = None
    if table.shape[0] != table.shape[1]:
        raise SchemaError(f"{path.name}: expected a square gene × gene map, found {table.shape}")
    return table


@loader("norman2019_gi", returns="tables", targets=lambda d: column_genes(d["regr_fits"], "gene_a", "gene_b"))
def load_norman2019_gi(files: Mapping[str, Path], manifest, **_: object) -> dict[str, pd.DataFrame]:
    """Norman et al. 2019 CRISPRa K562 genetic-interaction results (Perturbseq_GI repository).

    Returns
    -------
    dict of pandas.DataFrame
        ``regr_fits`` (125 double perturbations, index ``name`` 'A_B', columns gene_a, gene_b, coef_first,
        coef_second, corr_fit, dcor, mad_explained, …: the regression of each double's expression profile on its
        two singles); ``emap`` (112 × 112 gene × gene GI map from growth, CRISPRa_K562_emap_gene.txt);
        ``processed_emap`` (112 × 112, same map with updated symbols); ``processed_perturbseq_emap`` (104 × 104,
        the map for genes in the Perturb-seq experiment); ``fitnesses`` (113 × 113 pairwise fitness);
        ``single_fitnesses`` (113: guide_target, average_fitness, chosen_guide_fitness); ``single_phenotypes``
        (113: guide_target, a.mean, b.mean); ``guides`` (105 guides chosen for Perturb-seq: gene, guide_id,
        bulk_fitness, protospacer).
    """
    need = {
        "regr_fits_final.csv", "CRISPRa_K562_emap_gene.txt", "processed_emap.csv", "processed_perturbseq_emap.csv",
        "processed_fitnesses.csv", "single_fitnesses.csv", "perturbseq_single_phenotype_table.csv",
        "20180821_guides_chosen_for_perturbseq.csv",
    }  # fmt: skip
    missing = sorted(need - set(files))
    if missing:
        raise KeyError(f"missing {missing}; have {sorted(files)}")
    fits = _check(pd.read_csv(files["regr_fits_final.csv"]), ["name", "coef_first", "coef_second"], "regr_fits")
    pairs = fits["name"].astype(str).str.split("_", n=1, expand=True)
    fits.insert(1, "gene_a", pairs[0])
    fits.insert(2, "gene_b", pairs[1])
    fits = fits.set_index("name")
    fits.index.name = "name"
    return {
        "regr_fits": fits,
        "emap": _square(Path(files["CRISPRa_K562_emap_gene.txt"]), sep="\t"),
        "processed_emap": _square(Path(files["processed_emap.csv"])),
        "processed_perturbseq_emap": _square(Path(files["processed_perturbseq_emap.csv"])),
        "fitnesses": _square(Path(files["processed_fitnesses.csv"])),
        "single_fitnesses": pd.read_csv(files["single_fitnesses.csv"]),
        "single_phenotypes": pd.read_csv(files["perturbseq_single_phenotype_table.csv"]),
        "guides": _check(
            pd.read_csv(files["20180821_guides_chosen_for_perturbseq.csv"]), ["gene", "guide_id"], "guides"
        ),
    }


TIAN_COLUMNS = {"Gene": "gene", "TSS": "tss", "Phenotype": "phenotype", "P Value": "p_value",
                "Gene Score": "gene_score", "Hit Class": "hit_class"}  # fmt: skip
TIAN_FILES = {"Tian_et_al_2019_2.csv": "tian2019_survival", "Tian_et_al_2020_15.csv": "tian2020_survival"}


@loader("tian_crisprbrain", returns="tables", targets=screen_genes)
def load_tian_crisprbrain(files: Mapping[str, Path], manifest, **_: object) -> dict[str, pd.DataFrame]:
    """Tian et al. 2019 / 2020 CRISPRi survival screens in iPSC-derived neurons (CRISPRbrain gene tables).

    Returns
    -------
    dict of pandas.DataFrame
        ``tian2019_survival`` (2,555 genes) and ``tian2020_survival`` (20,485 genes), one row per gene (or per TSS
        where a gene has several): ``gene``, ``tss``, ``phenotype`` (the screen's survival phenotype; negative =
        knockdown kills neurons), ``p_value``, ``gene_score`` (phenotype × -log10 p, MAGeCK-iNC), ``hit_class``
        (Negative Hit / Positive Hit / Non-Hit), and ``score`` (= gene_score, the common column of gene-level
        screens). CRISPRbrain's link column is dropped.
    """
    out = {}
    for name, key in TIAN_FILES.items():
        if name not in files:
            raise KeyError(f"missing {name}; have {sorted(files)}")
        table = _check(pd.read_csv(files[name], encoding="utf-8-sig"), list(TIAN_COLUMNS), name)
        table = table[list(TIAN_COLUMNS)].rename(columns=TIAN_COLUMNS)
        for column in ("phenotype", "p_value", "gene_score"):
            table[column] = pd.to_numeric(table[column], errors="raise")
        table["score"] = table["gene_score"]
        out[key] = table
    return out
