"""The logic behind the "Metrics and baselines" chapter.

Run every baseline on every task (dataset × split, declared in ``tasks.yaml``) of the embedded Perturb-seq
data, score them, and place each score between the MIN and MAX references.

Conventions (stated once, used throughout)
------------------------------------------
* gene space: every measured gene of the dataset (Papalexi 299, Norman/McFaline 500 HVGs, Kang 6,998);
* pseudobulk: mean of log1p-normalised expression over cells;
* control: the real control cells of the held-out covariate, the same cells in prediction and reference;
* reference ("real"): half ``B`` of each held-out group (random halves, seeded); half ``A`` is what the MAX
  references get. MIN baselines never see ``A`` or ``B``;
* placement of a baseline on a metric: ``(u − b) / (r − b)`` with ``u`` its mean score over held-out
  perturbations, ``b`` the MIN anchor's (default ``perturbed_mean``) and ``r`` the MAX anchor's (default
  ``technical_duplicate``): 0 = as good as the mean baseline, 1 = as good as a technical duplicate.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from vcclib.models.base import group_means
from vcclib.models.runner import available, fit_predict, subsample
from vcclib.models.spec import MODELS, get_model
from vcclib.models.tasks import Task, default_tasks
from vcclib.registry import ModelKind
from vcclib.splits import covariate_column, make_split

__all__ = [
    "MAX_ANCHOR",
    "MIN_ANCHOR",
    "Task",
    "default_tasks",
    "evaluate_by_covariate",
    "headline",
    "load_task_data",
    "mean_scores",
    "placement",
    "placement_matrix",
    "run_task",
    "scored_metrics",
    "separation",
    "systematic_variation",
]

MIN_ANCHOR = "perturbed_mean"
MAX_ANCHOR = "technical_duplicate"


def load_task_data(task: Task, max_cells_per_perturbation: int = 0, seed: int = 0) -> AnnData:
    """The task's AnnData, subsampled to at most ``max_cells_per_perturbation`` cells per group (0: all)."""
    from vcclib.data import load

    adata = load(task.dataset, **task.options)
    return subsample(adata, max_cells_per_perturbation, seed=seed, column=covariate_column(adata))


def covariate_parts(prediction: AnnData, real: AnnData, column: str | None):
    """Yield ``(value, prediction part, real part)`` per covariate value of the prediction (``"all"`` without one)."""
    if column is None:
        yield "all", prediction, real
        return
    for value in sorted(prediction.obs[column].astype(str).unique()):
        yield (
            value,
            prediction[(prediction.obs[column].astype(str) == value).to_numpy()],
            real[(real.obs[column].astype(str) == value).to_numpy()],
        )


def evaluate_by_covariate(
    prediction: AnnData, real: AnnData, column: str | None, *, profile: str = "full", control: str, metrics=None
) -> pd.DataFrame:
    """:func:`vcclib.metrics.evaluate` per covariate value (each with its own control cells), stacked.

    Returns one row per (covariate, perturbation) with a column per metric. A covariate with fewer perturbations
    than a metric's ``min_perturbations`` (3 for metrics that compare a perturbation with the others) is scored
    without that metric (it stays NaN there).
    """
    from vcclib.metrics import METRICS, evaluate
    from vcclib.metrics.profiles import resolve

    frames = []
    for value, pred, ref in covariate_parts(prediction, real, column):
        names = list(resolve(profile, metrics))
        n_perts = ref.obs.loc[ref.obs["perturbation"].astype(str) != control, "perturbation"].nunique()
        names = [n for n in names if METRICS.get(n).min_perturbations <= n_perts]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = evaluate(pred, ref, perturbation_column="perturbation", control_label=control, metrics=names)
        table = result.results.copy()
        table.insert(0, "covariate", value)
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def score_model(
    task: Task, adata: AnnData, split, name: str, model, *, control: str, seed: int, profile: str, metrics=None
) -> tuple[pd.DataFrame, float] | None:
    """Fit, predict and score one model on one task's split, in the benchmark's long format.

    Returns
    -------
    tuple or None
        The long table (``baseline``, ``side``, ``covariate``, ``perturbation``, ``metric``, ``value``,
        ``fallback``, ``seconds``) and the fit + predict seconds; None (with a warning) when the model cannot do
        the task.
    """
    start = time.perf_counter()
    try:
        prediction, real = fit_predict(name, adata, split, score_on="half", halves=task.halves, seed=seed, model=model)
        fitted = time.perf_counter() - start
        scores = evaluate_by_covariate(
            prediction, real, split.covariate_column, profile=profile, control=control, metrics=metrics
        )
    except ValueError as error:
        warnings.warn(f"{task.label}: {name} skipped ({error})", stacklevel=3)
        return None
    seconds = time.perf_counter() - start
    obs = prediction.obs[~prediction.obs["is_control"].to_numpy()]
    column = split.covariate_column
    keys = obs[column].astype(str) if column else pd.Series("all", index=obs.index)
    fallback = obs.groupby([keys.to_numpy(), obs["perturbation"].astype(str).to_numpy()])["vcc_fallback"].mean()
    long = scores.melt(id_vars=["covariate", "perturbation"], var_name="metric", value_name="value")
    long["fallback"] = [fallback.get((c, p), np.nan) for c, p in zip(long["covariate"], long["perturbation"])]
    long.insert(0, "baseline", name)
    long.insert(1, "side", model.side.value)
    long["seconds"] = seconds
    return long, fitted


