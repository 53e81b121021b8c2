"""Information content: what each modality tells about another, and how many measured genes a readout needs.

Modules: :mod:`.readout` (k measured genes → the rest), :mod:`.modalities` (one named quantity per gene and
modality), :mod:`.matrix` (modality × modality statistics), :mod:`.priors` (prior-knowledge sources for unseen
perturbations), :mod:`.cache` (each dataset read once per run). :func:`records` turns their tables into the
numbers the chapter quotes; :func:`conclusions` writes the answer from those numbers and :func:`weak_points` the
section *Where the evidence is weak*.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vcclib.analyses.information.cache import loaded_once
from vcclib.analyses.information.matrix import best_partners, coverage, modality_matrix, ranked_links
from vcclib.analyses.information.priors import anchor_diagnosis, prior_benchmark, summarise_priors
from vcclib.analyses.information.readout import placement_by_k, readout_size, summarise_readout
from vcclib.analyses.takeaways import Takeaways, names, number, share

__all__ = [
    "anchor_diagnosis",
    "best_partners",
    "conclusions",
    "coverage",
    "loaded_once",
    "modality_matrix",
    "placement_by_k",
    "prior_benchmark",
    "ranked_links",
    "readout_size",
    "records",
    "summarise_priors",
    "summarise_readout",
    "weak_points",
]


def _k_needed(placed: pd.DataFrame, level: float) -> dict[str, dict[str, int | None]]:
    out = {}
    for (dataset, choice), block in placed[~placed["gene_choice"].isin(["none", "all"])].groupby(
        ["dataset", "gene_choice"]
    ):
        reached = block[block["placement"] >= level].sort_values("k")
        out.setdefault(dataset, {})[choice] = int(reached["k"].iloc[0]) if len(reached) else None
    return out


def _readout_records(readout: pd.DataFrame, level: float) -> dict:
    rec: dict = {}
    placed = placement_by_k(readout)
    rec["k_needed"] = _k_needed(placed, level) if len(placed) else {}
    pear = readout[readout["metric"] == "pearson_delta"]
    anchors = pear[pear["gene_choice"].isin(["none", "all"])]
    rec["anchors"] = {d: dict(zip(b["gene_choice"], b["value"].round(3))) for d, b in anchors.groupby("dataset")}
    inference = readout[
        (readout["gene_choice"] == "l1000_inference") & (readout["metric"] == "pearson_delta_unmeasured")
    ]
    if len(inference):
        rec["l1000_inference_r"] = round(float(inference["value"].iloc[0]), 3)
        mean = readout[
            (readout["dataset"] == inference["dataset"].iloc[0])
            & (readout["gene_choice"] == "none")
            & (readout["metric"] == "pearson_delta")
        ]
        rec["l1000_mean_r"] = round(float(mean["value"].iloc[0]), 3) if len(mean) else None
    if "n_perturbations" in readout:
        rec["readout_perturbations"] = {d: int(b["n_perturbations"].median()) for d, b in readout.groupby("dataset")}
        rec["readout_seeds"] = int(readout["n_seeds"].max())
    return rec


def _matrix_records(matrix: pd.DataFrame, min_n: int) -> dict:
    rec: dict = {}
    links = ranked_links(matrix, min_n=min_n)
    rec["top_links"] = [
        {
            "a": r.source,
            "b": r.target,
            "rho": round(float(r.value), 3),
            "n": int(r.n),
            "ci": [round(float(r.ci_low), 3), round(float(r.ci_high), 3)],
            "unique_gain": None if pd.isna(r.unique_gain) else round(float(r.unique_gain), 3),
            "given": r.given,
        }
        for r in links.head(6).itertuples()
    ]
    same = matrix["same_source"].astype(bool) if "same_source" in matrix else pd.Series(False, index=matrix.index)
    cross = matrix[~same]
    rec["n_modalities"] = int(matrix["source"].nunique())
    rec["n_pairs"] = int(len(cross) // 2)
    rec["n_pairs_same_source"] = int(same.sum() // 2)
    rec["n_pairs_tested"] = int(np.isfinite(cross["value"]).sum() // 2)
    rec["n_pairs_small"] = int(((cross["n"] > 0) & cross["small_overlap"]).sum() // 2)
    rec["n_pairs_empty"] = int((cross["n"] == 0).sum() // 2)
    rec["n_pairs_significant"] = int(len(links))
    linked = set(links["source"]) | set(links["target"])
    rec["unlinked"] = sorted(set(matrix["source"]) - linked)
    partners = best_partners(matrix, min_n=min_n)
    rec["best_partner"] = {
        r.source: {"partner": r.target, "rho": round(float(r.value), 3), "n": int(r.n)} for r in partners.itertuples()
    }
    return rec


def _prior_records(priors: pd.DataFrame, placed: pd.DataFrame | None, prior_cover: pd.DataFrame | None) -> dict:
    rec: dict = {}
    pear = priors[(priors["metric"] == "pearson_delta")].dropna(subset=["placement"])
    best = pear.loc[pear.groupby("task")["placement"].idxmax()] if len(pear) else pear
    rec["best_prior"] = {
        r.task: {
            "source": r.source,
            "placement": round(float(r.placement), 3),
            "low": round(float(r.low), 3),
            "high": round(float(r.high), 3),
            "fallback": round(float(r.fallback), 3),
        }
        for r in best.itertuples()
    }
    rec["prior_mean"] = pear.groupby("source")["placement"].mean().round(3).sort_values(ascending=False).to_dict()
    rec["prior_tasks"] = sorted(priors["task"].unique())
    rec["prior_seeds"] = int(priors["n_seeds"].max()) if "n_seeds" in priors and len(priors) else 0
    if placed is not None and len(placed):
        diag = anchor_diagnosis(placed)
        undefined = {}
        for task, block in diag.groupby("task"):
            main = block[block["metric"] == "pearson_delta"]
            if len(main) and int(main["ordered_seeds"].iloc[0]) == 0:
                undefined[task] = {
                    "min_score": round(float(main["min_score"].iloc[0]), 3),
                    "max_score": round(float(main["max_score"].iloc[0]), 3),
                    "n_seeds": int(main["n_seeds"].iloc[0]),
                    "unordered_metrics": sorted(block.loc[block["ordered_seeds"] == 0, "metric"]),
                    "ordered_metrics": sorted(block.loc[block["ordered_seeds"] == block["n_seeds"], "metric"]),
                }
        rec["prior_undefined"] = undefined
    if prior_cover is not None and len(prior_cover):
        low = prior_cover[prior_cover["covered"] < 0.5]
        rec["prior_low_coverage"] = [
            {"source": r.source, "task": r.task, "covered": round(float(r.covered), 3)} for r in low.itertuples()
        ]
    return rec


def records(
    readout: pd.DataFrame | None = None,
    matrix: pd.DataFrame | None = None,
    cover: pd.DataFrame | None = None,
    priors: pd.DataFrame | None = None,
    placed: pd.DataFrame | None = None,
    prior_cover: pd.DataFrame | None = None,
    skipped: dict | None = None,
    settings: dict | None = None,
    level: float = 0.8,
    min_n: int = 30,
) -> dict:
    """The chapter's numbers from its tables (each part optional).

    Parameters
    ----------
    readout
        :func:`summarise_readout`'s table.
    matrix, cover
        :func:`modality_matrix` and :func:`coverage`.
    priors, placed, prior_cover
        :func:`summarise_priors`' table, the per-seed placements and the coverage of :func:`prior_benchmark`.
    skipped
        Modalities not built here (name → why).
    settings
        The run's settings (cells, seeds, resamples), copied into the records for the conventions.
    """
    rec: dict = {"level": level, "min_n": min_n, "settings": dict(settings or {}), "skipped": dict(skipped or {})}
    if readout is not None and len(readout):
        rec.update(_readout_records(readout, level))
    if matrix is not None and len(matrix):
        rec.update(_matrix_records(matrix, min_n))
    if cover is not None and len(cover):
        top = cover.sort_values("only_here", ascending=False).head(3)
        rec["only_here"] = dict(zip(top["modality"], top["only_here"].astype(int)))
        small = cover.sort_values("genes").head(3)
        rec["smallest_modalities"] = dict(zip(small["modality"], small["genes"].astype(int)))
    if priors is not None and len(priors):
        rec.update(_prior_records(priors, placed, prior_cover))
    return rec


def _link(x: dict) -> str:
    return f"{x['a']} ↔ {x['b']} (ρ = {x['rho']:+.2f}, 95 % CI {x['ci'][0]:+.2f} to {x['ci'][1]:+.2f}, n = {x['n']:,})"


def conclusions(rec: dict) -> Takeaways:
    """The chapter's answer, every number formatted from :func:`records`."""
    out = []
    if rec.get("top_links"):
        out.append(
            "Strongest links between modalities, ranked by |Spearman ρ| (n ≥ "
            f"{rec['min_n']} shared genes, permutation p < 0.05, two quantities of the same screen not "
            "counted): " + "; ".join(_link(x) for x in rec["top_links"][:4]) + "."
        )
        gains = [x for x in rec["top_links"] if x["unique_gain"] is not None][:3]
        if gains:
            out.append(
                "What a modality adds beyond the best other one for the same target (partial ρ given it): "
                + "; ".join(f"{x['a']} → {x['b']} given {x['given']}: {x['unique_gain']:+.2f}" for x in gains)
                + "."
            )
    if "n_pairs" in rec:
        out.append(
            f"Of {rec['n_pairs']:,} pairs of {rec['n_modalities']} modalities, {rec['n_pairs_tested']:,} share "
            f"enough genes to be tested and {rec['n_pairs_significant']:,} are linked (n ≥ {rec['min_n']}, "
            f"p < 0.05); {rec['n_pairs_small']:,} share fewer than {rec['min_n']} genes and "
            f"{rec['n_pairs_empty']:,} none."
        )
    if rec.get("unlinked"):
        out.append(
            f"No other modality is linked (on ≥ {rec['min_n']} genes) to {names(rec['unlinked'])}: what they "
            "carry is their own here, or their overlaps are too small to say."
        )
    if rec.get("only_here"):
        out.append(
            "Genes measured by one modality only: " + ", ".join(f"{k} {v:,}" for k, v in rec["only_here"].items()) + "."
        )
    if rec.get("k_needed"):
        parts = []
        for dataset, choices in rec["k_needed"].items():
            best = {c: k for c, k in choices.items() if k is not None}
            if best:
                choice = min(best, key=best.get)
                parts.append(f"{dataset}: {best[choice]} {choice} genes")
            else:
                parts.append(f"{dataset}: not reached below all genes")
        out.append(
            f"Measured genes needed to recover {share(rec['level'])} of the way from the mean-effect baseline "
            "to a technical duplicate (pearson_delta, all genes): " + "; ".join(parts) + "."
        )
    for dataset, a in _unordered_readouts(rec).items():
        out.append(
            f"{dataset}: a technical duplicate scores below the mean-effect baseline on pearson_delta "
            f"({number(a['all'])} vs {number(a['none'])}), so the readout size cannot be placed there."
        )
    if rec.get("l1000_inference_r") is not None:
        out.append(
            f"L1000: the 978 landmarks of the consensus knockdown signatures predict the 11,350 inferred "
            f"genes with pearson_delta {number(rec['l1000_inference_r'])} on held-out signatures "
            f"(mean-signature baseline {number(rec['l1000_mean_r'])}); the inferred genes are a linear "
            "readout of the landmarks, so this measures how much of that inference the training signatures "
            "relearn, not the truth of the inference."
        )
    if rec.get("best_prior"):
        parts = [
            f"{task}: {b['source']} ({number(b['placement'])}, seeds {number(b['low'])}–{number(b['high'])}, "
            f"{share(b['fallback'])} fallback)"
            for task, b in rec["best_prior"].items()
        ]
        out.append(
            "Best prior for unseen perturbations (linear baseline, placement between MIN 0 and MAX 1 on "
            "pearson_delta): " + "; ".join(parts) + "."
        )
    if rec.get("prior_undefined"):
        out.append(
            "No prior can be placed on " + names(rec["prior_undefined"]) + ": there the technical duplicate "
            "does not beat the mean-effect baseline (see *Where the evidence is weak*)."
        )
    return Takeaways(out, conventions=conventions(rec))


