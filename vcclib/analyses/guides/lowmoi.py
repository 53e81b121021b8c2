"""Guide by guide in a low-MOI Perturb-seq screen (one gRNA per cell): knockdown, signature, agreement, escape.

Conventions
-----------
* Expression: log1p-normalised X of the project schema, every measured gene.
* Effect of a group of cells (a guide, a target, a replicate's cells): ``Δ = mean(log1p X of the group) −
  mean(log1p X of the control cells)`` (pseudobulk of log1p), over every measured gene. Where the data carry a
  ``replicate`` column, the control mean is that of the group's own replicates, weighted like the group.
* Target knockdown: ``target_log2fc = log2(expm1(mean log1p target gene in the guide's cells) / expm1(mean in
  control))``, clipped to [1/20, 20] like cell-eval's fold change.
* Calibrated p-values: conditional resampling of control cells. For a guide with ``n_r`` cells in replicate ``r``,
  each null draw takes ``n_r`` control cells of replicate ``r`` (without replacement), so the null has the guide's
  size and replicate make-up; the statistic (group mean − control mean) is compared with (draw mean − mean of the
  control cells not drawn); ``p = (1 + #{null at least as extreme}) / (1 + n_resamples)``. ``p_calibrated``
  tests the target's own mRNA (one-sided, lower); ``p_signature`` tests the squared norm of the guide's mean shift
  in the top principal components of all cells (any effect at all).
* ``efficacy`` of a guide: the leave-one-out projection ``⟨Δ_g, Δ_rest⟩ / ‖Δ_rest‖²`` with ``Δ_rest`` the effect of
  the same target's other guides pooled: 1 = as strong as its siblings, 0 = no part of the target's effect.
* ``escape_fraction``: the share of a guide's cells that pertpy's Mixscape calls non-perturbed (NP); NaN for a
  target Mixscape cannot separate (fewer than ``min_de_genes`` DE genes: then no cell can be told apart).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from vcclib.analyses.mixscape import fit_mixscape
from vcclib.errors import VccError
from vcclib.memo import memoised

FC_CLIP = 20.0
#: the code the stored tables of this module depend on (see vcclib.memo)
MEMO_CODE = ("vcclib.analyses.guides.lowmoi", "vcclib.analyses.null_effects", "vcclib.analyses.mixscape")


class GuideDataError(VccError):
    """The data cannot be analysed guide by guide as given (no guide column, no control cells, …)."""


def _dense(X) -> np.ndarray:
    return np.asarray(X.todense() if sp.issparse(X) else X, dtype=np.float64)


def group_means(X, codes: np.ndarray, n_groups: int, weights: np.ndarray | None = None) -> np.ndarray:
    """(Weighted) mean of the rows of X per group code (codes < 0 left out); groups × columns, NaN for empty groups."""
    keep = codes >= 0
    w = np.ones(int(keep.sum())) if weights is None else np.asarray(weights, dtype=float)[keep]
    indicator = sp.csr_matrix((w, (codes[keep], np.flatnonzero(keep))), shape=(n_groups, X.shape[0]))
    sums = _dense(indicator @ X)
    counts = np.asarray(indicator.sum(axis=1)).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None]


def check_guides(adata: AnnData, guide_column: str, perturbation_column: str, control_label: str) -> None:
    """Refuse data without a guide column, without control cells, or with guides shared by two targets."""
    for column in (guide_column, perturbation_column):
        if column not in adata.obs:
            raise GuideDataError(f"obs has no column {column!r}; obs columns: {list(adata.obs.columns)}")
    labels = adata.obs[perturbation_column].astype(str)
    if not (labels == control_label).any():
        raise GuideDataError(f"no control cells: {control_label!r} is absent from obs[{perturbation_column!r}]")
    per_guide = adata.obs.groupby(adata.obs[guide_column].astype(str), observed=True)[perturbation_column].nunique()
    shared = per_guide[per_guide > 1]
    if len(shared):
        raise GuideDataError(f"{len(shared)} guides are assigned to several targets, e.g. {list(shared.index[:3])}")


def control_reference(
    adata: AnnData,
    groups: pd.Series,
    control_mask: np.ndarray,
    replicate_column: str | None = "replicate",
    weights: np.ndarray | None = None,
) -> tuple[pd.Index, np.ndarray, np.ndarray]:
    """Mean log1p per group and the matching control mean (replicate-weighted where replicates exist).

    ``weights`` (per cell, optional) weight each cell in its group's mean and in the replicate make-up the
    control mean is matched to; control cells are always weighted equally.

    Returns
    -------
    (names, group_mean, control_mean)
        Group names (sorted), groups × genes means of the group's cells, and for each group the control mean
        weighted by the group's cells per replicate.
    """
    valid = groups.notna().to_numpy()
    codes = np.full(len(groups), -1)
    codes[valid], names = pd.factorize(groups[valid].astype(str), sort=True)
    means = group_means(adata.X, codes, len(names), weights)
    cell_w = np.ones(len(groups)) if weights is None else np.asarray(weights, dtype=float)
    if replicate_column and replicate_column in adata.obs:
        reps = adata.obs[replicate_column].astype(str).to_numpy()
        rep_names = sorted(set(reps))
        rep_codes = np.array([rep_names.index(r) for r in reps])
        control_codes = np.where(control_mask, rep_codes, -1)
        rep_control = group_means(adata.X, control_codes, len(rep_names))
        weights = np.zeros((len(names), len(rep_names)))
        mix = np.zeros((len(names), len(rep_names)))
        np.add.at(mix, (codes[codes >= 0], rep_codes[codes >= 0]), cell_w[codes >= 0])
        mix /= np.where(mix.sum(axis=1, keepdims=True) > 0, mix.sum(axis=1, keepdims=True), 1)
        control = mix @ np.nan_to_num(rep_control)
    else:
        control = np.repeat(group_means(adata.X, np.where(control_mask, 0, -1), 1), len(names), axis=0)
    return pd.Index(names), means, control


def log2_fold_change(group_log1p_mean, control_log1p_mean) -> np.ndarray:
    """cell-eval-style log2 fold change of expm1(mean log1p), clipped to [1/20, 20] (0/0 → 0)."""
    t, r = np.expm1(np.asarray(group_log1p_mean)), np.expm1(np.asarray(control_log1p_mean))
    with np.errstate(divide="ignore", invalid="ignore"):
        fc = np.where((t == 0) & (r == 0), 1.0, t / r)
    return np.log2(np.clip(np.nan_to_num(fc, nan=1.0, posinf=FC_CLIP), 1 / FC_CLIP, FC_CLIP))


def _strata(adata: AnnData, replicate_column: str | None) -> np.ndarray:
    if replicate_column and replicate_column in adata.obs:
        return adata.obs[replicate_column].astype(str).to_numpy()
    return np.full(adata.n_obs, "all")


def resampled_draws(
    cell_strata: np.ndarray, control_mask: np.ndarray, members: np.ndarray, n_resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """Control-cell draws matching a group ``members``: ``n_resamples × len(members)`` cell indices.

    Each draw takes, in every stratum (replicate), as many control cells as the group has there, without
    replacement (with replacement only where the stratum has fewer control cells than the group needs).
    """
    blocks = []
    for stratum in np.unique(cell_strata[members]):
        need = int(np.sum(cell_strata[members] == stratum))
        pool = np.flatnonzero(control_mask & (cell_strata == stratum))
        if pool.size == 0:
            pool = np.flatnonzero(control_mask)
        if pool.size <= need:
            blocks.append(pool[rng.integers(0, pool.size, size=(n_resamples, need))])
        else:
            keys = rng.random((n_resamples, pool.size))
            blocks.append(pool[np.argpartition(keys, need - 1, axis=1)[:, :need]])
    return np.concatenate(blocks, axis=1)


def resampled_null(values: np.ndarray, draws: np.ndarray, control_mask: np.ndarray) -> np.ndarray:
    """Null differences ``mean(draw) − mean(control cells not drawn)`` of ``values`` (cells × d): ``n_resamples × d``.

    Comparing a draw with the *rest* of the control cells gives the null the variance of a real group against the
    control mean (σ²(1/n + 1/N)); comparing it with the mean of all control cells, which contains the draw, would
    shrink the null (σ²(1/n − 1/N)) and make the p-values anti-conservative.
    """
    total = values[control_mask].sum(axis=0)
    n_control, n = int(control_mask.sum()), draws.shape[1]
    step = max(1, 2_000_000 // max(n * values.shape[1], 1))
    sums = np.concatenate([values[draws[i : i + step]].sum(axis=1) for i in range(0, len(draws), step)])
    return sums / n - (total - sums) / max(n_control - n, 1)


def empirical_p(observed: float, null: np.ndarray, lower: bool = True) -> float:
    """``(1 + #{null ≤ observed}) / (1 + len(null))`` (``lower``), or with ≥ for the upper tail."""
    extreme = np.sum(null <= observed) if lower else np.sum(null >= observed)
    return float((1 + extreme) / (1 + null.size))


@memoised("guides.mixscape_classes", MEMO_CODE)
def mixscape_classes(
    adata: AnnData,
    *,
    perturbation_column: str = "perturbation",
    control_label: str,
    replicate_column: str | None = "replicate",
    n_neighbors: int = 20,
    n_pcs: int = 20,
    min_de_genes: int = 5,
    seed: int = 0,
    targets=None,
) -> pd.DataFrame:
    """Pertpy's Mixscape (Papalexi et al. 2021) on a copy of ``adata``: which targeted cells escaped.

    Perturbation signatures against each cell's ``n_neighbors`` nearest control cells (PCA of log1p X, per
    replicate where there is one), then Mixscape's two-component mixture on the projection onto each target's
    DE genes. Returns per cell ``mixscape_class`` (``"<target> KO"``, ``"<target> NP"``, control label),
    ``mixscape_global`` (KO / NP / NT), ``p_ko`` and ``separable`` (the target had ≥ ``min_de_genes`` DE genes).
    ``targets``: fit only these targets (with the control cells), e.g. those with a detectable effect, where a
    mixture can separate anything; the other targets' cells get class ``not fitted`` and ``separable`` False.
    """
    full = adata
    if targets is not None:
        labels_all = adata.obs[perturbation_column].astype(str)
        adata = adata[(labels_all.isin([str(t) for t in targets]) | (labels_all == control_label)).to_numpy()]
    work = AnnData(
        X=adata.X.copy(),
        obs=adata.obs[[perturbation_column]].astype(str).copy(),
        var=pd.DataFrame(index=adata.var_names.copy()),
    )
    split_by = None
    if replicate_column and replicate_column in adata.obs:
        work.obs["split"] = adata.obs[replicate_column].astype(str).to_numpy()
        split_by = "split"
    fit_mixscape(
        work,
        perturbation_column,
        control_label,
        split_by=split_by,
        n_neighbors=n_neighbors,
        n_pcs=n_pcs,
        min_de_genes=min_de_genes,
        seed=seed,
    )
    out = pd.DataFrame(index=adata.obs_names)
    out["mixscape_class"] = work.obs["mixscape_class"].astype(str).to_numpy()
    out["mixscape_global"] = work.obs["mixscape_class_global"].astype(str).to_numpy()
    out["p_ko"] = work.obs["mixscape_class_p_ko"].astype(float).to_numpy()
    labels = work.obs[perturbation_column].astype(str)
    ko_any = out["mixscape_global"].eq("KO").groupby(labels.to_numpy()).any()
    out["separable"] = labels.map(ko_any).fillna(False).astype(bool).to_numpy() & (labels != control_label).to_numpy()
    if targets is not None:
        out = out.reindex(full.obs_names)
        out[["mixscape_class", "mixscape_global"]] = out[["mixscape_class", "mixscape_global"]].fillna("not fitted")
        out["separable"] = out["separable"].fillna(False).astype(bool)
    return out


def add_escape(
    table: pd.DataFrame, adata: AnnData, escape: pd.DataFrame | None, *, guide_column: str = "guide"
) -> pd.DataFrame:
    """``table`` with ``escape_fraction``: the NP share of each guide's cells where its target is separable."""
    out = table.copy()
    if escape is None:
        out["escape_fraction"] = np.nan
        return out
    guides = adata.obs[guide_column].astype(str).to_numpy()
    np_share = escape["mixscape_global"].eq("NP").groupby(guides).mean()
    separable = escape["separable"].groupby(guides).any()
    out["escape_fraction"] = [float(np_share.get(g)) if separable.get(g, False) else np.nan for g in out["guide"]]
    return out


@memoised("guides.guide_table", MEMO_CODE)
def guide_table(
    adata: AnnData,
    *,
    guide_column: str = "guide",
    perturbation_column: str = "perturbation",
    control_label: str | None = None,
    replicate_column: str | None = "replicate",
    escape: pd.DataFrame | None = None,
    n_resamples: int = 1000,
    n_pcs: int = 20,
    min_cells: int = 10,
    alpha: float = 0.05,
    weak_efficacy: float = 0.5,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per targeting gRNA: knockdown, calibrated p-values, efficacy, escape and a status call.

    Parameters
    ----------
    adata
        Low-MOI data in the project schema with a guide column (one gRNA per cell).
    escape
        Per-cell Mixscape output (:func:`mixscape_classes`); None: no escape fraction.
    n_resamples
        Control resamples per guide for the calibrated p-values (smallest p: 1 / (n_resamples + 1)).
    min_cells
        Guides with fewer cells are listed with status ``too few cells`` and no test.
    weak_efficacy
        A significant guide whose efficacy is below this is ``weak``.

    Returns
    -------
    pandas.DataFrame
        ``guide``, ``target``, ``n_cells``, ``target_measured``, ``target_log2fc``, ``p_calibrated`` (own-target
        knockdown, resampled), ``effect_norm`` (‖Δ‖ over genes), ``p_signature`` (any shift, resampled in PCA
        space), ``efficacy``, ``sibling_cosine`` (cosine of Δ with the other guides' pooled Δ),
        ``escape_fraction``, ``target_p_signature`` (the target's pooled cells), ``status``: ``effective``,
        ``weak``, ``failed`` (no detectable effect while the target has one: its pooled cells shift, or one of
        its guides knocks its mRNA down), ``target without effect`` (the guide cannot be judged) or ``too few cells``. ``attrs`` carry the settings.
    """
    from vcclib.analyses.null_effects import pca_embedding

    control_label = control_label or str(adata.uns["vcc"]["control_label"])
    check_guides(adata, guide_column, perturbation_column, control_label)
    rng = np.random.default_rng(seed)
    labels = adata.obs[perturbation_column].astype(str).to_numpy()
    guides = adata.obs[guide_column].astype(str).to_numpy()
    control = labels == control_label
    strata = _strata(adata, replicate_column)
    genes = list(map(str, adata.var_names))
    target_of = pd.Series(labels, index=guides).groupby(level=0).first()

    grouping = pd.Series(np.where(control, None, guides), index=adata.obs_names)
    names, means, ctrl_means = control_reference(adata, grouping, control, replicate_column)
    delta = means - ctrl_means
    t_names = pd.Index(sorted(set(labels[~control])))

    pcs = pca_embedding(adata.X, n_pcs, seed)
    pc_control = pcs[control].mean(axis=0)
    cells_of = pd.Series(np.arange(adata.n_obs)).groupby(guides).apply(np.asarray)
    target_cells = pd.Series(np.arange(adata.n_obs)).groupby(labels).apply(np.asarray)

    def signature_p(members, draws):
        obs = float(np.sum((pcs[members].mean(axis=0) - pc_control) ** 2))
        null = resampled_null(pcs, draws, control)
        return empirical_p(obs, np.sum(null**2, axis=1), lower=False)

    def draws_for(members):
        return resampled_draws(strata, control, members, n_resamples, rng)

    target_p = {t: signature_p(target_cells[t], draws_for(target_cells[t])) for t in t_names}
    n_cells_of = pd.Series(guides[~control]).value_counts()
    columns: dict[str, np.ndarray] = {}
    rows = []
    for i, guide in enumerate(names):
        target = str(target_of[guide])
        members = cells_of[guide]
        n = int(members.size)
        measured = target in genes
        row = {
            "guide": guide,
            "target": target,
            "n_cells": n,
            "target_measured": measured,
            "target_log2fc": np.nan,
            "p_calibrated": np.nan,
            "effect_norm": float(np.linalg.norm(delta[i])),
            "p_signature": np.nan,
            "efficacy": np.nan,
            "sibling_cosine": np.nan,
            "target_p_signature": target_p.get(target, np.nan),
        }
        if measured:
            j = genes.index(target)
            row["target_log2fc"] = float(log2_fold_change(means[i, j], ctrl_means[i, j]))
        if n >= min_cells:
            draws = draws_for(members)
            if measured:
                if target not in columns:
                    columns[target] = _dense(adata.X[:, j]).reshape(-1, 1)
                column = columns[target]
                null = resampled_null(column, draws, control)[:, 0]
                observed = float(column[members].mean() - column[control].mean())
                row["p_calibrated"] = empirical_p(observed, null, lower=True)
            row["p_signature"] = signature_p(members, draws)
        siblings = [g for g in names if g != guide and str(target_of[g]) == target and n_cells_of.get(g, 0) > 0]
        if siblings:
            weights = np.array([n_cells_of[g] for g in siblings], dtype=float)
            rest = np.average(delta[[names.get_loc(g) for g in siblings]], axis=0, weights=weights)
            norm2 = float(rest @ rest)
            if norm2 > 0:
                row["efficacy"] = float(delta[i] @ rest / norm2)
                row["sibling_cosine"] = float(delta[i] @ rest / np.sqrt(norm2 * max(delta[i] @ delta[i], 1e-300)))
        rows.append(row)
    table = add_escape(pd.DataFrame(rows), adata, escape, guide_column=guide_column)
    table["status"] = _status(table, min_cells, alpha, weak_efficacy)
    table = table.sort_values(["target", "guide"]).reset_index(drop=True)
    table.attrs.update(
        n_resamples=n_resamples,
        n_pcs=int(pcs.shape[1]),
        min_cells=min_cells,
        alpha=alpha,
        weak_efficacy=weak_efficacy,
        seed=seed,
        control_label=control_label,
        n_control_cells=int(control.sum()),
        stratified_by=replicate_column if replicate_column and replicate_column in adata.obs else None,
    )
    return table


def _status(table: pd.DataFrame, min_cells: int, alpha: float, weak_efficacy: float) -> np.ndarray:
    knock = table["p_calibrated"] < alpha
    shift = table["p_signature"] < alpha
    detected = knock | shift
    # a target has an effect when its pooled cells shift, or any of its guides knocks its mRNA down
    target_effect = (table["target_p_signature"] < alpha) | knock.groupby(table["target"]).transform("any")
    return np.select(
        [table["n_cells"] < min_cells, ~target_effect, ~detected, table["efficacy"].fillna(1.0) < weak_efficacy],
        ["too few cells", "target without effect", "failed", "weak"],
        "effective",
    )


def guide_effects(
    adata: AnnData,
    *,
    guide_column: str = "guide",
    perturbation_column: str = "perturbation",
    control_label: str | None = None,
    replicate_column: str | None = "replicate",
) -> pd.DataFrame:
    """Δ (mean log1p − control mean log1p) per targeting guide: guides × genes."""
    control_label = control_label or str(adata.uns["vcc"]["control_label"])
    labels = adata.obs[perturbation_column].astype(str).to_numpy()
    control = labels == control_label
    grouping = pd.Series(np.where(control, None, adata.obs[guide_column].astype(str).to_numpy()), index=adata.obs_names)
    names, means, ctrl = control_reference(adata, grouping, control, replicate_column)
    return pd.DataFrame(means - ctrl, index=names, columns=list(map(str, adata.var_names)))


def split_half_reliability(
    adata: AnnData,
    *,
    guide_column: str = "guide",
    perturbation_column: str = "perturbation",
    control_label: str | None = None,
    min_cells: int = 20,
    seed: int = 0,
) -> pd.Series:
    """Per guide, the Pearson r between the Δ of two random halves of its cells: the ceiling for agreement."""
    control_label = control_label or str(adata.uns["vcc"]["control_label"])
    rng = np.random.default_rng(seed)
    labels = adata.obs[perturbation_column].astype(str).to_numpy()
    guides = adata.obs[guide_column].astype(str).to_numpy()
    control = labels == control_label
    ctrl_mean = group_means(adata.X, np.where(control, 0, -1), 1)[0]
    out = {}
    for guide in sorted(set(guides[~control])):
        members = np.flatnonzero(guides == guide)
        if members.size < min_cells:
            continue
        members = rng.permutation(members)
        half = members.size // 2
        a = _dense(adata.X[members[:half]]).mean(axis=0) - ctrl_mean
        b = _dense(adata.X[members[half:]]).mean(axis=0) - ctrl_mean
        out[guide] = float(np.corrcoef(a, b)[0, 1])
    return pd.Series(out, name="split_half_r")


def agreement_pairs(effects: pd.DataFrame, targets: pd.Series) -> pd.DataFrame:
    """Pearson r of Δ profiles for every pair of guides, labelled ``within`` (same target) or ``between``."""
    corr = np.corrcoef(effects.to_numpy())
    names = list(effects.index)
    rows = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            same = targets[names[i]] == targets[names[j]]
            rows.append(
                {
                    "guide_a": names[i],
                    "guide_b": names[j],
                    "target_a": targets[names[i]],
                    "target_b": targets[names[j]],
                    "pair": "within" if same else "between",
                    "pearson_r": float(corr[i, j]),
                }
            )
    return pd.DataFrame(rows)


def variance_partition(
    effects: pd.DataFrame, targets: pd.Series, n_cells: pd.Series, cell_variance: pd.DataFrame
) -> dict:
    """How much of the guide-to-guide variation in Δ lies within targets, and how much sampling noise explains.

    ``total`` = Σ_g ‖Δ_g − Δ̄‖², ``within`` = Σ_g ‖Δ_g − Δ̄_target(g)‖² (cell-weighted target means), and
    ``noise_within`` = Σ_g (1 − n_g / N_t) Σ_genes s²_t / n_g, the within-target sum expected from sampling alone
    (``s²_t`` the per-gene variance of log1p across the target's cells, ``N_t`` its cells). Returns these, their
    shares, and ``excess_within_share`` = (within − noise_within) / total: the guide-to-guide variation that is
    not sampling noise.
    """
    grand = effects.mean(axis=0)
    total = float(((effects - grand) ** 2).to_numpy().sum())
    within = noise = 0.0
    for target, guides in targets.groupby(targets):
        rows = effects.loc[guides.index]
        n = n_cells.loc[guides.index].to_numpy(dtype=float)
        centre = np.average(rows.to_numpy(), axis=0, weights=n)
        within += float(((rows.to_numpy() - centre) ** 2).sum())
        s2 = float(cell_variance.loc[target].sum())
        noise += float(np.sum((1 - n / n.sum()) * s2 / n))
    return {
        "total_ss": total,
        "within_ss": within,
        "noise_within_ss": noise,
        "within_share": within / total if total > 0 else np.nan,
        "excess_within_share": max(within - noise, 0.0) / total if total > 0 else np.nan,
        "n_guides": int(len(effects)),
        "n_targets": int(targets.nunique()),
    }


def target_cell_variance(adata: AnnData, *, perturbation_column: str = "perturbation") -> pd.DataFrame:
    """Per target, the per-gene variance of log1p across its cells (targets × genes)."""
    labels = adata.obs[perturbation_column].astype(str)
    codes, names = pd.factorize(labels, sort=True)
    mean = group_means(adata.X, codes, len(names))
    X2 = adata.X.multiply(adata.X) if sp.issparse(adata.X) else np.asarray(adata.X) ** 2
    mean2 = group_means(sp.csr_matrix(X2), codes, len(names))
    return pd.DataFrame(np.maximum(mean2 - mean**2, 0), index=names, columns=list(map(str, adata.var_names)))


def replicate_agreement(
    adata: AnnData,
    *,
    perturbation_column: str = "perturbation",
    control_label: str | None = None,
    replicate_column: str = "replicate",
    min_cells: int = 10,
    weights: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per target, the mean pairwise Pearson r of its Δ between biological replicates (each vs its own control).

    ``weights`` (per cell, optional; control cells should have 1) weight the cells in each mean; a replicate
    counts the cells of positive weight.

    Returns columns ``target``, ``n_pairs``, ``replicate_r`` (NaN where fewer than two replicates have
    ``min_cells`` cells).
    """
    control_label = control_label or str(adata.uns["vcc"]["control_label"])
    if replicate_column not in adata.obs:
        raise GuideDataError(f"obs has no replicate column {replicate_column!r}")
    labels = adata.obs[perturbation_column].astype(str).to_numpy()
    reps = adata.obs[replicate_column].astype(str).to_numpy()
    keys = pd.Series([f"{t}\x1f{r}" for t, r in zip(labels, reps)])
    codes, names = pd.factorize(keys, sort=True)
    means = group_means(adata.X, codes, len(names), weights)
    positive = np.ones(len(codes), dtype=bool) if weights is None else np.asarray(weights) > 0
    counts = np.bincount(codes[positive], minlength=len(names))
    lookup = {name: (means[k], counts[k]) for k, name in enumerate(names)}
    replicates = sorted(set(reps))
    rows = []
    for target in sorted(set(labels) - {control_label}):
        deltas = []
        for r in replicates:
            key, ctrl = f"{target}\x1f{r}", f"{control_label}\x1f{r}"
            if key in lookup and ctrl in lookup and lookup[key][1] >= min_cells:
                deltas.append(lookup[key][0] - lookup[ctrl][0])
        rs = [
            float(np.corrcoef(deltas[i], deltas[j])[0, 1])
            for i in range(len(deltas))
            for j in range(i + 1, len(deltas))
        ]
        rows.append({"target": target, "n_pairs": len(rs), "replicate_r": float(np.mean(rs)) if rs else np.nan})
    return pd.DataFrame(rows)


@memoised("guides.null_calibration", MEMO_CODE)
def null_calibration(
    adata: AnnData,
    *,
    perturbation_column: str = "perturbation",
    control_label: str | None = None,
    replicate_column: str | None = "replicate",
    n_groups: int = 20,
    group_size: int = 50,
    n_resamples: int = 500,
    n_pcs: int = 20,
    seed: int = 0,
) -> pd.DataFrame:
    """The calibrated p-values of groups of control cells relabelled as guides (no effect by construction).

    ``n_groups`` disjoint random groups of ``group_size`` control cells become guides of one fake target; the
    remaining control cells stay controls; :func:`guide_table` is run unchanged. Returns its ``guide``,
    ``n_cells``, ``p_calibrated`` (the target's own mRNA: the fake target is the most variable measured gene) and
    ``p_signature``; both should be uniform.
    """
    control_label = control_label or str(adata.uns["vcc"]["control_label"])
    rng = np.random.default_rng(seed)
    control = np.flatnonzero(adata.obs[perturbation_column].astype(str).to_numpy() == control_label)
    size = min(group_size, len(control) // (2 * n_groups))
    if size < 5:
        raise GuideDataError(f"too few control cells ({len(control)}) for {n_groups} null groups")
    fake = rng.choice(control, size=n_groups * size, replace=False)
    sub = adata[control].copy()
    position = {c: i for i, c in enumerate(control)}
    rows = np.array([position[c] for c in fake])
    variance = (
        np.asarray(sub.X.power(2).mean(axis=0) - np.square(sub.X.mean(axis=0))).ravel()
        if sp.issparse(sub.X)
        else np.var(np.asarray(sub.X), axis=0)
    )
    target = str(sub.var_names[int(np.argmax(variance))])
    labels = np.full(sub.n_obs, control_label, dtype=object)
    guides = np.full(sub.n_obs, "control", dtype=object)
    labels[rows] = target
    guides[rows] = [f"null{i // size}" for i in range(len(rows))]
    sub.obs = pd.DataFrame(
        {
            perturbation_column: labels,
            "guide": guides,
            **(
                {replicate_column: sub.obs[replicate_column].to_numpy()}
                if replicate_column and replicate_column in sub.obs
                else {}
            ),
        },
        index=sub.obs_names,
    )
    table = guide_table(
        sub,
        perturbation_column=perturbation_column,
        control_label=control_label,
        replicate_column=replicate_column,
        n_resamples=n_resamples,
        n_pcs=n_pcs,
        seed=seed,
    )
    return table[["guide", "target", "n_cells", "p_calibrated", "p_signature"]]
