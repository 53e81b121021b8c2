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
LOSS_OF_FUNCTION = {"CRISPRko", "CRISPRi", "shRNA", "siRNA"}


def classify(table: pd.DataFrame, *, alpha: float = 0.05, min_cells: int = 30, perturbation_type: str = "",
             depletion_z: float = -2.0) -> pd.Series:
    """The ``call`` column of ``effects_<dataset>`` (see the module docstring)."""
    few = table["n_cells"] < min_cells
    effect = table["q_calibrated"] < alpha
    dying = table.get("dying_flag", pd.Series(False, index=table.index)).fillna(False).astype(bool)
    if "depletion_z" in table:
        dying |= table["depletion_z"].astype(float).fillna(0.0) <= depletion_z
    measured = table.get("target_measured", pd.Series(False, index=table.index)).fillna(False).astype(bool)
    lowered = (table.get("target_fdr", np.nan) < alpha) & (table.get("target_log2fc", np.nan) < 0)
    failed = measured & ~lowered & (perturbation_type in LOSS_OF_FUNCTION)
    return pd.Series(np.select([few, effect & dying, effect, failed],
                               ["too few cells", "effect, dying-cell readout", "effect", "failed knockdown"],
                               "no effect"), index=table.index)


def disagreements(table: pd.DataFrame, alpha: float = 0.05) -> dict:
    """Where the calibrated call and the classic E-test / DE calls disagree."""
    cal = table["q_calibrated"] < alpha
    e = table["etest_p_adj"] < alpha
    de = table["n_de_genes"] > 0
    return {"etest_not_calibrated": table.index[e & ~cal].tolist(), "calibrated_not_etest": table.index[cal & ~e].tolist(),
            "de_not_calibrated": table.index[de & ~cal].tolist(), "calibrated_not_de": table.index[cal & ~de].tolist()}


def dataset_record(table: pd.DataFrame, calibration: dict, *, dataset: str, n_genes: int, escape_explained: list,
                   notes: list, alpha: float = 0.05) -> dict:
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
        "dataset": dataset, "n": int(len(table)), "n_tested": n, "counts": {c: int(counts.get(c, 0)) for c in CALLS},
        "null": null, "null_share": len(null) / n if n else float("nan"), "null_ci": wilson(len(null), n),
        "dying": dying, "dying_share": len(dying) / n if n else float("nan"), "dying_ci": wilson(len(dying), n),
        "failed_knockdown": table.index[table["call"] == "failed knockdown"].tolist(),
        "too_few": table.index[table["call"] == "too few cells"].tolist(),
        "weakest_effect_edistance": weakest,
        "null_critical_edistance": float(crit.median()) if len(crit) else float("nan"),
        "null_max_edistance": float(table.loc[null, "edistance_cal"].max()) if null else float("nan"),
        "calibration": calibration, "disagreements": disagreements(table, alpha),
        "escape_explained": escape_explained,
        "median_escape": float(table["escape_fraction"].median()) if table["escape_fraction"].notna().any() else None,
        "distinct_from_average": int((table["etest_vs_average_q"] < alpha).sum()),
        "median_systematic_share": float(table["systematic_share"].median()),
        "n_genes": int(n_genes), "n_cells_min": int(table["n_cells"].min()), "n_cells_max": int(table["n_cells"].max()),
        "notes": notes, "alpha": alpha,
    }


def genome_record(table: pd.DataFrame, screen: str) -> dict:
    """What the conclusions quote about one Replogle screen."""
    tested = table[table["call"] != "too few cells"]
    n = len(tested)
    out = {"screen": screen, "n": int(len(table)), "n_tested": int(n), **table.attrs}
    for call in CALLS:
        k = int((table["call"] == call).sum())
        out[call] = {"n": k, "share": k / n if n else float("nan"), "ci": wilson(k, n)}
    by = {}
    if "essentiality" in tested:
        for level, group in tested.groupby("essentiality"):
            k_null = int((group["call"] == "no effect").sum())
            k_dying = int((group["call"] == "effect, dying-cell readout").sum())
            by[str(level)] = {"n": int(len(group)), "null_share": k_null / len(group), "null_ci": wilson(k_null, len(group)),
                              "dying_share": k_dying / len(group), "dying_ci": wilson(k_dying, len(group))}
    out["by_essentiality"] = by
    strong = tested[tested["knockdown"] >= 0.7]
    k = int((strong["call"] == "no effect").sum())
    out["strong_knockdown"] = {"n": int(len(strong)), "null_share": k / len(strong) if len(strong) else float("nan"),
                               "null_ci": wilson(k, len(strong))}
    return out


