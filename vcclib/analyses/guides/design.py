"""What a CRISPRi sgRNA library's design table says about knockdown (Replogle 2022, Table S1).

Replogle et al. 2022 used a dual-guide library: every perturbation is a *pair* of sgRNAs (``sgid_a``,
``sgid_b``) against the same transcription start site; a gene with two annotated TSSs has either one perturbation
covering both (``P1P2``) or one per TSS (``P1``, ``P2``). An sgRNA id ``<gene>_<strand>_<position>.<length>-<TSS>``
carries its strand and genomic position (:func:`parse_sgid`). :func:`design_table` adds, per perturbation, the
protospacers' GC content, the distance between the two sgRNAs and whether a guide is shared with another
perturbation, and joins the measured knockdown of the target (``percent_knockdown`` of Tables S2–S3, a fraction,
−1 = silenced; ``knockdown`` here is its negative: 1 = silenced).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

_SGID = re.compile(r"^(?P<gene>.+)_(?P<strand>[+-])_(?P<position>\d+)\.(?P<length>\d+)-(?P<tss>.+)$")


def parse_sgid(sgid: pd.Series) -> pd.DataFrame:
    """Split ``<gene>_<strand>_<position>.<length>-<TSS>`` ids into columns (NaN where an id does not parse)."""
    parts = sgid.astype(str).str.extract(_SGID)
    parts["position"] = pd.to_numeric(parts["position"], errors="coerce")
    parts["length"] = pd.to_numeric(parts["length"], errors="coerce")
    return parts


def gc_content(sequences: pd.Series) -> pd.Series:
    """Share of G and C in each sequence (NaN for a missing one)."""
    s = sequences.astype("string").str.upper()
    return (s.str.count("G") + s.str.count("C")) / s.str.len()


def design_table(libraries: pd.DataFrame, statistics: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per targeting perturbation with its design features and, with ``statistics``, its knockdown.

    Columns ``perturbation_id``, ``screen``, ``gene``, ``transcript``, ``tss_design`` (``both TSSs`` for P1P2,
    ``one of two TSSs`` for P1/P2, else ``other``), ``gc`` (mean GC of the two protospacers), ``pair_distance``
    (bp between the two sgRNAs' positions), ``same_strand``, ``either_guide_duplicated``, and ``knockdown`` /
    ``target_expression`` where a screen measured the target.
    """
    lib = libraries[libraries["transcript"].astype(str) != "non-targeting"].copy()
    a, b = parse_sgid(lib["sgid_a"]), parse_sgid(lib["sgid_b"])
    lib["gc"] = (gc_content(lib["targeting_sequence_a"]) + gc_content(lib["targeting_sequence_b"])) / 2
    lib["pair_distance"] = (a["position"] - b["position"]).abs().to_numpy()
    lib["same_strand"] = (a["strand"] == b["strand"]).to_numpy()
    transcript = lib["transcript"].astype(str)
    lib["tss_design"] = np.select(
        [transcript == "P1P2", transcript.isin(["P1", "P2"])], ["both TSSs", "one of two TSSs"], "other"
    )
    keep = [
        "perturbation_id",
        "screen",
        "gene",
        "transcript",
        "tss_design",
        "gc",
        "pair_distance",
        "same_strand",
        "either_guide_duplicated",
    ]
    out = lib[keep].reset_index(drop=True)
    if statistics is not None:
        stats = statistics[["perturbation_id", "screen", "percent_knockdown", "target_expression"]].copy()
        stats["knockdown"] = -stats["percent_knockdown"]
        out = out.merge(
            stats[["perturbation_id", "screen", "knockdown", "target_expression"]],
            on=["perturbation_id", "screen"],
            how="left",
        )
    return out


def design_summary(table: pd.DataFrame, screen: str = "K562_genome_wide_day8") -> tuple[pd.DataFrame, dict]:
    """Median knockdown by design feature in one screen, and the numbers the chapter quotes.

    Returns ``(by_feature, record)``: ``by_feature`` rows ``feature``, ``level``, ``n``, ``median_knockdown``,
    ``share_under_half`` (knockdown < 0.5); the record holds counts, Spearman ρ of knockdown with GC content and
    pair distance, and P1 vs P2 of the genes targeted at two TSSs.
    """
    from scipy.stats import spearmanr

    t = table[(table["screen"] == screen) & table["knockdown"].notna()].copy()
    t["gc_bin"] = pd.qcut(t["gc"], 4, duplicates="drop").astype(str)
    t["distance_bin"] = pd.cut(
        t["pair_distance"], [-1, 25, 50, 100, 200, np.inf], labels=["≤25", "26–50", "51–100", "101–200", ">200"]
    ).astype(str)
    rows = []
    for feature in ("tss_design", "gc_bin", "distance_bin", "same_strand", "either_guide_duplicated"):
        for level, block in t.groupby(feature, observed=True):
            rows.append(
                {
                    "feature": feature,
                    "level": str(level),
                    "n": int(len(block)),
                    "median_knockdown": float(block["knockdown"].median()),
                    "share_under_half": float((block["knockdown"] < 0.5).mean()),
                }
            )
    by_feature = pd.DataFrame(rows)
    two = t[t["transcript"].isin(["P1", "P2"])].pivot_table(index="gene", columns="transcript", values="knockdown")
    two = two.dropna()
    gc_rho = spearmanr(t["gc"], t["knockdown"], nan_policy="omit").statistic
    dist_rho = spearmanr(t["pair_distance"], t["knockdown"], nan_policy="omit").statistic
    full = table[table["screen"] == screen]
    record = {
        "screen": screen,
        "n_perturbations": int(len(full)),
        "n_genes": int(full["gene"].nunique()),
        "n_with_knockdown": int(len(t)),
        "median_knockdown": float(t["knockdown"].median()),
        "share_under_half": float((t["knockdown"] < 0.5).mean()),
        "share_two_tss_separate": float((full["tss_design"] == "one of two TSSs").mean()),
        "n_duplicated": int(full["either_guide_duplicated"].sum()),
        "median_gc": float(full["gc"].median()),
        "median_pair_distance": float(full["pair_distance"].median()),
        "gc_spearman": float(gc_rho),
        "distance_spearman": float(dist_rho),
        "median_knockdown_both_tss": float(t.loc[t["tss_design"] == "both TSSs", "knockdown"].median()),
        "median_knockdown_one_tss": float(t.loc[t["tss_design"] == "one of two TSSs", "knockdown"].median()),
        "n_genes_p1_p2": int(len(two)),
        "median_p1_minus_p2": float((two["P1"] - two["P2"]).median()) if len(two) else np.nan,
        "share_p1_stronger": float((two["P1"] > two["P2"]).mean()) if len(two) else np.nan,
    }
    return by_feature, record
