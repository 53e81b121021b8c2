"""One call per perturbation, the chapter's records and its answer (:func:`conclusions`, :func:`weak_points`).

Call of a single-cell dataset, in order: ``too few cells`` (fewer than ``min_cells`` cells); ``effect, dying-cell
readout`` (calibrated q < α and the surviving cells look low-quality or dying, or the group is depleted);
``effect`` (calibrated q < α); ``failed knockdown`` (no effect, the target is measured, a CRISPRi/CRISPRko target,
and it is not significantly lowered in its own cells); ``no effect``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vcclib.analyses.null_effects.genome_scale import wilson
from vcclib.analyses.takeaways import Takeaways, names, number, plural, share

CALLS = ("no effect", "effect", "effect, dying-cell readout", "failed knockdown", "too few cells")
#: the genome-scale calls add ``inconclusive``: beyond 95% of the screen's controls, FDR not certified
GENOME_CALLS = (*CALLS, "inconclusive")
LOSS_OF_FUNCTION = {"CRISPRko", "CRISPRi", "shRNA", "siRNA"}


def classify(
    table: pd.DataFrame,
    *,
    alpha: float = 0.05,
    min_cells: int = 30,
    perturbation_type: str = "",
    depletion_z: float = -2.0,
) -> pd.Series:
    """The ``call`` column of ``effects_<dataset>`` (see the module docstring)."""
    few = table["n_cells"] < min_cells
    effect = table["q_calibrated"] < alpha
    dying = table.get("dying_flag", pd.Series(False, index=table.index)).fillna(False).astype(bool)
    if "depletion_z" in table:
        dying |= table["depletion_z"].astype(float).fillna(0.0) <= depletion_z
    measured = table.get("target_measured", pd.Series(False, index=table.index)).fillna(False).astype(bool)
    lowered = (table.get("target_fdr", np.nan) < alpha) & (table.get("target_log2fc", np.nan) < 0)
    failed = measured & ~lowered & (perturbation_type in LOSS_OF_FUNCTION)
    return pd.Series(
        np.select(
            [few, effect & dying, effect, failed],
            ["too few cells", "effect, dying-cell readout", "effect", "failed knockdown"],
            "no effect",
        ),
        index=table.index,
    )


def disagreements(table: pd.DataFrame, alpha: float = 0.05) -> dict:
    """Where the calibrated call and the classic E-test / DE calls disagree."""
    cal = table["q_calibrated"] < alpha
    e = table["etest_p_adj"] < alpha
    de = table["n_de_genes"] > 0
    return {
        "etest_not_calibrated": table.index[e & ~cal].tolist(),
        "calibrated_not_etest": table.index[cal & ~e].tolist(),
        "de_not_calibrated": table.index[de & ~cal].tolist(),
        "calibrated_not_de": table.index[cal & ~de].tolist(),
    }


def dataset_record(
    table: pd.DataFrame,
    calibration: dict,
    *,
    dataset: str,
    n_genes: int,
    escape_explained: list,
    notes: list,
    alpha: float = 0.05,
    escape_ran: bool | None = None,
) -> dict:
    """What the conclusions quote about one single-cell dataset (JSON-serialisable)."""
    tested = table[table["call"] != "too few cells"]
    n = int(len(tested))
    counts = table["call"].value_counts().to_dict()
    null = tested.index[tested["call"] == "no effect"].tolist()
    dying = tested.index[tested["call"] == "effect, dying-cell readout"].tolist()
    effect = tested[tested["call"].str.startswith("effect")]
    weakest = float(effect["edistance_cal"].min()) if len(effect) else float("nan")
    crit = table.loc[null, "critical_edistance"] if null else pd.Series(dtype=float)
    return {
        "dataset": dataset,
        "n": int(len(table)),
        "n_tested": n,
        "counts": {c: int(counts.get(c, 0)) for c in CALLS},
        "null": null,
        "null_share": len(null) / n if n else float("nan"),
        "null_ci": wilson(len(null), n),
        "dying": dying,
        "dying_share": len(dying) / n if n else float("nan"),
        "dying_ci": wilson(len(dying), n),
        "failed_knockdown": table.index[table["call"] == "failed knockdown"].tolist(),
        "dying_by_depletion_only": [
            g for g in dying if not bool(pd.Series([table.loc[g].get("dying_flag")]).fillna(False).astype(bool).iloc[0])
        ],
        "depletion_ratios": {g: float(table.loc[g, "depletion_ratio"]) for g in dying if "depletion_ratio" in table},
        "measured_targets": int(tested["target_measured"].fillna(False).astype(bool).sum()),
        "null_with_knockdown": [
            g
            for g in null
            if bool(table.loc[g, "target_measured"])
            and table.loc[g, "target_fdr"] < alpha
            and table.loc[g, "target_log2fc"] < 0
        ],
        "too_few": table.index[table["call"] == "too few cells"].tolist(),
        "weakest_effect_edistance": weakest,
        "null_critical_edistance": float(crit.median()) if len(crit) else float("nan"),
        "null_max_edistance": float(table.loc[null, "edistance_cal"].max()) if null else float("nan"),
        "calibration": calibration,
        "disagreements": disagreements(table, alpha),
        **escape_record(table, escape_explained, ran=escape_ran),
        "distinct_from_average": int((table["etest_vs_average_q"] < alpha).sum()),
        "median_systematic_share": float(table["systematic_share"].median()),
        "n_genes": int(n_genes),
        "n_cells_min": int(table["n_cells"].min()),
        "n_cells_max": int(table["n_cells"].max()),
        "notes": notes,
        "alpha": alpha,
    }


def escape_record(table: pd.DataFrame, escape_explained: list, ran: bool | None = None) -> dict:
    """Mixscape's part of a dataset record: the median escape over the targets it could classify, and which.

    ``median_escape`` is None where Mixscape did not run (``ran`` False: high-MOI data; None: it ran where any
    target is classified) or classified no target; targets with too few DE genes are counted as not classified,
    never as 100% escape.
    """
    if ran is None:
        ran = "classified" in table and bool(table["classified"].fillna(False).astype(bool).any())
    classified = table.index[table["classified"].fillna(False).astype(bool)] if "classified" in table else []
    null = table.index[table["call"].isin(["no effect", "failed knockdown"])]
    esc = table.loc[classified, "escape_fraction"] if len(classified) else pd.Series(dtype=float)
    return {
        "escape_explained": escape_explained,
        "escape_ran": bool(ran),
        "median_escape": float(esc.median()) if len(esc) else None,
        "escape_n_classified": int(len(classified)),
        "escape_ko_fraction": {str(g): float(1 - esc[g]) for g in esc.sort_values().index},
        "escape_null_classified": [str(g) for g in null if g in set(classified)],
        "escape_null_not_classified": int(sum(g not in set(classified) for g in null)),
    }


def _by(tested: pd.DataFrame, column: str) -> dict:
    out = {}
    if column not in tested:
        return out
    for level, group in tested.groupby(column):
        k_null = int((group["call"] == "no effect").sum())
        k_dying = int((group["call"] == "effect, dying-cell readout").sum())
        k_effect = int(group["call"].str.startswith("effect").sum())
        out[str(level)] = {
            "n": int(len(group)),
            "null_share": k_null / len(group),
            "null_ci": wilson(k_null, len(group)),
            "dying_share": k_dying / len(group),
            "dying_ci": wilson(k_dying, len(group)),
            "effect_share": k_effect / len(group),
        }
    return out


def essentiality_summary(effects: pd.DataFrame, essentiality: pd.DataFrame) -> dict:
    """Per Achilles class (and 22Q1 class where joined) of a single-cell dataset's targets: tested, null, effect."""
    tested = effects[effects["call"] != "too few cells"].join(essentiality, how="left")
    tested["essentiality"] = tested["essentiality"].fillna("other")
    out = {}
    for column in ("essentiality", "depmap_22q1_class"):
        if column not in tested or tested[column].isna().all():
            continue
        out[column] = {
            str(level): {
                "n": int(len(g)),
                "null": g.index[g["call"] == "no effect"].tolist(),
                "n_effect": int(g["call"].str.startswith("effect").sum()),
            }
            for level, g in tested.groupby(column)
        }
    return out


