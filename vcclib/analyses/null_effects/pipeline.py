"""One single-cell dataset end to end: classic calls, calibrated calls, versus average, escape, quality, call."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from vcclib.analyses.null_effects import answer, average, calibration, classic, escape, quality
from vcclib.analyses.null_effects.groups import CellGroups, cell_groups
from vcclib.data.schema import is_multi_guide
from vcclib.metrics.de import mwu_pvalues
from vcclib.metrics.distances import etest


def classic_group_tests(
    adata,
    pcs,
    cg: CellGroups,
    *,
    n_permutations: int,
    max_control_cells: int,
    max_cells: int,
    alpha: float,
    correction: str,
    seed: int,
) -> pd.DataFrame:
    """The earlier chapter's E-test and any-DE-gene counts for possibly overlapping groups (high-MOI data).

    E-test against a control subsample; Mann–Whitney DE (BH within the group) against all controls. A group named
    after a measured gene (a TSS-targeting gRNA group) gets its target's own DE row: ``target_log2fc`` (the DE
    engine's bounded convention, :func:`~vcclib.analyses.null_effects.classic.target_log2_fold_change`) and
    ``target_fdr``.
    """
    rng = np.random.default_rng(seed)
    ctrl = cg.control if cg.control.size <= max_control_cells else rng.choice(cg.control, max_control_cells, False)
    X = adata.X
    expr = X[cg.control].toarray() if sp.issparse(X) else np.asarray(X[cg.control])
    ref_mean = np.expm1(expr.mean(0))
    block = calibration.SortedBlock(expr, float(abs(X).max()))
    genes = {str(g): j for j, g in enumerate(adata.var_names)}
    rows = []
    for i, (g, idx) in enumerate(cg.groups.items()):
        sub = idx if len(idx) <= max_cells else rng.choice(idx, max_cells, replace=False)
        e, p = etest(pcs[sub], pcs[ctrl], n_perms=n_permutations, seed=seed + i) if len(sub) >= 2 else (np.nan, np.nan)
        grp = X[idx].toarray() if sp.issparse(X) else np.asarray(X[idx])
        row = {
            "perturbation": g,
            "n_cells": len(idx),
            "edistance": e,
            "etest_p": p,
            "n_de_genes": 0,
            "target_measured": g in genes,
            "target_log2fc": np.nan,
            "target_fdr": np.nan,
        }
        if len(idx):
            U, tie = calibration.mwu_against_block(block, grp, expr[:0])
            pvals = mwu_pvalues(U[None, :], tie[None, :], np.array([len(idx)]), float(cg.control.size))
            fdr = calibration.bh_rows(pvals)[0]
            row["n_de_genes"] = int((fdr < alpha).sum())
            if g in genes:
                j = genes[g]
                row.update(
                    target_fdr=float(fdr[j]),
                    target_log2fc=float(classic.target_log2_fold_change(np.expm1(grp[:, j].mean()), ref_mean[j])),
                )
        rows.append(row)
    out = pd.DataFrame(rows).set_index("perturbation")
    out["etest_p_adj"] = classic.adjust_pvalues(out["etest_p"], correction)
    return out


def principal_components(X, cg: CellGroups, n_pcs: int, seed: int) -> np.ndarray:
    """PCs of the cells that are in a group or control (high-MOI: most cells carry no gRNA); NaN rows elsewhere."""
    used = np.unique(np.concatenate([cg.control, *cg.groups.values()]))
    part = classic.pca_embedding(X[used], n_pcs, seed)
    pcs = np.full((X.shape[0], part.shape[1]), np.nan)
    pcs[used] = part
    return pcs


def analyse_dataset(
    adata,
    *,
    dataset: str,
    perturbation_column: str = "perturbation",
    control_label: str = "",
    n_pcs: int = 20,
    n_permutations: int = 200,
    max_control_cells: int = 2000,
    n_null: int = 1000,
    n_check: int = 50,
    max_cells: int = 200,
    min_cells: int = 30,
    alpha: float = 0.05,
    correction: str = "bh",
    escape_method: str = "mixscape",
    split_by: str = "",
    min_de_genes: int = 5,
    umi_column: str = "",
    genes_column: str = "",
    mito_column: str = "",
    seed: int = 0,
) -> dict:
    """Every table of one dataset and its record.

    Returns a dict: ``effects``, ``calibration``, ``qq``, ``guides`` (escape per guide) and ``record``.
    """
    control_label = control_label or adata.uns["vcc"]["control_label"]
    cg = cell_groups(adata, perturbation_column, control_label)
    notes = []
    pcs = (
        principal_components(adata.X, cg, n_pcs, seed)
        if is_multi_guide(adata)
        else classic.pca_embedding(adata.X, n_pcs, seed)
    )
    if is_multi_guide(adata):
        base = classic_group_tests(
            adata,
            pcs,
            cg,
            n_permutations=n_permutations,
            max_control_cells=max_control_cells,
            max_cells=max_cells,
            alpha=alpha,
            correction=correction,
            seed=seed,
        )
        notes.append(cg.rule)
    else:
        base = classic.perturbation_effects(
            adata,
            perturbation_column=perturbation_column,
            control_label=control_label,
            n_pcs=n_pcs,
            n_permutations=n_permutations,
            max_control_cells=max_control_cells,
            max_cells_per_perturbation=max_cells,
            alpha=alpha,
            correction=correction,
            seed=seed,
        )
        base = base.drop(columns=["call"]).rename(columns={"evidence": "classic_evidence"})
    cal, checks = calibration.calibrated_tests(
        pcs,
        adata.X,
        cg.groups,
        cg.control,
        n_null=n_null,
        n_check=n_check,
        max_cells=max_cells,
        min_cells=min_cells,
        alpha=alpha,
        seed=seed,
    )
    versus = average.versus_average(
        adata.X, pcs, cg.groups, cg.control, max_cells=max_cells, n_permutations=n_permutations, seed=seed
    )
    labels = adata.obs[perturbation_column].astype(str)
    ran_mixscape = escape_method == "mixscape" and not is_multi_guide(adata)
    if ran_mixscape:
        classes = escape.mixscape_classes(
            adata, perturbation_column, control_label, split_by=split_by or None, min_de_genes=min_de_genes, seed=seed
        )
        esc, by_guide = escape.escape_fractions(classes, labels, adata.obs.get("guide"), control_label)
    else:
        esc, by_guide = escape.empty_escape(cg.names), pd.DataFrame()
        notes.append(
            "escape: Mixscape takes one perturbation per cell and is not run on high-MOI data"
            if is_multi_guide(adata)
            else "escape: not computed (escape_method is not 'mixscape')"
        )
    signals, signal_notes = quality.quality_signals(adata, umi_column, genes_column, mito_column)
    notes += [n for n in signal_notes if "skipped" in n]
    shifts = quality.quality_shifts(signals, cg.groups, cg.control, alpha)
    usable, refused = quality.usable_signals(signal_notes, adata.n_vars)
    shifts["dying_flag"] = quality.dying_flag(shifts, alpha, signals=usable)
    panel = {}
    if refused:
        notes += refused
        would = quality.dying_flag(shifts, alpha).fillna(False).astype(bool)
        panel = {
            "refused": [r.split(" refused")[0] for r in refused],
            "would_flag": int(would.sum()),
            "n_groups": int(len(would)),
        }
    nt_guides = None
    if is_multi_guide(adata):
        grnas = adata.uns["grnas"]
        assigned = adata.obsm["grna_assigned"].tocsc()
        nt_guides = {
            str(grnas["grna_id"].iloc[j]): np.flatnonzero(assigned[:, j].toarray().ravel())
            for j in np.flatnonzero(grnas["target"].astype(str).to_numpy() == control_label)
        }
    elif "guide" in adata.obs:
        guide = adata.obs["guide"].astype(str).to_numpy()
        nt_guides = {g: cg.control[guide[cg.control] == g] for g in sorted(set(guide[cg.control]))}
    deplete = quality.depletion(cg.guides, nt_guides)
    if deplete.empty:
        notes.append("depletion: no guide information, skipped")
    table = (
        base.join(cal.drop(columns=["n_cells"]), how="left")
        .join(versus)
        .join(esc[["escape_fraction", "n_perturbed_cells", "classified"]])
        .join(shifts)
        .join(deplete)
    )
    ptype = str(adata.obs["perturbation_type"].iloc[0]) if "perturbation_type" in adata.obs else ""
    table["call"] = answer.classify(table, alpha=alpha, min_cells=min_cells, perturbation_type=ptype)
    shift = f"{panel['refused'][0]}_log2_shift" if panel and panel["refused"][0] != "mito_fraction" else ""
    if shift in table and table["edistance_cal"].notna().sum() > 2:
        from scipy.stats import spearmanr

        ok = table["edistance_cal"].notna()
        panel["rho_signal"] = panel["refused"][0]
        panel["rho_umis_vs_edistance"] = float(
            spearmanr(table.loc[ok, shift].abs(), table.loc[ok, "edistance_cal"]).statistic
        )
        flagged = quality.dying_flag(shifts, alpha).fillna(False).astype(bool).reindex(table.index)
        panel["would_flag_with_effect"] = int((flagged & (table["q_calibrated"] < alpha)).sum())
    explained = escape.escape_explains(table, esc, min_cells) if esc["classified"].any() else []
    summary = calibration.calibration_summary(checks, alpha)
    record = answer.dataset_record(
        table,
        summary,
        dataset=dataset,
        n_genes=adata.n_vars,
        escape_explained=explained,
        notes=notes,
        alpha=alpha,
        escape_ran=ran_mixscape,
    )
    record["signals"] = signal_notes
    record.update(escape_min_cells=min_cells, escape_min_de_genes=min_de_genes)
    record["panel_quality"] = panel
    record["usable_signals"] = usable
    lines = adata.obs["cell_line"].astype(str).unique().tolist() if "cell_line" in adata.obs else []
    record["cell_line"] = lines[0] if len(lines) == 1 else ""
    record["settings"] = {
        **cal.attrs,
        "n_pcs": int(pcs.shape[1]),
        "n_permutations": n_permutations,
        "group_rule": cg.rule,
    }
    front = ["n_cells", "call", "p_calibrated", "q_calibrated", "escape_fraction"]
    table = table[front + [c for c in table.columns if c not in front]]
    return {
        "effects": table,
        "calibration": checks,
        "qq": calibration.qq_table(checks),
        "guides": by_guide,
        "record": record,
    }
