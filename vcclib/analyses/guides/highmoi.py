"""Guide by guide in a high-MOI CRISPRi screen (several gRNAs per cell; Gasperini 2019 in the project schema).

Conventions
-----------
* Data: ``obsm['grna_assigned']`` (cells × gRNAs, sceptre's threshold rule) and ``uns['grnas']`` (``grna_id``,
  ``grna_group``, ``target``, ``target_kind``: TSS positive control, candidate enhancer, non-targeting), see
  docs/schema.md. A *unit* is a gRNA group (its gRNAs pooled with OR, as sceptre pools a group) or one gRNA.
* Cells of a unit: those carrying it. Background: every other cell of the screen (sceptre's complement set),
  except, for a single gRNA, the cells carrying another gRNA of its own group (they are repressed too).
* Statistic per tested gene: ``mean log1p in the unit's cells − mean log1p in the background``;
  ``target_log2fc = log2(expm1(mean) / expm1(background mean))`` clipped to [1/20, 20] as in cell-eval.
* **Calibrated p (conditional resampling respecting the gRNAs per cell).** The chance of carrying a given gRNA
  grows with the number of gRNAs a cell carries, and that number goes with the cell's size and infection, which
  move expression. So each null draw replaces the unit's cells by background cells of the *same stratum*, strata
  being ``batch × number of assigned gRNAs`` (capped at ``max_grnas``): for each stratum as many cells as the
  unit has there, without replacement. The null statistic compares the draw with the background cells not
  drawn; ``p = (1 + #{|null − centre| ≥ |obs − centre|}) / (1 + n_resamples)`` (two-sided, ``centre`` the null
  median). This is a stratified permutation test of the unit's indicator, conditional on the strata.
* **Checked against the non-targeting gRNAs.** Every non-targeting gRNA is tested the same way against every
  measured gene (negative-control pairs, as sceptre checks its calibration); their p-values should be uniform.
* ``efficacy`` of a TSS gRNA: the fraction of its target's mRNA removed, ``1 − 2^target_log2fc``;
  ``relative_efficacy``: its log2 fold change over the strongest gRNA of its group (1 = the best one).
* ``escape_fraction``: not estimable here (one cis gene's sparse counts cannot separate escaping from partly
  repressed cells; Mixscape needs a multi-gene signature and one gRNA per cell): NaN, kept for the common table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from vcclib.analyses.guides.lowmoi import GuideDataError, log2_fold_change, resampled_draws, resampled_null
from vcclib.memo import memoised

NON_TARGETING = "non-targeting"
TSS = "TSS positive control"
#: the code the stored tables of this module depend on (see vcclib.memo)
MEMO_CODE = ("vcclib.analyses.guides.highmoi", "vcclib.analyses.guides.lowmoi")


def check_highmoi(adata: AnnData) -> pd.DataFrame:
    """The gRNA table of a high-MOI AnnData, or a one-line error saying what is missing."""
    for key, where in (("grna_assigned", adata.obsm), ("grnas", adata.uns)):
        if key not in where:
            raise GuideDataError(f"not high-MOI data in the project schema: no {key!r} (see docs/schema.md)")
    grnas = adata.uns["grnas"]
    if adata.obsm["grna_assigned"].shape[1] != len(grnas):
        raise GuideDataError("obsm['grna_assigned'] and uns['grnas'] disagree on the number of gRNAs")
    if not (grnas["target_kind"] == NON_TARGETING).any():
        raise GuideDataError("no non-targeting gRNAs: the p-values cannot be checked against a negative control")
    return grnas.reset_index(drop=True)


def resampling_strata(adata: AnnData, max_grnas: int = 3, batch_column: str = "batch") -> np.ndarray:
    """Per cell ``'<batch>|<min(n_grnas, max_grnas)>'``: the strata the conditional resampling keeps."""
    n = np.minimum(adata.obs["n_grnas"].to_numpy(dtype=int), max_grnas).astype(str)
    batch = adata.obs[batch_column].astype(str).to_numpy() if batch_column in adata.obs else np.full(adata.n_obs, "")
    return np.char.add(np.char.add(batch.astype(str), "|"), n)


def cis_genes(adata: AnnData) -> dict[str, list[str]]:
    """Per gRNA group, the measured genes to test: sceptre's discovery pairs, and a TSS group's own target."""
    genes = set(map(str, adata.var_names))
    out: dict[str, list[str]] = {}
    pairs = adata.uns.get("discovery_pairs")
    if pairs is not None:
        for group, rows in pairs.groupby("grna_group"):
            out[str(group)] = sorted({str(s) for s in rows["symbol"].dropna()} & genes)
    for group, rows in check_highmoi(adata).groupby("grna_group"):
        target = str(rows["target"].iloc[0])
        if (rows["target_kind"] == TSS).all() and target in genes and target not in out.get(str(group), []):
            out.setdefault(str(group), []).append(target)
    return out


def _test(
    X: np.ndarray,
    members: np.ndarray,
    background: np.ndarray,
    strata: np.ndarray,
    n_resamples: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observed statistic, two-sided resampled p and (unit mean, background mean) for each column of X."""
    idx = np.flatnonzero(members)
    draws = resampled_draws(strata, background, idx, n_resamples, rng)
    null = resampled_null(X, draws, background)
    unit_mean, back_mean = X[idx].mean(axis=0), X[background].mean(axis=0)
    observed = unit_mean - back_mean
    centre = np.median(null, axis=0)
    extreme = (np.abs(null - centre) >= np.abs(observed - centre) - 1e-12).sum(axis=0)
    return observed, (1 + extreme) / (1 + n_resamples), np.vstack([unit_mean, back_mean])