def run_task(
    task: Task,
    *,
    baselines=None,
    seed: int = 0,
    profile: str = "full",
    max_cells_per_perturbation: int = 0,
    metrics=None,
    adata: AnnData | None = None,
) -> pd.DataFrame:
    """Fit and score every baseline (``baselines``, else the task's models, else all available) on one task.

    Returns
    -------
    DataFrame
        Columns ``task``, ``dataset``, ``split``, ``halves``, ``baseline``, ``side``, ``covariate``,
        ``perturbation``, ``fallback`` (share of the group's cells filled by the fallback), ``metric``, ``value``,
        plus ``seconds`` (fit + predict + score).
    """
    adata = load_task_data(task, max_cells_per_perturbation, seed) if adata is None else adata
    split = make_split(task.split, adata, seed=seed, **task.split_params)
    chosen = (
        task.models
        if baselines is None
        else (list(baselines) if task.models is None else [n for n in baselines if n in task.models])
    )
    names = available(chosen, halves=task.halves)
    control = str(adata.uns["vcc"]["control_label"])
    frames = []
    for name in names:
        scored = score_model(
            task, adata, split, name, get_model(name), control=control, seed=seed, profile=profile, metrics=metrics
        )
        if scored is not None:
            frames.append(scored[0])
    table = pd.concat(frames, ignore_index=True)
    table.insert(0, "task", task.label)
    table.insert(1, "dataset", task.dataset)
    table.insert(2, "split", task.split)
    table.insert(3, "halves", task.halves)
    table["value"] = pd.to_numeric(table["value"], errors="coerce")
    return table


def mean_scores(long: pd.DataFrame) -> pd.DataFrame:
    """Mean over held-out perturbations: rows (task, baseline, side), one column per metric."""
    return (
        long.groupby(["task", "baseline", "side", "metric"], sort=False)["value"].mean().unstack("metric").reset_index()
    )


def _higher_is_better(metric: str) -> bool:
    from vcclib.metrics import METRICS

    return bool(METRICS.get(metric).higher_is_better)


def scored_metrics(names) -> list[str]:
    """The metrics among ``names`` that have a best value (descriptive ones such as DE-gene counts dropped)."""
    from vcclib.metrics import METRICS

    return [n for n in names if n in METRICS and METRICS.get(n).scored]


def _max_anchor_of(long: pd.DataFrame) -> pd.Series:
    """Per task, the MAX reference it holds (technical duplicate, else the biological replicate)."""
    present = long.groupby("task")["baseline"].agg(set)
    return present.map(
        lambda names: MAX_ANCHOR if MAX_ANCHOR in names else ("replicate" if "replicate" in names else MAX_ANCHOR)
    )


def placement(long: pd.DataFrame, min_anchor: str = MIN_ANCHOR, max_anchor: str | None = None) -> pd.DataFrame:
    """Where each metric places each baseline between the MIN anchor (0) and the MAX anchor (1).

    ``(u − b) / (r − b)`` on mean scores per task; NaN where an anchor is missing or the MAX anchor does not
    score better than the MIN anchor (``anchors_ordered`` False: the metric cannot place anything between them). ``max_anchor`` None: the task's technical duplicate, or its biological
    replicate where the task halves by replicate. Descriptive metrics (no best value) are dropped. Columns:
    ``task``, ``baseline``, ``side``, ``metric``, ``score``, ``min``, ``max``, ``max_anchor``, ``placement``.
    """
    long = long[long["metric"].isin(scored_metrics(long["metric"].unique()))]
    anchor = _max_anchor_of(long) if max_anchor is None else pd.Series(max_anchor, index=long["task"].unique())
    means = long.groupby(["task", "baseline", "side", "metric"], sort=False)["value"].mean().reset_index(name="score")
    means["max_anchor"] = means["task"].map(anchor)
    lows = means[means["baseline"] == min_anchor].set_index(["task", "metric"])["score"].rename("min")
    highs = means[means["baseline"] == means["max_anchor"]].set_index(["task", "metric"])["score"].rename("max")
    merged = means.join(lows, on=["task", "metric"]).join(highs, on=["task", "metric"])
    span = merged["max"] - merged["min"]
    sign = merged["metric"].map(lambda m: 1.0 if _higher_is_better(m) else -1.0)
    merged["anchors_ordered"] = sign * span > 1e-12
    merged["placement"] = np.where(
        merged["anchors_ordered"], (merged["score"] - merged["min"]) / span.where(span != 0), np.nan
    )
    return merged