def genome_record(table: pd.DataFrame, screen: str) -> dict:
    """What the conclusions quote about one Replogle screen."""
    tested = table[table["call"] != "too few cells"]
    n = len(tested)
    out = {
        "screen": screen,
        "n": int(len(table)),
        "n_tested": int(n),
        **{k: v for k, v in table.attrs.items() if k not in ("units", "thresholds")},
    }
    for call in GENOME_CALLS:
        k = int((tested["call"] == call).sum()) if call != "too few cells" else int((table["call"] == call).sum())
        out[call] = {"n": k, "share": k / n if n else float("nan"), "ci": wilson(k, n)}
    out["by_essentiality"] = _by(tested, "essentiality")
    out["by_depmap_22q1"] = _by(tested, "depmap_22q1_class")
    out["depmap_22q1_missing"] = (
        int(tested["depmap_22q1_class"].isna().sum()) if "depmap_22q1_class" in tested else None
    )
    strong = tested[tested["knockdown"] >= 0.7]
    k = int((strong["call"] == "no effect").sum())
    out["strong_knockdown"] = {
        "n": int(len(strong)),
        "null_share": k / len(strong) if len(strong) else float("nan"),
        "null_ci": wilson(k, len(strong)),
    }
    return out


def core_null_sensitivity(core: pd.DataFrame) -> dict:
    """The calls of a screen with only Replogle's core controls as the null (``null_controls="core"``)."""
    tested = core[core["call"] != "too few cells"]
    cal = core.attrs["calibration"]
    return {
        "effect_share": float(tested["call"].str.startswith("effect").mean()),
        "null_share": float((tested["call"] == "no effect").mean()),
        "n_core": cal["n_controls"] - cal["non_null_controls"],
        "controls_called_share": cal["called_share"],
        "non_core_called_share": cal["non_null_called_share"],
        "n_non_core": cal["non_null_controls"],
    }