@memoised("guides.highmoi_guide_table", MEMO_CODE)
def highmoi_guide_table(
    adata: AnnData,
    *,
    n_resamples: int = 500,
    max_grnas: int = 3,
    min_cells: int = 10,
    alpha: float = 0.05,
    weak_efficacy: float = 0.5,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every gRNA group on its cis genes, every TSS gRNA on its target, every non-targeting gRNA on every gene.

    Returns
    -------
    (guides, negative_controls)
        ``guides``: one row per (unit, tested gene) for the targeting groups (``level`` = ``group``) and the TSS
        positive-control gRNAs (``level`` = ``gRNA``): ``guide``, ``target``, ``n_cells``, ``target_log2fc``,
        ``p_calibrated``, ``efficacy``, ``escape_fraction``, then ``level``, ``target_kind``, ``grna_group``,
        ``gene`` (the gene tested), ``delta`` (mean log1p difference), ``q_bh`` (Benjamini–Hochberg over the group
        rows), ``relative_efficacy`` and ``status`` (gRNA rows: ``effective``, ``weak``, ``failed``, ``too few
        cells``). ``negative_controls``: one row per non-targeting gRNA × measured gene (``guide``, ``gene``,
        ``n_cells``, ``delta``, ``p_calibrated``). ``attrs`` carry the settings.
    """
    from scipy.stats import false_discovery_control

    grnas = check_highmoi(adata)
    assigned = sp.csc_matrix(adata.obsm["grna_assigned"]).astype(bool)
    genes = list(map(str, adata.var_names))
    strata = resampling_strata(adata, max_grnas)
    rng = np.random.default_rng(seed)
    cis = cis_genes(adata)
    X = adata.X

    def carrying(columns) -> np.ndarray:
        return np.asarray(assigned[:, list(columns)].sum(axis=1)).ravel() > 0

    def dense(columns_of_x) -> np.ndarray:
        block = X[:, columns_of_x]
        return np.asarray(block.todense() if sp.issparse(block) else block, dtype=np.float64)

    rows = []
    for group, members_of in grnas.groupby("grna_group", sort=True):
        kind = str(members_of["target_kind"].iloc[0])
        if kind == NON_TARGETING or not cis.get(str(group)):
            continue
        in_group = carrying(members_of.index)
        tested = cis[str(group)]
        values = dense([genes.index(g) for g in tested])
        units = [("group", str(group), in_group, ~in_group)]
        if kind == TSS:
            for i, grna in members_of.iterrows():
                own = carrying([i])
                units.append(("gRNA", str(grna["grna_id"]), own, ~in_group))
        for level, name, members, background in units:
            n = int(members.sum())
            base = {
                "guide": name,
                "target": str(members_of["target"].iloc[0]),
                "n_cells": n,
                "level": level,
                "target_kind": kind,
                "grna_group": str(group),
            }
            if n < min_cells:
                rows += [
                    {**base, "gene": g, "delta": np.nan, "target_log2fc": np.nan, "p_calibrated": np.nan}
                    for g in tested
                ]
                continue
            observed, p, means = _test(values, members, background, strata, n_resamples, rng)
            rows += [
                {
                    **base,
                    "gene": g,
                    "delta": float(observed[k]),
                    "p_calibrated": float(p[k]),
                    "target_log2fc": float(log2_fold_change(means[0, k], means[1, k])),
                }
                for k, g in enumerate(tested)
            ]
    table = pd.DataFrame(rows)
    is_group = table["level"] == "group"
    table["q_bh"] = np.nan
    ok = is_group & table["p_calibrated"].notna()
    table.loc[ok, "q_bh"] = false_discovery_control(table.loc[ok, "p_calibrated"].to_numpy())
    _grna_efficacy(table, alpha, weak_efficacy, min_cells)
    table["escape_fraction"] = np.nan
    first = ["guide", "target", "n_cells", "target_log2fc", "p_calibrated", "efficacy", "escape_fraction"]
    table = table[first + [c for c in table.columns if c not in first]]

    nt_rows = []
    values = dense(list(range(len(genes))))
    for i, grna in grnas[grnas["target_kind"] == NON_TARGETING].iterrows():
        members = carrying([i])
        n = int(members.sum())
        if n < min_cells:
            continue
        observed, p, _ = _test(values, members, ~members, strata, n_resamples, rng)
        nt_rows.append(
            pd.DataFrame(
                {"guide": str(grna["grna_id"]), "gene": genes, "n_cells": n, "delta": observed, "p_calibrated": p}
            )
        )
    negative = (
        pd.concat(nt_rows, ignore_index=True)
        if nt_rows
        else pd.DataFrame(columns=["guide", "gene", "n_cells", "delta", "p_calibrated"])
    )
    settings = {
        "n_resamples": n_resamples,
        "strata": f"batch × assigned gRNAs (capped at {max_grnas})",
        "n_strata": int(len(set(strata))),
        "min_cells": min_cells,
        "alpha": alpha,
        "weak_efficacy": weak_efficacy,
        "seed": seed,
    }
    table.attrs.update(settings)
    negative.attrs.update(settings)
    return table, negative


def _grna_efficacy(table: pd.DataFrame, alpha: float, weak_efficacy: float, min_cells: int) -> None:
    """Fill ``efficacy``, ``relative_efficacy`` and ``status`` of the TSS gRNA rows (in place)."""
    table["efficacy"] = np.nan
    table["relative_efficacy"] = np.nan
    table["status"] = ""
    grna = (table["level"] == "gRNA") & (table["gene"] == table["target"])
    table.loc[grna, "efficacy"] = 1 - np.exp2(table.loc[grna, "target_log2fc"])
    best = table[grna].groupby("grna_group")["target_log2fc"].transform("min")
    table.loc[grna, "relative_efficacy"] = table.loc[grna, "target_log2fc"] / best.where(best < 0)
    significant = (table["p_calibrated"] < alpha) & (table["target_log2fc"] < 0)
    table.loc[grna, "status"] = np.select(
        [
            table.loc[grna, "n_cells"] < min_cells,
            ~significant[grna],
            table.loc[grna, "relative_efficacy"].fillna(0) < weak_efficacy,
        ],
        ["too few cells", "failed", "weak"],
        "effective",
    )


def calibration_summary(negative: pd.DataFrame, alpha: float = 0.05) -> dict:
    """How uniform the non-targeting gRNAs' p-values are: share below ``alpha`` and 0.01, KS distance."""
    from scipy.stats import kstest

    p = negative["p_calibrated"].dropna().to_numpy()
    if not p.size:
        return {"n_tests": 0}
    return {
        "n_tests": int(p.size),
        "n_grnas": int(negative["guide"].nunique()),
        "share_below_alpha": float(np.mean(p < alpha)),
        "share_below_0_01": float(np.mean(p < 0.01)),
        "ks_statistic": float(kstest(p, "uniform").statistic),
        "alpha": alpha,
    }


def highmoi_summary(table: pd.DataFrame, negative: pd.DataFrame, alpha: float = 0.05, fdr: float = 0.1) -> dict:
    """The numbers the chapter quotes about the high-MOI screen."""
    groups = table[table["level"] == "group"]
    tss = groups[groups["target_kind"] == TSS]
    tss_own = tss[tss["gene"] == tss["target"]]
    enh = groups[groups["target_kind"] != TSS]
    hits = enh[enh["q_bh"] < fdr]
    grna = table[(table["level"] == "gRNA") & (table["gene"] == table["target"])]
    counts = grna["status"].value_counts()
    spread = grna.groupby("grna_group")["efficacy"].agg(lambda s: s.max() - s.min())
    weakest = grna.loc[grna["efficacy"].idxmin()] if grna["efficacy"].notna().any() else None
    return {
        "n_groups": int(groups["guide"].nunique()),
        "n_tss_groups": int(tss["guide"].nunique()),
        "n_tss_significant": int(((tss_own["p_calibrated"] < alpha) & (tss_own["target_log2fc"] < 0)).sum()),
        "median_tss_log2fc": float(tss_own["target_log2fc"].median()),
        "n_enhancer_groups": int(enh["guide"].nunique()),
        "n_enhancer_pairs": int(len(enh)),
        "n_enhancer_hits": int(len(hits)),
        "n_enhancer_groups_with_hit": int(hits["guide"].nunique()),
        "enhancer_hits": [f"{r.grna_group}→{r.gene}" for r in hits.itertuples()],
        "fdr": fdr,
        "n_tss_grnas": int(len(grna)),
        "grna_status": {k: int(counts.get(k, 0)) for k in ("effective", "weak", "failed")},
        "median_grna_efficacy": float(grna["efficacy"].median()),
        "median_within_group_spread": float(spread.median()) if len(spread) else np.nan,
        "weakest_grna": "" if weakest is None else str(weakest["guide"]),
        "weakest_grna_target": "" if weakest is None else str(weakest["target"]),
        "weakest_grna_efficacy": np.nan if weakest is None else float(weakest["efficacy"]),
        "weakest_grna_p": np.nan if weakest is None else float(weakest["p_calibrated"]),
        "calibration": calibration_summary(negative, alpha),
    }
