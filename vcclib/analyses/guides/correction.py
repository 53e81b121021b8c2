"""Correcting a Perturb-seq screen for its guides, and what that changes.

The correction (:func:`correct`) drops, among targeted cells only (control cells are never touched):

* the cells of **failed** guides (no detectable effect while their target has one; :func:`~.lowmoi.guide_table`)
  and, with ``drop_weak``, of **weak** guides, as long as the target keeps at least one guide;
* the cells Mixscape calls **non-perturbed** (escapers) in targets it can separate. Targets it cannot separate
  keep all their cells: there, escape and a null effect cannot be told apart.

The alternative, :func:`guide_weights` + :func:`weighted_consequences`, keeps every cell and **down-weights**
instead: a targeted cell's weight is its guide's efficacy clipped to [0, 1] (a failed guide ≈ 0, a guide as strong
as its siblings 1; NaN efficacy, e.g. a target with one guide: 1), times Mixscape's posterior probability that the
cell is perturbed (``p_ko``) in the targets Mixscape can separate. Effects become weighted means; the benchmark and
the null calls, which take cells rather than weights, are only run on the dropped version.

Consequences are measured on the same quantities before and after (:func:`consequences`): effect sizes (‖Δ‖
and the target's own log2 fold change), null-effect calls (:func:`vcclib.analyses.null_effects.perturbation_effects`),
replicate agreement, and the benchmark's placements of every baseline (:func:`benchmark_before_after`: the same
split, made on the uncorrected data and checked to be identical on the corrected data, the same seed and
metrics).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from anndata import AnnData

from vcclib.analyses.guides.lowmoi import control_reference, log2_fold_change, replicate_agreement
from vcclib.memo import memoised

#: the code the stored tables of this module depend on (see vcclib.memo)
MEMO_CODE = (
    "vcclib.analyses.guides.correction",
    "vcclib.analyses.guides.lowmoi",
    "vcclib.analyses.null_effects",
    "vcclib.models",
    "vcclib.metrics",
    "vcclib.splits",
)


def correct(
    adata: AnnData,
    guides: pd.DataFrame,
    escape: pd.DataFrame | None,
    *,
    guide_column: str = "guide",
    drop_weak: bool = False,
    drop_escapers: bool = True,
) -> tuple[AnnData, pd.DataFrame]:
    """The corrected data and a per-target log of what was dropped.

    Returns
    -------
    (AnnData, DataFrame)
        The kept cells (a copy), and per target ``n_before``, ``n_after``, ``guides_dropped`` (';'-joined),
        ``escapers_dropped``.
    """
    control = adata.obs["is_control"].astype(bool).to_numpy()
    guide_of = adata.obs[guide_column].astype(str).to_numpy()
    labels = adata.obs["perturbation"].astype(str).to_numpy()
    bad_status = {"failed", "weak"} if drop_weak else {"failed"}
    drop_guides = set()
    for _, rows in guides.groupby("target"):
        bad = set(rows.loc[rows["status"].isin(bad_status), "guide"])
        if bad and len(bad) < len(rows):
            drop_guides |= bad
    keep = control | ~np.isin(guide_of, list(drop_guides))
    escaped = np.zeros(adata.n_obs, dtype=bool)
    if drop_escapers and escape is not None:
        escaped = escape["separable"].to_numpy() & (escape["mixscape_global"].to_numpy() == "NP") & ~control
        # keep a target's cells if Mixscape would drop every one of them
        for target in set(labels[escaped]):
            members = (labels == target) & keep
            if members.sum() and (escaped & members).sum() == members.sum():
                escaped[members] = False
    kept = keep & ~escaped
    log = []
    for target in sorted(set(labels[~control])):
        members = labels == target
        log.append(
            {
                "target": target,
                "n_before": int(members.sum()),
                "n_after": int((members & kept).sum()),
                "guides_dropped": ";".join(sorted(g for g in drop_guides if g in set(guide_of[members]))),
                "escapers_dropped": int((members & keep & escaped).sum()),
            }
        )
    return adata[kept].copy(), pd.DataFrame(log)


def guide_weights(
    adata: AnnData, guides: pd.DataFrame, escape: pd.DataFrame | None, *, guide_column: str = "guide"
) -> np.ndarray:
    """Per cell weight for the down-weighting correction: clip(guide efficacy, 0, 1) × P(perturbed); controls 1.

    A target whose every guide would get weight 0 keeps weight 1 on its cells (as :func:`correct` keeps a target
    whose every guide failed).
    """
    control = adata.obs["is_control"].astype(bool).to_numpy()
    guide_of = adata.obs[guide_column].astype(str).to_numpy()
    efficacy = guides.set_index("guide")["efficacy"].clip(0, 1).fillna(1.0)
    w = pd.Series(guide_of).map(efficacy).fillna(1.0).to_numpy(dtype=float)
    if escape is not None:
        p_ko = np.nan_to_num(escape["p_ko"].to_numpy(dtype=float), nan=1.0)
        w = np.where(escape["separable"].to_numpy(dtype=bool), w * p_ko, w)
    w[control] = 1.0
    labels = adata.obs["perturbation"].astype(str).to_numpy()
    for target in set(labels[~control]):
        members = labels == target
        if w[members].sum() <= 0:
            w[members] = 1.0
    return w


def target_effects(
    adata: AnnData,
    *,
    control_label: str | None = None,
    replicate_column: str | None = "replicate",
    weights: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per target: ``n_cells``, ``effect_norm`` (‖Δ‖ over genes) and ``target_log2fc`` (NaN if unmeasured).

    With ``weights`` (per cell), the means are weighted and ``n_cells`` is the effective number of cells
    ``(Σw)² / Σw²``.
    """
    control_label = control_label or str(adata.uns["vcc"]["control_label"])
    labels = adata.obs["perturbation"].astype(str).to_numpy()
    control = labels == control_label
    grouping = pd.Series(np.where(control, None, labels), index=adata.obs_names)
    names, means, ctrl = control_reference(adata, grouping, control, replicate_column, weights)
    genes = list(map(str, adata.var_names))
    if weights is None:
        counts = pd.Series(labels[~control]).value_counts()
    else:
        w = pd.Series(np.asarray(weights, dtype=float)[~control])
        by = w.groupby(labels[~control])
        counts = (by.sum() ** 2 / by.apply(lambda v: float((v**2).sum()))).round().astype(int)
    rows = []
    for i, target in enumerate(names):
        lfc = (
            float(log2_fold_change(means[i, genes.index(target)], ctrl[i, genes.index(target)]))
            if target in genes
            else np.nan
        )
        rows.append(
            {
                "target": target,
                "n_cells": int(counts[target]),
                "effect_norm": float(np.linalg.norm(means[i] - ctrl[i])),
                "target_log2fc": lfc,
            }
        )
    return pd.DataFrame(rows)