def separation(long: pd.DataFrame, min_anchor: str = MIN_ANCHOR, max_anchor: str = MAX_ANCHOR) -> pd.DataFrame:
    """Whether each metric separates the technical duplicate (MAX) from the mean baseline (MIN).

    Per metric, over every held-out perturbation of every task (paired): ``win_rate`` = share of perturbations
    where the MAX anchor scores better than the MIN anchor (ties count ½), ``mean_gap`` = mean of the oriented
    difference (positive: MAX better), ``n``; descriptive metrics are dropped; ``separates`` = win_rate ≥ 0.8 and mean_gap > 0; ``rewards_mean``
    = win_rate ≤ 0.5 (the metric prefers, or cannot tell from, the collapsed mean prediction).
    """
    keys = ["task", "covariate", "perturbation", "metric"]
    long = long[long["metric"].isin(scored_metrics(long["metric"].unique()))]
    pair = (
        long[long["baseline"].isin([min_anchor, max_anchor])]
        .pivot_table(index=keys, columns="baseline", values="value")
        .dropna()
    )
    if pair.empty or min_anchor not in pair or max_anchor not in pair:
        return pd.DataFrame(columns=["metric", "n", "win_rate", "mean_gap", "separates", "rewards_mean"])
    pair = pair.reset_index()
    sign = pair["metric"].map(lambda m: 1.0 if _higher_is_better(m) else -1.0)
    gap = sign * (pair[max_anchor] - pair[min_anchor])
    pair["win"] = np.where(gap > 1e-12, 1.0, np.where(gap < -1e-12, 0.0, 0.5))
    pair["gap"] = gap
    table = (
        pair.groupby("metric")
        .agg(n=("win", "size"), win_rate=("win", "mean"), mean_gap=("gap", "mean"), tasks=("task", "nunique"))
        .reset_index()
    )
    table["separates"] = (table["win_rate"] >= 0.8) & (table["mean_gap"] > 0)
    table["rewards_mean"] = table["win_rate"] <= 0.5
    return table.sort_values(["win_rate", "mean_gap"], ascending=False).reset_index(drop=True)


def systematic_variation(adata: AnnData) -> pd.DataFrame:
    """How much of each perturbation's effect is the dataset's common perturbed-vs-control shift (Systema).

    Per (covariate, perturbation): ``cosine`` = cos(μ_p − μ_ctrl, μ̄_pert − μ_ctrl) with μ̄_pert the mean of the
    covariate's perturbation means; ``share_explained`` = 1 − ‖Δ_p − Δ̄‖² / ‖Δ_p‖² (the share of the effect's
    squared norm that the mean effect accounts for; negative when Δ_p points away from it); ``n_cells``.
    Pseudobulk = mean of log1p over cells, all measured genes. A covariate with fewer than three perturbations
    (Kang: one stimulation per cell type) is compared with the mean effect pooled over all covariates
    (``reference`` = ``pooled``), since its own mean effect would be itself.
    """
    column = covariate_column(adata)
    control = str(adata.uns["vcc"]["control_label"])
    means = group_means(adata, column)
    effects = {}
    for covariate, block in means.groupby(level="covariate"):
        block = block.droplevel("covariate")
        if control in block.index and len(block) > 1:
            effects[covariate] = block.drop(index=control) - block.loc[control]
    if not effects:
        return pd.DataFrame(columns=["dataset", "covariate", "perturbation", "cosine", "share_explained"])
    pooled = pd.concat(effects.values()).mean(axis=0).to_numpy()
    rows = []
    for covariate, deltas in effects.items():
        mean_delta = deltas.mean(axis=0).to_numpy() if len(deltas) >= 3 else pooled
        for pert, delta in deltas.iterrows():
            d = delta.to_numpy()
            norm = np.linalg.norm(d) * np.linalg.norm(mean_delta)
            rows.append(
                {
                    "covariate": covariate,
                    "perturbation": pert,
                    "cosine": float(d @ mean_delta / norm) if norm > 0 else np.nan,
                    "share_explained": float(1 - np.sum((d - mean_delta) ** 2) / max(np.sum(d**2), 1e-300)),
                    "effect_norm": float(np.linalg.norm(d)),
                    "reference": "covariate" if len(deltas) >= 3 else "pooled",
                }
            )
    table = pd.DataFrame(rows)
    counts = adata.obs.groupby(
        [
            adata.obs[column].astype(str) if column else pd.Series("all", index=adata.obs_names),
            adata.obs["perturbation"].astype(str),
        ],
        observed=True,
    ).size()
    table["n_cells"] = [int(counts.get((c, p), 0)) for c, p in zip(table["covariate"], table["perturbation"])]
    table.insert(0, "dataset", str(adata.uns["vcc"].get("dataset", "")))
    return table


