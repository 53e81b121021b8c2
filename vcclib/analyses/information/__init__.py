"""Information content: what each modality tells about another, and how many measured genes a readout needs.

Modules: :mod:`.readout` (k measured genes → the rest), :mod:`.modalities` (modality × modality matrix),
:mod:`.priors` (prior-knowledge sources for unseen perturbations). :func:`records` turns their tables into the
numbers the chapter quotes; :func:`conclusions` writes the answer from those numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vcclib.analyses.information.modalities import coverage, modality_matrix, ranked_links
from vcclib.analyses.information.priors import prior_benchmark, summarise_priors
from vcclib.analyses.information.readout import placement_by_k, readout_size, summarise_readout

__all__ = ["conclusions", "coverage", "modality_matrix", "placement_by_k", "prior_benchmark", "ranked_links",
           "readout_size", "records", "summarise_priors", "summarise_readout"]


def _k_needed(placed: pd.DataFrame, level: float) -> dict[str, dict[str, int | None]]:
    out = {}
    for (dataset, choice), block in placed[~placed["gene_choice"].isin(["none", "all"])].groupby(
            ["dataset", "gene_choice"]):
        reached = block[block["placement"] >= level].sort_values("k")
        out.setdefault(dataset, {})[choice] = int(reached["k"].iloc[0]) if len(reached) else None
    return out


def records(readout: pd.DataFrame | None = None, matrix: pd.DataFrame | None = None,
            cover: pd.DataFrame | None = None, priors: pd.DataFrame | None = None,
            level: float = 0.8, min_n: int = 30) -> dict:
    """The chapter's numbers from its tables (each part optional)."""
    rec: dict = {"level": level, "min_n": min_n}
    if readout is not None and len(readout):
        placed = placement_by_k(readout)
        rec["k_needed"] = _k_needed(placed, level) if len(placed) else {}
        pear = readout[readout["metric"] == "pearson_delta"]
        anchors = pear[pear["gene_choice"].isin(["none", "all"])]
        rec["anchors"] = {d: dict(zip(b["gene_choice"], b["value"].round(3))) for d, b in anchors.groupby("dataset")}
        inference = readout[(readout["gene_choice"] == "l1000_inference")
                            & (readout["metric"] == "pearson_delta_unmeasured")]
        if len(inference):
            rec["l1000_inference_r"] = round(float(inference["value"].iloc[0]), 3)
            mean = readout[(readout["dataset"] == inference["dataset"].iloc[0]) & (readout["gene_choice"] == "none")
                           & (readout["metric"] == "pearson_delta")]
            rec["l1000_mean_r"] = round(float(mean["value"].iloc[0]), 3) if len(mean) else None
    if matrix is not None and len(matrix):
        links = ranked_links(matrix, min_n=min_n)
        rec["top_links"] = [{"a": r.source, "b": r.target, "rho": round(float(r.value), 3), "n": int(r.n),
                             "ci": [round(float(r.ci_low), 3), round(float(r.ci_high), 3)],
                             "unique_gain": None if pd.isna(r.unique_gain) else round(float(r.unique_gain), 3),
                             "given": r.given} for r in links.head(6).itertuples()]
        tested = matrix[np.isfinite(matrix["value"])]
        rec["n_pairs"] = int(len(matrix) // 2)
        rec["n_pairs_tested"] = int(len(tested) // 2)
        rec["n_pairs_small"] = int((matrix["small_overlap"]).sum() // 2)
        rec["n_pairs_significant"] = int(len(links))
        solo = []
        for name in sorted(set(matrix["source"])):
            rows = matrix[(matrix["source"] == name) & (matrix["n"] >= min_n) & (matrix["p_perm"] < 0.05)]
            if rows.empty:
                solo.append(name)
        rec["unlinked"] = solo
    if cover is not None and len(cover):
        top = cover.sort_values("only_here", ascending=False).head(3)
        rec["only_here"] = dict(zip(top["modality"], top["only_here"].astype(int)))
    if priors is not None and len(priors):
        pear = priors[(priors["metric"] == "pearson_delta")].dropna(subset=["placement"])
        best = pear.loc[pear.groupby("task")["placement"].idxmax()] if len(pear) else pear
        rec["best_prior"] = {r.task: {"source": r.source, "placement": round(float(r.placement), 3),
                                      "low": round(float(r.low), 3), "high": round(float(r.high), 3),
                                      "fallback": round(float(r.fallback), 3)} for r in best.itertuples()}
        rec["prior_mean"] = pear.groupby("source")["placement"].mean().round(3).sort_values(ascending=False).to_dict()
    return rec


def conclusions(rec: dict) -> list[str]:
    """The chapter's answer as sentences whose numbers come from :func:`records`."""
    out = []
    if rec.get("top_links"):
        parts = [f"{x['a']} ↔ {x['b']} (ρ = {x['rho']:+.2f}, 95 % CI {x['ci'][0]:+.2f} to {x['ci'][1]:+.2f}, "
                 f"n = {x['n']})" for x in rec["top_links"][:4]]
        out.append("Strongest cross-modality links, ranked by |Spearman ρ| (n ≥ "
                   f"{rec['min_n']} genes, permutation p < 0.05): " + "; ".join(parts) + ".")
        gains = [x for x in rec["top_links"] if x["unique_gain"] is not None]
        if gains:
            x = gains[0]
            out.append(f"Beyond the best other modality ({x['given']}), {x['a']} still tells about {x['b']}: "
                       f"partial ρ = {x['unique_gain']:+.2f}.")
        out.append(f"Of {rec['n_pairs']} modality pairs, {rec['n_pairs_tested']} share enough genes to be tested, "
                   f"{rec['n_pairs_significant']} are linked (n ≥ {rec['min_n']}, p < 0.05) and {rec['n_pairs_small']} "
                   "share fewer than " f"{rec['min_n']} genes.")
    if rec.get("unlinked"):
        out.append("No modality is linked (on ≥ " f"{rec['min_n']} genes) to: " + ", ".join(rec["unlinked"])
                   + " — what they carry is their own, or their overlaps are too small to say.")
    if rec.get("only_here"):
        out.append("Genes measured by one modality only: " + ", ".join(f"{k} {v:,}" for k, v in
                                                                     rec["only_here"].items()) + ".")
    if rec.get("k_needed"):
        parts = []
        for dataset, choices in rec["k_needed"].items():
            best = {c: k for c, k in choices.items() if k is not None}
            if best:
                choice = min(best, key=best.get)
                parts.append(f"{dataset}: {best[choice]} {choice} genes")
            else:
                parts.append(f"{dataset}: not reached below all genes")
        out.append(f"Measured genes needed to recover {rec['level']:.0%} of the way from the mean-effect baseline to "
                   "a technical duplicate (pearson_delta, all genes): " + "; ".join(parts) + ".")
    unordered = {d: a for d, a in rec.get("anchors", {}).items() if "all" in a and "none" in a and a["all"] <= a["none"]}
    for dataset, a in unordered.items():
        out.append(f"{dataset}: a technical duplicate scores below the mean-effect baseline on pearson_delta "
                   f"({a['all']:.2f} vs {a['none']:.2f}), so the readout size cannot be placed there — its effects "
                   "are small next to the noise of half a group's cells.")
    if rec.get("l1000_inference_r") is not None:
        out.append(f"L1000: the 978 landmarks of the consensus knockdown signatures predict the 11,350 inferred "
                   f"genes with pearson_delta {rec['l1000_inference_r']:.2f} on held-out signatures (mean-signature "
                   f"baseline {rec['l1000_mean_r']:.2f}) — the inferred genes are themselves a linear readout of the "
                   "landmarks, so this measures how little of the inference 20 training signatures can relearn, not "
                   "the truth of the inference.")
    if rec.get("best_prior"):
        parts = [f"{task}: {b['source']} ({b['placement']:.2f}, seeds {b['low']:.2f}–{b['high']:.2f}, "
                 f"{b['fallback']:.0%} fallback)" for task, b in rec["best_prior"].items()]
        out.append("Best prior for unseen perturbations (linear baseline, placement between MIN 0 and MAX 1 on "
                   "pearson_delta): " + "; ".join(parts) + ".")
    return out