def _unordered_readouts(rec: dict) -> dict:
    return {d: a for d, a in rec.get("anchors", {}).items() if "all" in a and "none" in a and a["all"] <= a["none"]}


def conventions(rec: dict) -> list[str]:
    """The conventions the numbers depend on (quoted under the takeaways)."""
    s = rec.get("settings", {})
    out = [
        "modalities joined on gene symbols as each source spells them; ρ = Spearman over the genes two "
        "modalities share, with a percentile bootstrap interval"
        + (f" ({s['n_boot']} resamples) and a permutation p ({s['n_perm']} shuffles)" if "n_boot" in s else ""),
        "readout: pseudobulk = mean log1p over cells, Δ against the covariate's control cells, reference = "
        "half B of each held-out group"
        + (f", at most {s['max_cells_per_group']} cells per group" if s.get("max_cells_per_group") else ""),
        "priors: placement 0 = the training perturbations' mean effect (`perturbed_mean`), 1 = a technical "
        "duplicate" + (f", at most {s['prior_max_cells']} cells per perturbation" if s.get("prior_max_cells") else ""),
    ]
    if s.get("device"):
        out.append(str(s["device"]))
    return out


def weak_points(rec: dict) -> list[str]:
    """*Where the evidence is weak*: one sentence per limitation, numbers from :func:`records`."""
    lines = []
    if "n_pairs_small" in rec:
        small = ", ".join(f"{k} {v:,}" for k, v in rec.get("smallest_modalities", {}).items())
        lines.append(
            f"**Small overlaps.** {rec['n_pairs_small']:,} modality pairs share between 1 and "
            f"{rec['min_n'] - 1} genes and {rec['n_pairs_empty']:,} share none; the smallest modalities "
            f"({small} genes) can only be compared with genome-wide screens, with wide intervals."
        )
    if rec.get("n_pairs_same_source"):
        lines.append(
            f"**Same measurements.** {rec['n_pairs_same_source']} pairs are two quantities of one screen "
            "(e.g. Replogle's K562 DEG count and energy test, DepMap's Chronos effects and dependency calls); "
            "they are in the matrix but not ranked, as their agreement is not information from another "
            "modality."
        )
    lines.append(
        "**Different contexts.** The quantities come from different cells (THP-1, K562, RPE1, HepG2, A549, "
        "T cells, iPSC neurons, cancer lines, mouse B16F10): a low ρ may be context, not information."
    )
    if rec.get("readout_perturbations"):
        parts = ", ".join(f"{d} {n}" for d, n in rec["readout_perturbations"].items())
        partial = [d for d in ("norman19", "kang", "papalexi") if d in rec["readout_perturbations"]]
        lines.append(
            f"**Readout size on few perturbations.** Held-out groups per seed: {parts}; "
            f"{rec.get('readout_seeds', 1)} seed(s)."
            + (
                f" {names(partial)} measure a gene panel (Norman 500 HVGs, Papalexi 299 genes, Kang 6,998), "
                "not whole transcriptomes, so 'all genes' is the dataset's gene space."
                if partial
                else ""
            )
        )
    for dataset, a in _unordered_readouts(rec).items():
        lines.append(
            f"**{dataset} readout unplaced.** With half of each group's cells, the technical duplicate "
            f"scores {number(a['all'])} on pearson_delta against the mean effect's {number(a['none'])}."
        )
    cells = rec.get("settings", {}).get("prior_max_cells")
    for task, u in rec.get("prior_undefined", {}).items():
        lines.append(
            f"**Priors on {task}: no placement.** Over {u['n_seeds']} seed(s) the technical duplicate scores "
            f"{number(u['max_score'])} on pearson_delta and the mean-effect baseline {number(u['min_score'])}"
            + (f" (at most {cells} cells per perturbation, so {cells // 2} per half)" if cells else "")
            + ": the MAX anchor is not above the MIN anchor, so (u − MIN)/(MAX − MIN) has no meaning, on "
            + names(u["unordered_metrics"])
            + ". Its perturbations' effects are small next to the noise of half a "
            "group's cells, and the shared perturbed-vs-control shift that the mean effect carries dominates. "
            "Metrics with ordered anchors on every seed: " + names(u["ordered_metrics"]) + "."
        )
    if rec.get("prior_low_coverage"):
        items = sorted(
            {f"{r['source']} ({r['task'].split(':')[0]}, {share(r['covered'])})" for r in rec["prior_low_coverage"]}
        )
        lines.append(
            "**Prior coverage.** Sources covering under half of a task's targets: "
            + names(items)
            + "; their placement mostly measures the fallback to the mean effect."
        )
    lines.append(
        "**Symbols.** Modalities are joined on gene symbols as each source spells them (PERISCOPE carries "
        "Excel-mangled names such as 7-Sep; the mouse screen is matched by upper-case symbol), which loses "
        "a few genes."
    )
    if rec.get("skipped"):
        lines.append("**Modalities not built here:** " + "; ".join(f"{k} ({v})" for k, v in rec["skipped"].items()))
    return lines