def placement_matrix(placed: pd.DataFrame, how: str = "median") -> pd.DataFrame:
    """Metrics × baselines: the ``how`` (median/mean) placement across tasks.

    Rows are ordered by the mean baseline–technical duplicate gap, columns MIN first.
    """
    matrix = placed.pivot_table(index="metric", columns="baseline", values="placement", aggfunc=how)
    sides = placed.drop_duplicates("baseline").set_index("baseline")["side"]
    columns = sorted(matrix.columns, key=lambda b: (sides.get(b) == "MAX", b != MIN_ANCHOR, b))
    return matrix[columns]


def headline(
    long: pd.DataFrame, placed: pd.DataFrame, separated: pd.DataFrame, variation: pd.DataFrame
) -> dict[str, Any]:
    """The numbers the chapter's conclusions quote, computed from its tables (so reruns keep them true)."""

    def rate(metric):
        row = separated[separated["metric"] == metric]
        return float(row["win_rate"].iloc[0]) if len(row) else float("nan")

    minimum = placed[(placed["side"] == "MIN") & (placed["baseline"] != MIN_ANCHOR)]
    beats_max = minimum[minimum["placement"] >= 1]
    best = {}
    for metric in ("pearson_delta", "discrimination_score_l1", "overlap_at_N", "mae"):
        rows = minimum[minimum["metric"] == metric].dropna(subset=["placement"])
        if rows.empty:
            continue
        top = rows.loc[rows.groupby("task")["placement"].idxmax()]
        best[metric] = {
            t: {"baseline": b, "placement": round(float(p), 3), "score": round(float(s), 4)}
            for t, b, p, s in zip(top["task"], top["baseline"], top["placement"], top["score"])
        }
    learned = minimum[minimum["baseline"].map(lambda b: b in MODELS and MODELS.get(b).kind is ModelKind.LEARNED)]
    beats_mean = (
        learned.dropna(subset=["placement"]).assign(win=lambda f: f["placement"] > 0).groupby("metric")["win"].mean()
    )
    by_task = {}
    for metric in ("pearson_delta", "discrimination_score_l1", "overlap_at_N", "mae"):
        rows = placed[(placed["metric"] == metric) & placed["baseline"].isin([MIN_ANCHOR])]
        by_task[metric] = {
            t: {"ordered": bool(o), "min": round(float(lo), 4), "max": round(float(hi), 4)}
            for t, o, lo, hi in zip(rows["task"], rows["anchors_ordered"], rows["min"], rows["max"])
        }
    anchors = placed.drop_duplicates(["task", "metric"])
    per_dataset = variation.groupby("dataset").agg(
        cosine=("cosine", "median"), share_explained=("share_explained", "median"), n=("cosine", "size")
    )
    return {
        "tasks": sorted(long["task"].unique()),
        "n_baselines": int(long["baseline"].nunique()),
        "n_metrics": int(len(scored_metrics(long["metric"].unique()))),
        "separating": separated.loc[separated["separates"], "metric"].tolist(),
        "rewarding_mean": separated.loc[separated["rewards_mean"], "metric"].tolist(),
        "win_rate": {
            m: rate(m)
            for m in (
                "mae",
                "mse",
                "pearson_delta",
                "discrimination_score_l1",
                "overlap_at_N",
                "systema_pearson_delta_pert",
                "pr_auc",
            )
        },
        "best_min": best,
        "min_beats_max": beats_max[["task", "baseline", "metric", "placement"]].to_dict("records"),
        "share_learned_beating_mean": beats_mean.round(3).to_dict(),
        "anchors_by_task": by_task,
        "unordered_share": float(1 - anchors["anchors_ordered"].mean()) if len(anchors) else float("nan"),
        "unordered_by_task": (1 - anchors.groupby("task")["anchors_ordered"].mean()).round(3).to_dict(),
        "systematic_variation": per_dataset.round(3).to_dict("index"),
    }
