"""Genome scale: Replogle et al. 2022's per-perturbation statistics (Table S2) with DepMap essentiality.

Per screen (K562 genome-wide day 8: 11,258 perturbations; K562 essential day 6: 2,285; RPE1 essential day 7:
2,680), the non-targeting rows of the same table are the empirical null. The raw energy-test p-values are not
calibrated against them (18–32% of the control rows have p < 0.05), so ``p_calibrated`` = raw p × the controls'
inflation at α (share of controls with p < α, divided by α; at least 1), and ``q_calibrated`` is its BH. The rank of
each perturbation's energy p and DEG count among the controls' (min-p,
:class:`~vcclib.analyses.null_effects.calibration.NullDistribution`) is kept as ``p_rank_vs_controls``: exact, but
too coarse for BH over thousands of perturbations (smallest value 1 / (controls + 1)).

Dying-cell signals, each against the controls' distribution (beyond their 1st/99th percentile): cells lost to
quality filtering (1 − filtered / unfiltered), the UMI z-score (low), the mitochondrial fraction (high).

Call, in order: ``too few cells`` (filtered cells < ``min_cells``); ``effect`` or ``effect, dying-cell readout``
(q_calibrated < α; the second when a dying-cell signal is flagged); ``failed knockdown`` (no effect and the
target lowered by less than ``min_knockdown``, or not measurable); ``no effect``.
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
    cls = np.where(genes.isin(list(common)), "common essential", np.where(genes.isin(list(non)), "non-essential",
                                                                         "other"))
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


def genome_scale_calls(stats: pd.DataFrame, screen: str, essentiality: pd.DataFrame | None = None, *,
                       alpha: float = 0.05, min_cells: int = 30, min_knockdown: float = 0.3) -> pd.DataFrame:
    """One row per perturbation of ``screen``: knockdown, energy p, DEG count, calibrated p, signals, ``call``."""
    table = stats[stats["screen"].astype(str) == screen].copy()
    if table.empty:
        raise ValueError(f"no rows for screen {screen!r}; screens: {sorted(stats['screen'].astype(str).unique())}")
    table["lost_to_qc"] = 1 - table["n_cells_filtered"].astype(float) / table["n_cells_unfiltered"].astype(float)
    ctrl = table[table["is_control"]]
    energy = -np.log10(table["energy_test_p"].astype(float).clip(lower=1e-12))
    degs = table["n_degs_anderson_darling"].astype(float).fillna(0)
    null = NullDistribution(0, energy[table["is_control"]].to_numpy(), degs[table["is_control"]].to_numpy())
    cal = [null.calibrated_p(e, d) for e, d in zip(energy, degs, strict=True)]
    table["p_energy_vs_controls"], table["p_degs_vs_controls"], table["p_rank_vs_controls"] = np.array(cal).T
    # the controls' inflation of the raw energy p at alpha; p_calibrated = raw p × inflation (≥ 1), so that the
    # control rows are called at about alpha; the rank against the controls alone is too coarse for BH over
    # thousands of perturbations (its smallest value is 1 / (controls + 1))
    inflation = max(1.0, float((ctrl["energy_test_p"] < alpha).mean()) / alpha)
    table["p_calibrated"] = np.minimum(1.0, table["energy_test_p"].astype(float) * inflation)
    ok = table["energy_test_p"].notna()
    table["energy_q_raw"] = np.nan
    table.loc[ok, "energy_q_raw"] = false_discovery_control(table.loc[ok, "energy_test_p"].astype(float))
    genes = ~table["is_control"]
    table["q_calibrated"] = np.nan
    table.loc[genes & ok, "q_calibrated"] = false_discovery_control(table.loc[genes & ok, "p_calibrated"])
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
    table["call"] = np.select(
        [few, effect & table["dying_signal"], effect, failed],
        ["too few cells", "effect, dying-cell readout", "effect", "failed knockdown"], "no effect")
    table = table[genes].rename(columns={"target": "gene"})
    if essentiality is not None:
        table = table.join(essentiality, on="gene")
    table.attrs.update(screen=screen, n_controls=int(len(ctrl)), alpha=alpha, min_cells=min_cells,
                       min_knockdown=min_knockdown,
                       control_share_raw_energy=float((ctrl["energy_test_p"] < alpha).mean()),
                       inflation=inflation,
                       control_share_calibrated=float((np.minimum(1, ctrl["energy_test_p"] * inflation) < alpha).mean()),
                       control_share_any_deg=float((ctrl["n_degs_anderson_darling"].fillna(0) > 0).mean()),
                       thresholds={"lost_to_qc": float(lost_hi), "umis_zscore": float(umi_lo),
                                   "mito_fraction": float(mito_hi)})
    columns = ["gene", "perturbation_id", "knockdown", "target_expression", "n_cells_unfiltered", "n_cells_filtered",
               "energy_test_p", "energy_q_raw", "n_degs_anderson_darling", "n_degs_mann_whitney", "p_rank_vs_controls",
               "p_calibrated",
               "q_calibrated", "lost_to_qc", "umis_zscore", "mito_fraction", "flag_lost_to_qc", "flag_low_umis",
               "flag_high_mito", "dying_signal", "essentiality", "depmap_22q1_class", "call"]
    return table[[c for c in columns if c in table.columns]].reset_index(drop=True)


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
            rows.append({"group": level, "call": call, "n": int(k), "of": n, "share": k / n, "low": low,
                         "high": high})
    return pd.DataFrame(rows)
