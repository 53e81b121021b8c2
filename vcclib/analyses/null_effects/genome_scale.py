"""Genome scale: Replogle et al. 2022's per-perturbation statistics (Table S2) with DepMap essentiality.

Per screen (K562 genome-wide day 8: 11,258 perturbations; K562 essential day 6: 2,285; RPE1 essential day 7:
2,680), the non-targeting rows of the same table are the empirical null. Their raw energy-test p-values are not
calibrated (16–32% of the control rows have p < 0.05; scaling p by that inflation still called 8–13% of them), so
``p_calibrated`` is each row's exact rank among the controls (:func:`control_null_p`): the min-p combination of its
energy-test p and DEG count, ranked against the controls' own (a control is ranked against the other controls,
leave one out), and ``q_calibrated`` is its Benjamini–Hochberg FDR over the perturbations. The controls are scored
exactly like perturbations, and :func:`control_calibration` is their table: the share of them called (pooled
with the perturbations, BH) must be at most α. The resolution is the number of controls: no p-value is below
1 / (controls + 1), so a screen whose controls include a few strong outliers can certify few effects at FDR α;
rows with ``p_calibrated`` ≤ α but ``q_calibrated`` ≥ α (beyond 95% of the controls, FDR not certified) are
called ``inconclusive``.

Dying-cell signals, each against the controls' distribution (beyond their 1st/99th percentile): cells lost to
quality filtering (1 − filtered / unfiltered), the UMI z-score (low), the mitochondrial fraction (high).

Call, in order: ``too few cells`` (filtered cells < ``min_cells``); ``effect`` or ``effect, dying-cell readout``
(q_calibrated < α; the second when a dying-cell signal is flagged); ``failed knockdown`` (no effect and the
target lowered by less than ``min_knockdown``, or not measurable); ``inconclusive`` (p_calibrated ≤ α);
``no effect``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control

from vcclib.analyses.null_effects.calibration import NullDistribution


def essentiality_classes(genes, achilles: dict, calls: dict | None, cell_line_prefix: str) -> pd.DataFrame:
    """Per gene: the Achilles 19Q2 class and the 22Q1 CRISPR dependency class in the screen's cell line.

    Achilles: common essential / non-essential (reference list) / other. 22Q1: the majority class over the models
    whose CCLE name starts with ``cell_line_prefix`` (K562; for RPE1 the engineered RPE1SS models).
    """
    genes = pd.Index(pd.unique(pd.Series(list(genes), dtype=str)))
    common = set(achilles["achilles_common_essentials"]["symbol"].astype(str))
    non = set(achilles["nonessentials"]["symbol"].astype(str))
    cls = np.where(
        genes.isin(list(common)), "common essential", np.where(genes.isin(list(non)), "non-essential", "other")
    )
    out = pd.DataFrame({"essentiality": cls}, index=genes)
    out["depmap_22q1_class"] = pd.NA
    if calls is not None:
        crispr = calls["crispr"]
        lines = np.flatnonzero(crispr.obs["ccle_name"].astype(str).str.startswith(cell_line_prefix).to_numpy())
        if lines.size:
            classes = np.array(crispr.uns["vcc"]["classes"])
            codes = crispr.X[lines]
            shared = genes.intersection(crispr.var_names)
            cols = crispr.var_names.get_indexer(shared)
            sub = codes[:, cols]
            best = np.array([np.bincount(c[c >= 0], minlength=3).argmax() if (c >= 0).any() else -1 for c in sub.T])
            labels = np.where(best >= 0, classes[np.maximum(best, 0)], None)
            out.loc[shared, "depmap_22q1_class"] = labels
        out.attrs["depmap_lines"] = crispr.obs["ccle_name"].iloc[lines].tolist() if lines.size else []
    return out


def genome_scale_calls(
    stats: pd.DataFrame,
    screen: str,
    essentiality: pd.DataFrame | None = None,
    *,
    alpha: float = 0.05,
    min_cells: int = 30,
    min_knockdown: float = 0.3,
    null_controls: str = "all",
) -> pd.DataFrame:
    """One row per perturbation of ``screen``: knockdown, energy p, DEG count, calibrated p, signals, ``call``.

    ``null_controls``: ``"all"`` non-targeting rows form the null (default), or only the ``"core"`` ones (Replogle's
    core controls: chosen by the authors among the non-targeting guides, so a null from them is partly circular;
    a sensitivity analysis, with the other controls' call rate in ``attrs['calibration']['non_null_called_share']``).
    """
    if null_controls not in ("all", "core"):
        raise ValueError(f"null_controls {null_controls!r}: use 'all' or 'core'")
    table = stats[stats["screen"].astype(str) == screen].copy()
    if table.empty:
        raise ValueError(f"no rows for screen {screen!r}; screens: {sorted(stats['screen'].astype(str).unique())}")
    table["lost_to_qc"] = 1 - table["n_cells_filtered"].astype(float) / table["n_cells_unfiltered"].astype(float)
    ctrl = table[table["is_control"]]
    in_null = table["is_control"].to_numpy(dtype=bool)
    if null_controls == "core":
        in_null = in_null & table["core_control"].fillna(False).astype(bool).to_numpy()
    table["p_calibrated"] = control_null_p(table["energy_test_p"], table["n_degs_anderson_darling"], in_null)
    table["p_rank_vs_controls"] = table["p_calibrated"]
    ok = table["energy_test_p"].notna()
    table["energy_q_raw"] = np.nan
    table.loc[ok, "energy_q_raw"] = false_discovery_control(table.loc[ok, "energy_test_p"].astype(float))
    # BH over the perturbations and the controls together: the controls' share called is the calibration check
    table["q_calibrated"] = false_discovery_control(table["p_calibrated"].to_numpy())
    table["q_calibrated_pooled"] = table["q_calibrated"]
    genes = ~table["is_control"]
    controls_called = float((table.loc[~genes, "q_calibrated"] < alpha).mean())
    table.loc[genes, "q_calibrated"] = false_discovery_control(table.loc[genes, "p_calibrated"].to_numpy())
    lost_hi = ctrl["lost_to_qc"].quantile(0.99)
    umi_lo = ctrl["umis_zscore"].quantile(0.01)
    mito_hi = ctrl["mito_fraction"].quantile(0.99)
    table["flag_lost_to_qc"] = table["lost_to_qc"] > lost_hi
    table["flag_low_umis"] = table["umis_zscore"] < umi_lo
    table["flag_high_mito"] = table["mito_fraction"] > mito_hi
    table["dying_signal"] = table[["flag_lost_to_qc", "flag_low_umis", "flag_high_mito"]].any(axis=1)
    knockdown = -table["percent_knockdown"].astype(float)  # 1 = silenced
    table["knockdown"] = knockdown
    effect = table["q_calibrated"] < alpha
    failed = ~(knockdown >= min_knockdown)
    few = ~(table["n_cells_filtered"].astype(float) >= min_cells)
    inconclusive = table["p_calibrated"] <= alpha
    ctrl_p = table.loc[~genes, "p_calibrated"]
    table["call"] = np.select(
        [few, effect & table["dying_signal"], effect, failed, inconclusive],
        ["too few cells", "effect, dying-cell readout", "effect", "failed knockdown", "inconclusive"],
        "no effect",
    )
    calibration = control_calibration(table[~genes], alpha)
    outside = ~genes & ~in_null
    calibration["null_controls"] = null_controls
    calibration["non_null_controls"] = int(outside.sum())
    calibration["non_null_called_share"] = (
        float((table.loc[outside, "q_calibrated_pooled"] < alpha).mean()) if outside.any() else None
    )
    table = table[genes].rename(columns={"target": "gene"})
    if essentiality is not None:
        table = table.join(essentiality, on="gene")
    table.attrs.update(
        screen=screen,
        n_controls=int(len(ctrl)),
        alpha=alpha,
        min_cells=min_cells,
        min_knockdown=min_knockdown,
        control_share_raw_energy=float((ctrl["energy_test_p"] < alpha).mean()),
        control_share_per_test=float((ctrl_p <= alpha).mean()),
        control_share_calibrated=controls_called,
        control_share_any_deg=float((ctrl["n_degs_anderson_darling"].fillna(0) > 0).mean()),
        smallest_p=float(1 / (len(ctrl) + 1)),
        share_at_smallest_p=float((table["p_calibrated"] <= 1 / (len(ctrl) + 1) + 1e-12).mean()),
        calibration=calibration,
        thresholds={"lost_to_qc": float(lost_hi), "umis_zscore": float(umi_lo), "mito_fraction": float(mito_hi)},
    )
    columns = [
        "gene",
        "perturbation_id",
        "knockdown",
        "target_expression",
        "n_cells_unfiltered",
        "n_cells_filtered",
        "energy_test_p",
        "energy_q_raw",
        "n_degs_anderson_darling",
        "n_degs_mann_whitney",
        "p_rank_vs_controls",
        "p_calibrated",
        "q_calibrated",
        "lost_to_qc",
        "umis_zscore",
        "mito_fraction",
        "flag_lost_to_qc",
        "flag_low_umis",
        "flag_high_mito",
        "dying_signal",
        "essentiality",
        "depmap_22q1_class",
        "call",
    ]
    return table[[c for c in columns if c in table.columns]].reset_index(drop=True)


def control_null_p(energy_p, n_degs, is_control: np.ndarray) -> np.ndarray:
    """Exact empirical p of every row against the null rows ``is_control`` (min-p of energy p and DEG count).

    A row outside the null is ranked among all null rows' statistics (:class:`NullDistribution`, min-p
    combination); a null row among the other null rows' (leave one out), so that it is scored exactly as a new
    null row would be.
    """
    energy = -np.log10(np.asarray(energy_p, dtype=float).clip(min=1e-12))
    energy = np.where(np.isnan(energy), 0.0, energy)
    degs = np.nan_to_num(np.asarray(n_degs, dtype=float), nan=0.0)
    ctrl = np.flatnonzero(is_control)
    if ctrl.size < 2:
        raise ValueError(f"{ctrl.size} control rows: an empirical null needs at least 2")
    null = NullDistribution(0, energy[ctrl], degs[ctrl])
    out = np.array([null.calibrated_p(e, d)[2] for e, d in zip(energy, degs, strict=True)])
    for i in ctrl:
        rest = ctrl[ctrl != i]
        out[i] = NullDistribution(0, energy[rest], degs[rest]).calibrated_p(energy[i], degs[i])[2]
    return out


def control_calibration(controls: pd.DataFrame, alpha: float = 0.05) -> dict:
    """The calibration check of one screen: its control rows scored like perturbations (JSON-serialisable)."""
    n = len(controls)
    raw = int((controls["energy_test_p"] < alpha).sum())
    per_test = int((controls["p_calibrated"] <= alpha).sum())
    called = int((controls["q_calibrated"] < alpha).sum())
    return {
        "n_controls": int(n),
        "raw_energy_p_below_alpha": raw,
        "raw_share": raw / n,
        "raw_ci": wilson(raw, n),
        "per_test_called": per_test,
        "per_test_share": per_test / n,
        "per_test_ci": wilson(per_test, n),
        "called": called,
        "called_share": called / n,
        "called_ci": wilson(called, n),
        "alpha": alpha,
    }


def calibration_table(stats: pd.DataFrame, screen: str, alpha: float = 0.05) -> pd.DataFrame:
    """One row per control of ``screen``: raw energy p, DEG count, calibrated p and q, and whether each is called."""
    table = stats[stats["screen"].astype(str) == screen]
    p = control_null_p(table["energy_test_p"], table["n_degs_anderson_darling"], table["is_control"].to_numpy(bool))
    q = false_discovery_control(p)
    out = table.assign(p_calibrated=p, q_calibrated=q)[table["is_control"].to_numpy(bool)]
    out = out[["perturbation_id", "energy_test_p", "n_degs_anderson_darling", "p_calibrated", "q_calibrated"]]
    return out.assign(
        raw_called=out["energy_test_p"] < alpha,
        per_test_called=out["p_calibrated"] <= alpha,
        called=out["q_calibrated"] < alpha,
    ).reset_index(drop=True)


def wilson(k: int, n: int) -> list[float]:
    """Wilson 95% interval of k / n."""
    from scipy.stats import binomtest

    if n == 0:
        return [float("nan"), float("nan")]
    ci = binomtest(int(k), int(n)).proportion_ci(method="wilson")
    return [float(ci.low), float(ci.high)]


def call_shares(table: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """Share of each call (with Wilson intervals), overall or within each level of ``by``."""
    rows = []
    levels = [("all", table)] if by is None else [(str(k), g) for k, g in table.groupby(by, dropna=False)]
    for level, group in levels:
        n = len(group)
        for call, k in group["call"].value_counts().items():
            low, high = wilson(int(k), n)
            rows.append({"group": level, "call": call, "n": int(k), "of": n, "share": k / n, "low": low, "high": high})
    return pd.DataFrame(rows)