def _ci(ci) -> str:
    return f"{share(ci[0])}–{share(ci[1])}"


def _escape_points(r: dict) -> list[str]:
    """The Mixscape sentences of one dataset record: KO shares of the classified targets, what escape explains."""
    if not r.get("escape_ran"):
        return []
    n_null = len(r["escape_null_classified"]) + r["escape_null_not_classified"]
    if not r.get("escape_n_classified"):
        return [
            f"Escape ({r['dataset']}, Mixscape): no target has the ≥ {r.get('escape_min_de_genes', 5)} DE genes Mixscape needs to split its cells "
            f"over the {r['n_genes']:,} measured genes, so escape is not estimated here (not classified, "
            f"not 100% escape)."
        ]
    ko = r["escape_ko_fraction"]
    text = (
        f"Escape ({r['dataset']}, Mixscape): {r['escape_n_classified']} of {r['n']} targets have enough DE genes "
        f"(≥ {r.get('escape_min_de_genes', 5)}) to be classified; their share of perturbed (KO) cells: "
        + ", ".join(f"{g} {share(v)}" for g, v in ko.items())
        + f" (median escape {share(r['median_escape'])}); the other {r['n'] - r['escape_n_classified']} are not "
        f"classified."
    )
    if n_null:
        text += (
            f" Of the {plural(n_null, 'null call')}, {len(r['escape_explained'])} have a perturbed subpopulation "
            f"of ≥ {r.get('escape_min_cells', 30)} cells that escape may hide ({names(r['escape_explained'], '—')}); "
            f"{r['escape_null_not_classified']} are not classified, so escape cannot be judged for them."
        )
    return [text]