@memoised("guides.consequences", MEMO_CODE)
def consequences(
    before: AnnData, after: AnnData, *, effect_settings: dict | None = None, seed: int = 0, dataset: str = ""
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Effect sizes, null calls and replicate agreement before and after the correction.

    Returns
    -------
    (per_target, summary)
        ``per_target``: one row per target with ``*_before``/``*_after`` columns (``n_cells``, ``effect_norm``,
        ``target_log2fc``, ``call``, ``replicate_r``); ``summary``: rows ``quantity``, ``before``, ``after``,
        ``dataset`` (the ``correction_effect`` table's Perturb-seq part).
    """
    from vcclib.analyses.null_effects import NULL_CALL, perturbation_effects

    settings = {"n_pcs": 20, "n_permutations": 500, "max_control_cells": 1000, **(effect_settings or {})}
    parts = {}
    for name, data in (("before", before), ("after", after)):
        table = target_effects(data).set_index("target")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            calls = perturbation_effects(data, seed=seed, **settings)
        table["call"] = calls["call"].reindex(table.index)
        table["n_de_genes"] = calls["n_de_genes"].reindex(table.index)
        if "replicate" in data.obs:
            table["replicate_r"] = replicate_agreement(data).set_index("target")["replicate_r"].reindex(table.index)
        parts[name] = table
    per_target = parts["before"].join(parts["after"], lsuffix="_before", rsuffix="_after", how="outer")
    rows = [
        ("cells (targeted)", parts["before"]["n_cells"].sum(), parts["after"]["n_cells"].sum()),
        ("median effect norm ‖Δ‖", parts["before"]["effect_norm"].median(), parts["after"]["effect_norm"].median()),
        (
            "median own-target log2FC (measured targets)",
            parts["before"]["target_log2fc"].median(),
            parts["after"]["target_log2fc"].median(),
        ),
        (
            "null-effect calls",
            int((parts["before"]["call"] == NULL_CALL).sum()),
            int((parts["after"]["call"] == NULL_CALL).sum()),
        ),
        ("median DE genes per target", parts["before"]["n_de_genes"].median(), parts["after"]["n_de_genes"].median()),
    ]
    if "replicate_r" in parts["before"]:
        rows.append(
            (
                "median replicate agreement (Pearson r of Δ)",
                parts["before"]["replicate_r"].median(),
                parts["after"]["replicate_r"].median(),
            )
        )
    summary = pd.DataFrame(rows, columns=["quantity", "before", "after"]).assign(dataset=dataset, correction="drop")
    return per_target.reset_index(), summary


def weighted_consequences(
    adata: AnnData, weights: np.ndarray, *, dataset: str = ""
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Effect sizes and replicate agreement with every cell kept but down-weighted (:func:`guide_weights`).

    Returns ``(per_target, summary)`` like :func:`consequences` (``summary`` adds ``correction`` =
    ``down-weight``); null calls are not recomputed (the test takes cells, not weights).
    """
    parts = {}
    for name, w in (("before", None), ("after", weights)):
        table = target_effects(adata, weights=w).set_index("target")
        if "replicate" in adata.obs:
            table["replicate_r"] = (
                replicate_agreement(adata, weights=w).set_index("target")["replicate_r"].reindex(table.index)
            )
        parts[name] = table
    per_target = parts["before"].join(parts["after"], lsuffix="_before", rsuffix="_after", how="outer")
    rows = [
        (
            "cells (targeted; effective number after down-weighting)",
            parts["before"]["n_cells"].sum(),
            parts["after"]["n_cells"].sum(),
        ),
        ("median effect norm ‖Δ‖", parts["before"]["effect_norm"].median(), parts["after"]["effect_norm"].median()),
        (
            "median own-target log2FC (measured targets)",
            parts["before"]["target_log2fc"].median(),
            parts["after"]["target_log2fc"].median(),
        ),
    ]
    if "replicate_r" in parts["before"]:
        rows.append(
            (
                "median replicate agreement (Pearson r of Δ)",
                parts["before"]["replicate_r"].median(),
                parts["after"]["replicate_r"].median(),
            )
        )
    summary = pd.DataFrame(rows, columns=["quantity", "before", "after"]).assign(
        dataset=dataset, correction="down-weight"
    )
    return per_target.reset_index(), summary


@memoised("guides.benchmark_before_after", MEMO_CODE)
def benchmark_before_after(
    before: AnnData,
    after: AnnData,
    *,
    dataset: str,
    baselines=None,
    seed: int = 0,
    profile: str = "full",
    max_cells_per_perturbation: int = 100,
    test_fraction: float = 0.3,
) -> dict:
    """Every baseline scored on the uncorrected and the corrected data: same split, seed and metrics.

    The split (``unseen_perturbation``, ``test_fraction``) is made on the uncorrected data; the corrected data
    must give the identical assignment of perturbations to parts (checked). Both are subsampled to at most
    ``max_cells_per_perturbation`` cells per perturbation with the same seed.

    Returns
    -------
    dict
        ``scores`` (long table with a ``data`` column ``before``/``after``), ``placement`` (baseline × metric with
        ``before``, ``after``, ``change``), ``summary`` (per baseline: median placement over metrics before and
        after, rank before and after) and ``split`` (the test perturbations).
    """
    from vcclib.models.benchmark import placement, run_task
    from vcclib.models.runner import subsample
    from vcclib.models.tasks import Task
    from vcclib.splits import covariate_column, make_split

    task = Task(
        dataset,
        "unseen_perturbation",
        split_params={"test_fraction": test_fraction},
        label=f"{dataset.split('_')[0]}:unseen_perturbation",
    )
    split_before = make_split(task.split, before, seed=seed, **task.split_params)
    split_after = make_split(task.split, after, seed=seed, **task.split_params)
    parts = ["covariate", "perturbation", "part"]
    if not split_before.assignment[parts].equals(split_after.assignment[parts]):
        raise ValueError("the correction changed the split (a perturbation lost all its cells)")
    frames, placed = [], []
    for name, data in (("before", before), ("after", after)):
        data = subsample(data, max_cells_per_perturbation, seed=seed, column=covariate_column(data))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            long = run_task(task, baselines=baselines, seed=seed, profile=profile, adata=data)
        frames.append(long.assign(data=name))
        placed.append(placement(long).assign(data=name))
    scores = pd.concat(frames, ignore_index=True)
    placed = pd.concat(placed, ignore_index=True)
    wide = placed.pivot_table(index=["baseline", "side", "metric"], columns="data", values="placement").reset_index()
    wide["change"] = wide["after"] - wide["before"]
    summary = (
        wide.groupby(["baseline", "side"])
        .agg(before=("before", "median"), after=("after", "median"), n_metrics=("before", "count"))
        .reset_index()
    )
    summary["rank_before"] = summary["before"].rank(ascending=False, method="min")
    summary["rank_after"] = summary["after"].rank(ascending=False, method="min")
    test = split_before.test_groups()["perturbation"].tolist()
    return {"scores": scores, "placement": wide, "summary": summary, "split": test}
