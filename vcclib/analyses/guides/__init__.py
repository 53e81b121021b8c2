"""Guide efficacy and off-targeting: how much the guide matters, and what correcting for it changes.

Submodules, one concern each:

* :mod:`.lowmoi` — a low-MOI Perturb-seq screen guide by guide (Papalexi 2021 and any h5ad with a guide column):
  knockdown with resampling-calibrated p-values, signatures, within- vs between-target agreement, Mixscape escape,
  replicate agreement;
* :mod:`.correction` — dropping failed guides and escaping cells, and the consequences for effects, null calls,
  replicate agreement and benchmark placements;
* :mod:`.screens` — DepMap: Achilles 19Q2 guide efficacy and multi-gene guides; the Chronos sample's gene
  effects with and without efficacy weighting and copy-number correction (a documented re-implementation);
* :mod:`.highmoi` — a high-MOI CRISPRi screen (Gasperini 2019) gRNA group by gRNA group, p-values from
  conditional resampling within batch × gRNAs-per-cell strata, checked on the non-targeting gRNAs;
* :mod:`.design` — Replogle 2022's dual-sgRNA CRISPRi library table against the measured knockdown;
* :mod:`.chronos` — Chronos itself in its own environment (``scripts/env_chronos.sh``), run as a subprocess.

This module holds the summaries the chapter quotes and :func:`conclusions`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vcclib.analyses.takeaways import Takeaways

STATUSES = ("effective", "weak", "failed", "target without effect", "too few cells")


def guide_summary(guides: pd.DataFrame) -> dict:
    """Counts and shares of guide calls, escape and the spread of effects between a target's guides."""
    judged = guides[guides["status"].isin(["effective", "weak", "failed"])]
    counts = guides["status"].value_counts().reindex(STATUSES, fill_value=0)
    spread = []
    for target, rows in judged.groupby("target"):
        rows = rows[rows["n_cells"] > 0]
        if len(rows) >= 2 and rows["effect_norm"].mean() > 0:
            spread.append(
                {
                    "target": target,
                    "norm_range_rel": float(
                        (rows["effect_norm"].max() - rows["effect_norm"].min()) / rows["effect_norm"].mean()
                    ),
                    "log2fc_range": float(rows["target_log2fc"].max() - rows["target_log2fc"].min()),
                }
            )
    spread = pd.DataFrame(spread, columns=["target", "norm_range_rel", "log2fc_range"])
    return {
        "n_guides": int(len(guides)),
        "n_targets": int(guides["target"].nunique()),
        "status_counts": {k: int(v) for k, v in counts.items()},
        "n_judged": int(len(judged)),
        "share_failed": float((judged["status"] == "failed").mean()) if len(judged) else np.nan,
        "share_weak": float((judged["status"] == "weak").mean()) if len(judged) else np.nan,
        "failed_guides": judged.loc[judged["status"] == "failed", "guide"].tolist(),
        "weak_guides": judged.loc[judged["status"] == "weak", "guide"].tolist(),
        "targets_without_effect": sorted(guides.loc[guides["status"] == "target without effect", "target"].unique()),
        "median_escape": float(guides["escape_fraction"].median()),
        "max_escape_guide": (
            guides.loc[guides["escape_fraction"].idxmax(), "guide"] if guides["escape_fraction"].notna().any() else ""
        ),
        "max_escape": float(guides["escape_fraction"].max()),
        "median_efficacy": float(judged["efficacy"].median()) if len(judged) else np.nan,
        "median_norm_range_rel": float(spread["norm_range_rel"].median()) if len(spread) else np.nan,
        "median_log2fc_range": float(spread["log2fc_range"].median())
        if spread["log2fc_range"].notna().any()
        else np.nan,
        "n_targets_spread": int(len(spread)),
    }


def agreement_summary(pairs: pd.DataFrame, reliability: pd.Series, partition: dict) -> dict:
    """Within- vs between-target agreement of guide signatures, with the split-half ceiling."""
    within = pairs.loc[pairs["pair"] == "within", "pearson_r"]
    between = pairs.loc[pairs["pair"] == "between", "pearson_r"]
    auc = np.nan
    if len(within) and len(between):
        from scipy.stats import mannwhitneyu

        auc = float(mannwhitneyu(within, between).statistic / (len(within) * len(between)))
    return {
        "median_within_r": float(within.median()),
        "median_between_r": float(between.median()),
        "n_within": int(len(within)),
        "n_between": int(len(between)),
        "auc_within_vs_between": auc,
        "median_split_half_r": float(reliability.median()) if len(reliability) else np.nan,
        **partition,
    }


def _fmt(x, digits=2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{digits}f}"