def conclusions(records: dict) -> Takeaways:
    """The chapter's answer, every number formatted from ``records``."""
    points = []
    for r in records["datasets"]:
        c = r["counts"]
        cal = r["calibration"]
        points.append(
            f"**{r['dataset']}**: {plural(len(r['null']), 'perturbation')} of {r['n_tested']} tested show **no effect** "
            f"({share(r['null_share'])}, 95% CI {_ci(r['null_ci'])}; {names(r['null'], '—', limit=8)}); "
            f"{c['effect'] + c['effect, dying-cell readout']} have one, {c['effect, dying-cell readout']} of them with "
            f"a dying-cell readout ({share(r['dying_share'])}, {_ci(r['dying_ci'])}); {c['failed knockdown']} failed "
            f"knockdowns, {c['too few cells']} with too few cells."
        )
        if r.get("null_with_knockdown"):
            k = r["null_with_knockdown"]
            points.append(
                f"Cis without trans ({r['dataset']}): {len(k)} of the null calls lower their own measured "
                f"target ({names(k, '—')}): the knockdown worked and changed nothing else detectably."
            )
        if cal.get("n_checks"):
            points.append(
                f"Calibration ({r['dataset']}): {cal['n_called']} of {cal['n_checks']} held-out control groups are "
                f"called at α = {cal['alpha']} ({share(cal['share_called'], 1)}, 95% CI {_ci(cal['share_called_ci'])}); "
                f"the uncalibrated 'any DE gene' rule calls {share(cal['share_de_rule'])} of them "
                f"({_ci(cal['share_de_rule_ci'])})."
            )
        if r["null"]:
            points.append(
                f"Power behind the null calls ({r['dataset']}): at their depth an E-distance above "
                f"{number(r['null_critical_edistance'], 3)} would be called; the weakest called effect has "
                f"{number(r['weakest_effect_edistance'], 3)}, the largest null {number(r['null_max_edistance'], 3)}."
            )
        ess = (r.get("essentiality") or {}).get("essentiality", {})
        if "common essential" in ess:
            ce = ess["common essential"]
            text = (
                f"DepMap ({r['dataset']}): {ce['n']} targets are Achilles common essentials, {ce['n_effect']} "
                f"with an effect and {len(ce['null'])} without ({names(ce['null'], '—')})"
            )
            if "non-essential" in ess:
                text += f"; {ess['non-essential']['n']} are non-essentials ({ess['non-essential']['n_effect']} effects)"
            dep = (r.get("essentiality") or {}).get("depmap_22q1_class", {})
            if dep:
                text += (
                    "; 22Q1 calls in "
                    + r.get("cell_line", "the cell line")
                    + ": "
                    + ", ".join(f"{k.replace('_', ' ')} {v['n_effect']}/{v['n']} effects" for k, v in dep.items())
                )
            points.append(text + ".")
        pq = r.get("panel_quality") or {}
        if pq.get("refused"):
            text = (
                f"Dying-cell flag ({r['dataset']}): {' and '.join(pq['refused'])} refused, computed over only "
                f"{r['n_genes']:,} measured genes; from them the flag would mark {pq['would_flag']} of "
                f"{pq['n_groups']} perturbations"
            )
            if "rho_umis_vs_edistance" in pq:
                text += (
                    f" ({pq['would_flag_with_effect']} of them effects; Spearman ρ between the size of the "
                    f"panel {pq['rho_signal'].replace('_', ' ')} shift and the E-distance: "
                    f"{number(pq['rho_umis_vs_edistance'], 2)})"
                )
            used = r.get("usable_signals") or []
            text += (
                f"; the flag uses {', '.join(used)}."
                if used
                else "; dying-cell readouts here rest on depletion against guide representation only."
            )
            points.append(text)
        elif r.get("usable_signals"):
            points.append(
                f"Dying-cell flag ({r['dataset']}): from {', '.join(r['usable_signals'])} (whole-"
                f"transcriptome summaries) and depletion."
            )
        points += _escape_points(r)
    for g in records.get("genome", []):
        cal = g["calibration"]
        text = (
            f"**Replogle {g['screen']}**: {share(g['no effect']['share'])} ({_ci(g['no effect']['ci'])}) of "
            f"{g['n_tested']:,} perturbations show no effect against the screen's {g['n_controls']} non-targeting "
            f"rows, {share(g['effect']['share'] + g['effect, dying-cell readout']['share'])} an effect at FDR "
            f"{g['alpha']}, {share(g['effect, dying-cell readout']['share'])} "
            f"({_ci(g['effect, dying-cell readout']['ci'])}) look lethal (effect with a dying-cell signal), "
            f"{share(g['inconclusive']['share'])} are inconclusive (beyond 95% of the controls, FDR not "
            f"certified), {share(g['failed knockdown']['share'])} failed knockdowns; "
            f"{share(g['strong_knockdown']['null_share'])} of strong knockdowns (≥ 70%) do nothing. The same rule "
            f"calls {cal['called']} of {cal['n_controls']} controls ({share(cal['called_share'], 1)}, "
            f"{_ci(cal['called_ci'])}); raw energy p < α: {share(cal['raw_share'])}."
        )
        ess = g["by_essentiality"]
        if "common essential" in ess and "non-essential" in ess:
            ce, ne = ess["common essential"], ess["non-essential"]
            text += (
                f" Achilles common essentials (n = {ce['n']:,}): {share(ce['null_share'])} no effect "
                f"({_ci(ce['null_ci'])}), {share(ce['dying_share'])} dying readout ({_ci(ce['dying_ci'])}); "
                f"non-essentials (n = {ne['n']:,}): {share(ne['null_share'])} ({_ci(ne['null_ci'])}) and "
                f"{share(ne['dying_share'])} ({_ci(ne['dying_ci'])})."
            )
        dep = g.get("by_depmap_22q1", {})
        if dep:
            parts = [
                f"{level.replace('_', ' ')} (n = {v['n']:,}) {share(v['null_share'])} no effect, "
                f"{share(v['dying_share'])} dying"
                for level, v in dep.items()
            ]
            text += (
                f" DepMap 22Q1 calls in {'K562' if g['screen'].startswith('K562') else 'RPE1'}: "
                + "; ".join(parts)
                + "."
            )
        points.append(text)
    return Takeaways(points, conventions=records.get("conventions", []))