def _ci(ci) -> str:
    return f"{share(ci[0])}–{share(ci[1])}"


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
            f"knockdowns, {c['too few cells']} with too few cells.")
        if cal.get("n_checks"):
            points.append(
                f"Calibration ({r['dataset']}): {cal['n_called']} of {cal['n_checks']} held-out control groups are "
                f"called at α = {cal['alpha']} ({share(cal['share_called'], 1)}, 95% CI {_ci(cal['share_called_ci'])}); "
                f"the uncalibrated 'any DE gene' rule calls {share(cal['share_de_rule'])} of them "
                f"({_ci(cal['share_de_rule_ci'])}).")
        if r["null"]:
            points.append(
                f"Power behind the null calls ({r['dataset']}): at their depth an E-distance above "
                f"{number(r['null_critical_edistance'], 3)} would be called; the weakest called effect has "
                f"{number(r['weakest_effect_edistance'], 3)}, the largest null {number(r['null_max_edistance'], 3)}.")
        if r.get("median_escape") is not None:
            points.append(f"Escape ({r['dataset']}, Mixscape): median escape fraction {share(r['median_escape'])}; "
                          f"escape may explain {plural(len(r['escape_explained']), 'null call')} "
                          f"({names(r['escape_explained'], '—')}).")
    for g in records.get("genome", []):
        text = (f"**Replogle {g['screen']}**: {share(g['no effect']['share'])} "
                f"({_ci(g['no effect']['ci'])}) of {g['n_tested']:,} perturbations show no effect after calibration "
                f"against {g['n_controls']} non-targeting rows, {share(g['effect, dying-cell readout']['share'])} "
                f"look lethal (effect with a dying-cell signal), {share(g['failed knockdown']['share'])} are failed "
                f"knockdowns; {share(g['strong_knockdown']['null_share'])} of strong knockdowns (≥ 70%) do nothing.")
        ess = g["by_essentiality"]
        if "common essential" in ess and "non-essential" in ess:
            text += (f" Common essentials: {share(ess['common essential']['null_share'])} no effect, "
                     f"{share(ess['common essential']['dying_share'])} dying readout; non-essentials: "
                     f"{share(ess['non-essential']['null_share'])} and {share(ess['non-essential']['dying_share'])}.")
        points.append(text)
    return Takeaways(points, conventions=records.get("conventions", []))


def weak_points(records: dict) -> list[str]:
    """*Where the evidence is weak*, one sentence per limitation, numbers from ``records``."""
    lines = []
    for r in records["datasets"]:
        cal = r["calibration"]
        lines.append(f"**{r['dataset']}: a null call is absence of evidence.** {r['n_cells_min']:,}–"
                     f"{r['n_cells_max']:,} cells per perturbation, {r['n_genes']:,} measured genes; an effect "
                     "outside the measured genes or below the detection threshold stays invisible.")
        if cal.get("n_checks"):
            lines.append(f"**Calibration check ({r['dataset']}).** The {cal['n_checks']} held-out groups overlap "
                         f"(they are drawn from one held-out block), so the interval is optimistic; uniformity KS "
                         f"p = {number(cal['ks_uniform_p'], 3)} (a small value with few called: conservative).")
        d = r["disagreements"]
        lines.append(f"**Tests disagree ({r['dataset']}).** Classic E-test but not calibrated: "
                     f"{names(d['etest_not_calibrated'])}; any-DE-gene but not calibrated: "
                     f"{names(d['de_not_calibrated'])}; calibrated but not the classic E-test: "
                     f"{names(d['calibrated_not_etest'])}.")
        for note in r["notes"]:
            lines.append(f"**Skipped or proxied ({r['dataset']}).** {note}.")
    for g in records.get("genome", []):
        lines.append(f"**Replogle {g['screen']}.** Raw energy-test p < α for {share(g['control_share_raw_energy'])} of "
                     f"the {g['n_controls']} non-targeting rows, so p-values are scaled by their inflation "
                     f"({number(g['inflation'])}×; after it {share(g['control_share_calibrated'])} of the controls are "
                     "called), which assumes the inflation is the same at every p level; dying-cell signals are "
                     "per-perturbation summaries, not per cell.")
    return lines