def _pct(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{100 * x:.0f}%"


def _tracks(*rhos) -> str:
    strongest = max(abs(r) for r in rhos if np.isfinite(r)) if any(np.isfinite(r) for r in rhos) else np.nan
    return "barely tracks" if strongest < 0.1 else "weakly tracks" if strongest < 0.3 else "tracks"


def conclusions(records: dict) -> Takeaways:
    """The chapter's answer (the key-takeaways box), every number formatted from ``records``."""
    out = []
    g, a = records.get("guides"), records.get("agreement")
    name = records.get("dataset", "the screen")
    if g:
        out.append(
            f"**How often a guide fails ({name}).** Of {g['n_judged']} guides whose target has a detectable effect, "
            f"{g['status_counts']['failed']} ({_pct(g['share_failed'])}) show no effect of their own and "
            f"{g['status_counts']['weak']} ({_pct(g['share_weak'])}) carry less than half of their siblings' effect; "
            f"{g['status_counts']['target without effect']} guides belong to targets with no detectable effect at all "
            f"({', '.join(g['targets_without_effect']) or 'none'}), where a guide cannot be judged."
        )
        out.append(
            f"**How much guide choice changes a measured effect.** Between the guides of one target, the effect size ‖Δ‖ "
            f"varies by a median {_pct(g['median_norm_range_rel'])} of its mean (range over {g['n_targets_spread']} targets), "
            f"and the target's own log2 fold change by a median {_fmt(g['median_log2fc_range'])} log2 units."
        )
    if a:
        out.append(
            f"Guides of the same target agree (median Pearson r of Δ {_fmt(a['median_within_r'])}) far more than guides "
            f"of different targets ({_fmt(a['median_between_r'])}; AUC {_fmt(a['auc_within_vs_between'])}), against a "
            f"split-half ceiling of {_fmt(a['median_split_half_r'])}; {_pct(a['within_share'])} of the guide-to-guide "
            f"variation lies within targets, of which sampling noise explains all but {_pct(a['excess_within_share'])} "
            "of the total."
        )
    if g and np.isfinite(g.get("median_escape", np.nan)):
        out.append(
            f"Mixscape calls a median {_pct(g['median_escape'])} of a guide's cells non-perturbed (escapers) in the "
            f"targets it can separate; the highest is {g['max_escape_guide']} ({_pct(g['max_escape'])})."
        )
    nc = records.get("null_calibration")
    if nc:
        out.append(
            f"Calibration on the real data: {nc['n_groups']} groups of {nc['group_size']} control cells relabelled as "
            f"guides give p < {nc['alpha']} for {_pct(nc['share_knock'])} (knockdown) and "
            f"{_pct(nc['share_signature'])} (signature) of them (expected {_pct(nc['alpha'])})."
        )
    c = records.get("correction")
    if c:
        out.append(
            f"**What correcting changes.** Dropping failed guides and escaping cells removes "
            f"{c['cells_removed']} of {c['cells_before']} targeted cells; the median effect size moves from "
            f"{_fmt(c['effect_before'], 3)} to {_fmt(c['effect_after'], 3)}, null-effect calls from {c['null_before']} to "
            f"{c['null_after']}, and median replicate agreement from {_fmt(c['replicate_before'])} to "
            f"{_fmt(c['replicate_after'])}."
        )
    w = records.get("weighted")
    if w:
        out.append(
            f"Down-weighting instead (cells weighted by guide efficacy × Mixscape's P(perturbed), {w['effective_cells']:.0f} "
            f"effective cells) moves the median own-target log2 fold change from {_fmt(w['lfc_before'])} to "
            f"{_fmt(w['lfc_after'])} (dropping: {_fmt(w['lfc_drop'])}) and the median effect size to "
            f"{_fmt(w['effect_after'], 3)}."
        )
    b = records.get("benchmark")
    if b:
        out.append(
            f"**Benchmark placements.** On the same split ({b['n_test']} held-out targets), the median placement of the "
            f"{b['n_baselines']} baselines moves by a median {_fmt(b['median_abs_change'])} (largest: {b['largest_baseline']}, "
            f"{_fmt(b['largest_change'])}); {b['n_rank_changes']} baselines change rank."
        )
    h = records.get("highmoi")
    if h:
        cal = h["calibration"]
        st = h["grna_status"]
        out.append(
            f"**High-MOI CRISPRi ({h['dataset']}).** {h['n_tss_significant']} of {h['n_tss_groups']} TSS positive-control "
            f"groups repress their gene (median log2FC {_fmt(h['median_tss_log2fc'])}); of {h['n_tss_grnas']} TSS gRNAs, "
            f"{st['effective']} are effective, {st['weak']} weak and {st['failed']} failed (median efficacy "
            f"{_pct(h['median_grna_efficacy'])} of the mRNA removed; the weakest, {h['weakest_grna']} at "
            f"{h['weakest_grna_target']}, removes {_pct(h['weakest_grna_efficacy'])}, p = {_fmt(h['weakest_grna_p'])}). "
            f"{h['n_enhancer_hits']} of {h['n_enhancer_pairs']} enhancer–gene pairs reach q < {h['fdr']} "
            f"({', '.join(h['enhancer_hits']) or 'none'})."
        )
        if cal.get("n_tests"):
            out.append(
                f"The conditional-resampling p-values are calibrated: {cal['n_tests']} non-targeting gRNA × gene tests give "
                f"p < {cal['alpha']} in {100 * cal['share_below_alpha']:.1f}% and p < 0.01 in {100 * cal['share_below_0_01']:.1f}% "
                f"(Kolmogorov–Smirnov distance to uniform {_fmt(cal['ks_statistic'], 3)})."
            )
    dz = records.get("design")
    if dz:
        out.append(
            f"**Guide design (Replogle 2022).** The {dz['n_perturbations']} perturbations of the K562 genome-wide library "
            f"are sgRNA pairs against one TSS ({_pct(dz['share_two_tss_separate'])} target one of a gene's two TSSs "
            f"separately; {dz['n_duplicated']} share a guide with another perturbation). Median knockdown is "
            f"{_pct(dz['median_knockdown'])} and {_pct(dz['share_under_half'])} knock down less than half; knockdown "
            f"{_tracks(dz['gc_spearman'], dz['distance_spearman'])} protospacer GC (Spearman ρ {_fmt(dz['gc_spearman'])}) or the distance between the two "
            f"sgRNAs (ρ {_fmt(dz['distance_spearman'])}), but strongly tracks the TSS design: pairs against a gene's only "
            f"or both TSSs knock down a median {_pct(dz['median_knockdown_both_tss'])}, pairs against one of two TSSs "
            f"{_pct(dz['median_knockdown_one_tss'])}; for {dz['n_genes_p1_p2']} genes targeted at P1 and P2 separately, "
            f"P1 knocks down more in {_pct(dz['share_p1_stronger'])}."
        )
    s = records.get("achilles")
    if s:
        out.append(
            f"**Achilles 19Q2.** The median CERES guide efficacy is {_fmt(s['efficacy_median'])}; "
            f"{_pct(s['share_below_0_5'])} of {s['n_guides_with_efficacy']} guides fall below 0.5. "
            f"{s['n_multi_gene_guides']} guides ({_pct(s['share_multi_gene'])}) align to several genes, and "
            f"{s['n_genes_under_2_effective']} of {s['n_genes']} genes rest on fewer than two effective gene-specific guides "
            f"({s['n_genes_under_2_effective_essential']} of them common essential)."
        )
    d = records.get("chronos_sample")
    if d:
        out.append(
            f"**DepMap-style correction (Chronos sample).** Naive guide-mean gene scores agree with the Chronos authors' fit "
            f"at r = {_fmt(d['naive_r'])} (Avana) and {_fmt(d['naive_r_ky'])} (KY); this chapter's efficacy weighting gives "
            f"{_fmt(d['efficacy_r'])} and {_fmt(d['efficacy_r_ky'])}, and weighting by Chronos's published efficacies "
            f"{_fmt(d['published_efficacy_r'])}. Efficacy weighting plus copy-number correction changes "
            f"{d['calls_changed']} of {d['n_pairs']} essentiality calls (effect < −0.5) in Avana."
        )
        out.append(
            f"Cutting toxicity: non-essential genes at relative copy number ≥ 2 score a median {_fmt(d['toxicity_amp_before'])} "
            f"before and {_fmt(d['toxicity_amp_after'])} after copy-number correction (copy number 0.8–1.2: "
            f"{_fmt(d['toxicity_neutral_before'])}). Broad vs Sanger on {d['bs_lines']} shared lines × {d['bs_genes']} genes: "
            f"r = {_fmt(d['bs_before'])} before and {_fmt(d['bs_after'])} after correction."
        )
        if d.get("chronos_r") is not None:
            out.append(
                f"Chronos itself ({d['chronos_epochs']} epochs, {d['chronos_seconds']} s) reproduces the published fit "
                f"at r = {_fmt(d['chronos_r'])}."
            )
    conventions = [
        "Δ = mean log1p − control mean log1p over all measured genes (replicate-matched controls)",
        "p-values from control resampling matched to each guide's size and replicates (low MOI), or to "
        "batch × gRNAs per cell (high MOI)",
        "DepMap scale: non-essential median 0, common-essential median −1; essential = effect < −0.5",
    ]
    return Takeaways(points=out, conventions=conventions)