def weak_points(records: dict) -> list[str]:
    """*Where the evidence is weak*, one sentence per limitation, numbers from ``records``."""
    lines = []
    for r in records["datasets"]:
        cal = r["calibration"]
        lines.append(
            f"**{r['dataset']}: a null call is absence of evidence.** {r['n_cells_min']:,}–"
            f"{r['n_cells_max']:,} cells per perturbation, {r['n_genes']:,} measured genes; an effect "
            "outside the measured genes or below the detection threshold stays invisible."
        )
        if cal.get("n_checks"):
            lines.append(
                f"**Calibration check ({r['dataset']}).** The {cal['n_checks']} held-out groups overlap "
                f"(they are drawn from one held-out block), so the interval is optimistic; uniformity KS "
                f"p = {number(cal['ks_uniform_p'], 3)} (a small value with few called: conservative)."
            )
        only = r.get("dying_by_depletion_only") or []
        if only:
            ratios = [r["depletion_ratios"][g] for g in only if g in r.get("depletion_ratios", {})]
            lines.append(
                f"**Depletion ({r['dataset']}).** {plural(len(only), 'dying-cell readout')} "
                f"({names(only)}) rest on depletion alone: cells observed / expected "
                f"{number(min(ratios), 2)}–{number(max(ratios), 2)}, expected from the median non-targeting "
                "guide, so uniform guide representation is assumed (no plasmid counts); a guide "
                "under-represented in the library reads as lethal."
            )
        d = r["disagreements"]
        lines.append(
            f"**Tests disagree ({r['dataset']}).** Classic E-test but not calibrated: "
            f"{names(d['etest_not_calibrated'])}; any-DE-gene but not calibrated: "
            f"{names(d['de_not_calibrated'])}; calibrated but not the classic E-test: "
            f"{names(d['calibrated_not_etest'])}."
        )
        for note in r["notes"]:
            lines.append(f"**Skipped or proxied ({r['dataset']}).** {note}.")
    for g in records.get("genome", []):
        lines.append(
            f"**Replogle {g['screen']}: resolution of the control null.** The calibrated p is a rank among "
            f"{g['n_controls']} non-targeting rows, so no p is below {number(g['smallest_p'], 4)}; "
            f"{share(g['share_at_smallest_p'])} of the rows reach it, and "
            f"{share(g['inconclusive']['share'])} beat 95% of the controls without a certified FDR. "
            f"{share(g['control_share_per_test'])} of the controls are beyond 95% of the others (leave one "
            "out): a few non-targeting guides look like strong effects, which limits every call; "
            "dying-cell signals are per-perturbation summaries, not per cell."
        )
        core = g.get("core_null")
        if core:
            lines.append(
                f"**Replogle {g['screen']}: with the core controls as the null.** Replogle's "
                f"{core['n_core']} core non-targeting controls (chosen by the authors, so partly circular) "
                f"give {share(core['effect_share'])} effects and {share(core['null_share'])} no effect, "
                f"but then call {share(core['controls_called_share'], 1)} of all controls and "
                f"{share(core['non_core_called_share'])} of the {core['n_non_core']} other ones: the "
                "chapter's calls keep every control in the null."
            )
        if g.get("by_depmap_22q1") == {}:
            lines.append(f"**DepMap 22Q1 ({g['screen']}).** No 22Q1 calls for this cell line were joined.")
    return lines
