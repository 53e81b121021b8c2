"""The chapter's answer: the key-takeaways box and where the evidence is weak, every number from the records."""

from __future__ import annotations

from vcclib.analyses.metrics_and_baselines import SEPARATING_WIN_RATE
from vcclib.analyses.takeaways import Takeaways, names, number
from vcclib.analyses.vae_retraining.experiments import DEFAULT, REFERENCE


def _best(effects: dict) -> tuple[str, float]:
    if not effects:
        return "n/a", float("nan")
    key = max(effects, key=effects.get)
    return key.split("=", 1)[1], effects[key]


def conclusions(records: dict) -> Takeaways:
    """The chapter's answer, every number formatted from ``records`` (:func:`headline`)."""
    r = records
    lines = []
    for model, rows in r["vae_vs_baselines"].items():
        above = [
            f"{x['task']} {x['metric']} {number(x['vae'])} [{number(x['vae_low'])}, {number(x['vae_high'])}]"
            for x in rows
        ]
        wins = sum(1 for x in rows if x["beats_best"])
        clear = sum(1 for x in rows if x["above_mean_baseline"])
        lines.append(
            f"`{model}` beats the best MIN baseline on {wins} of {len(rows)} (task, metric) pairs and is "
            f"clearly above the mean baseline (interval above 0) on {clear}; placements: "
            f"{'; '.join(above)}"
        )
    loss_name, loss_value = _best(r["losses"])
    feature_name, feature_value = _best(r["features"])
    losses = ", ".join(
        f"{k.split('=', 1)[1]} {number(v)}" for k, v in sorted(r["losses"].items(), key=lambda kv: -kv[1])
    )
    feats = ", ".join(
        f"{k.split('=', 1)[1]} {number(v)}" for k, v in sorted(r["features"].items(), key=lambda kv: -kv[1])
    )
    curve = "; ".join(
        f"{k}: {number(v['first'])} at {v['fractions'][0]:g} → {number(v['last'])} at "
        f"{v['fractions'][-1]:g} of the training perturbations"
        for k, v in r["learning_curve"].items()
    )
    added = "; ".join(
        f"{learner}: "
        + " → ".join(
            f"{s['stage'].split('=', 1)[1]} {number(s['placement'])} [{number(s['low'])}, {number(s['high'])}] "
            f"({s['train_cells']:,} training cells)"
            for s in stages
        )
        for learner, stages in r.get("added_data", {}).items()
    )
    hypotheses = "; ".join(
        f"{k}: {number(v['placement'])} [{number(v['low'])}, {number(v['high'])}]"
        for k, v in r.get("hypotheses", {}).items()
    )
    diversity = "; ".join(
        f"{k}: effect spread {number(v['effect_spread_ratio'])}, cell variance {number(v['cell_variance_ratio'])}"
        for k, v in r["diversity"].items()
        if REFERENCE in k or DEFAULT in k or "loss=" in k
    )
    vae_spread = {k: v["effect_spread_ratio"] for k, v in r["diversity"].items() if k.startswith("cvae")}
    if vae_spread:
        low, high = min(vae_spread, key=vae_spread.get), max(vae_spread, key=vae_spread.get)
        diversity += (
            f". Over every VAE variant (auxiliary data included) the effect spread ranges from "
            f"{number(vae_spread[low])} ({low}) to {number(vae_spread[high])} ({high}); 1 is the real "
            f"spread"
        )
    points = [
        f"**Metrics used** (the MAX anchor beats the MIN anchor on ≥ {SEPARATING_WIN_RATE:.0%} of held-out "
        f"perturbations in this chapter's own runs): {names(r['trusted_metrics'])}. Not used: "
        f"{names(r['untrusted_metrics'])}.",
        "**VAE against the honest baselines** (placement 0 = mean of the training perturbations, 1 = technical "
        f"duplicate; mean over {len(r['seeds'])} seeds with a 95% interval): " + " ".join(f"{s}." for s in lines),
        f"**Losses, everything else fixed** (mean placement over the trusted metrics): {losses or 'n/a'}. Best: "
        f"{loss_name} ({number(loss_value)}).",
        f"**Auxiliary data for the perturbation shift**: {feats or 'n/a'}. Best: {feature_name} "
        f"({number(feature_value)}).",
        f"**More data** (nested training sets, mean placement over trusted metrics): {curve or 'n/a'}.",
        f"**More data, added datasets** (the same held-out Norman 2019 K562 perturbations; McFaline-Figueroa "
        f"2023 glioma lines added in the shared 500-gene space, without the held-out perturbations): "
        f"{added or 'n/a'}.",
        f"**Other hypothesis splits** (mean placement over trusted metrics, 95% interval): {hypotheses or 'n/a'}.",
        f"**Mode collapse** (predicted/real spread of perturbation effects; within-perturbation cell variance "
        f"ratio): {diversity or 'n/a'}.",
    ]
    conventions = [
        "log1p expression, all measured genes; pseudobulk = mean of log1p; Δ against the real control cells of "
        "the same cell line",
        f"at most {r['max_cells_per_perturbation']} cells per perturbation",
        f"seeds {', '.join(map(str, r['seeds']))} (each sets the split, the halves and the model)",
        f"{r['n_runs']} fitted runs in {number(r['seconds'], 0)} s wall ({number(r['cpu_seconds'], 0)} s CPU)",
        r["device"],
    ]
    return Takeaways(points, conventions=conventions)


def weak_evidence(records: dict) -> list[str]:
    """Where the evidence is weak, with the numbers that say so."""
    r = records
    return [
        f"Median width of a 95% placement interval over {len(r['seeds'])} seeds: "
        f"{number(r['median_interval_width'])} — differences smaller than that are not resolved.",
        f"At most {r['max_cells_per_perturbation']} cells per perturbation, few epochs and a small network (book "
        "settings): a larger budget may change the ranking of losses; the VAE's training throughput here was "
        f"{number(r['vae_cells_per_second'], 0)} samples/s on the CPU.",
        "Held-out sets are small (a few perturbations per task and seed), so a placement rests on a handful of "
        "perturbations; tasks with two perturbations (Kang) are left out of the book run.",
        "The added datasets are CRISPRi in glioma lines while the held-out cells are CRISPRa in K562: the "
        "perturbation shift is shared across cell lines, so added data can only help through the shared decoder, "
        "the cell-line embedding and the feature-to-shift map (`linear_go` fits each cell line apart, so its "
        "added-data curve is flat by construction); the published Perturb-seq atlases that would test "
        "same-modality additions (Replogle 2022 K562/RPE1 matrices) are not in the offline mirror.",
        "Hypothesis splits the VAE cannot answer as built: `guide_information` (the VAE conditions on the target, "
        "not the guide, so every guide of a target gets one prediction) and the label splits (`variability_labels`, "
        "`chemical`, `species`, `phenotype_only`: no cells to train on).",
    ]
