"""The chapter's tables: placements, trusted metrics, intervals over seeds, and the records the answer quotes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from vcclib.analyses.metrics_and_baselines import SEPARATING_WIN_RATE
from vcclib.analyses.vae_retraining.experiments import DEFAULT, REFERENCE, Settings
from vcclib.models.benchmark import MAX_ANCHOR, MIN_ANCHOR, separation


def placements(long: pd.DataFrame) -> pd.DataFrame:
    """Every mean score placed between the MIN and MAX anchors of its task, seed and training set.

    Columns ``task``, ``model``, ``variant``, ``seed``, ``metric``, ``value`` (mean over held-out perturbations)
    and ``placement`` = (u − b)/(r − b), NaN where the MAX anchor does not beat the MIN anchor.
    """
    from vcclib.metrics import METRICS as REGISTRY

    means = long.groupby(["task", "model", "variant", "seed", "metric"], sort=False)["value"].mean().reset_index()
    means["anchor_tag"] = means["variant"].str.split("|").str[0].where(means["variant"].str.contains(r"\|"), REFERENCE)
    means.loc[means["model"].isin([MIN_ANCHOR, MAX_ANCHOR]) & ~means["variant"].str.contains(r"\|"), "anchor_tag"] = (
        means["variant"]
    )
    anchors = means[means["model"].isin([MIN_ANCHOR, MAX_ANCHOR]) & ~means["variant"].str.contains(r"\|")]
    table = anchors.pivot_table(index=["task", "seed", "variant", "metric"], columns="model", values="value")
    table.index = table.index.set_names("anchor_tag", level="variant")
    merged = means.join(table, on=["task", "seed", "anchor_tag", "metric"])
    higher = merged["metric"].map(lambda m: bool(REGISTRY.get(m).higher_is_better))
    b, r = merged[MIN_ANCHOR], merged[MAX_ANCHOR]
    ordered = np.where(higher, r > b, r < b)
    merged["placement"] = np.where(ordered, (merged["value"] - b) / (r - b), np.nan)
    return merged[["task", "model", "variant", "seed", "metric", "value", "placement"]]


def trustworthy_metrics(long: pd.DataFrame) -> pd.DataFrame:
    """The metrics chapter's separation test on this chapter's reference runs.

    Win rate of the MAX anchor over the MIN anchor per metric, paired over the held-out perturbations of every
    task and seed; ``trusted`` = win rate ≥ :data:`SEPARATING_WIN_RATE` and a positive mean gap.
    """
    refs = long[(long["variant"] == REFERENCE) & long["model"].isin([MIN_ANCHOR, MAX_ANCHOR])]
    refs = refs.assign(task=refs["task"] + "#" + refs["seed"].astype(str), baseline=refs["model"])
    table = separation(refs)
    table["trusted"] = (table["win_rate"] >= SEPARATING_WIN_RATE) & (table["mean_gap"] > 0)
    return table


def intervals(placed: pd.DataFrame, metrics) -> pd.DataFrame:
    """Mean placement over seeds with a 95% t-interval, per (task, model, variant, metric) on ``metrics``."""
    from scipy.stats import t

    rows = placed[placed["metric"].isin(list(metrics))]
    grouped = rows.groupby(["task", "model", "variant", "metric"], sort=False)["placement"]
    table = grouped.agg(["mean", "std", "count", "min", "max"]).reset_index()
    half = t.ppf(0.975, (table["count"] - 1).clip(lower=1)) * table["std"] / np.sqrt(table["count"].clip(lower=1))
    table["low"], table["high"] = table["mean"] - half, table["mean"] + half
    return table.rename(columns={"count": "n_seeds"})


def headline(
    placed: pd.DataFrame,
    trusted: pd.DataFrame,
    info: pd.DataFrame,
    *,
    settings: Settings,
    seconds: float,
    cpu_seconds: float,
    device: str,
) -> dict[str, Any]:
    """The numbers the conclusions quote (computed from the chapter's tables)."""
    metrics = trusted.loc[trusted["trusted"], "metric"].tolist()
    summary = intervals(placed, metrics)
    ref = summary[summary["variant"].isin([REFERENCE, DEFAULT])]
    vae = ref[ref["model"].str.startswith("cvae")]
    others = ref[~ref["model"].str.startswith("cvae") & ~ref["model"].isin([MAX_ANCHOR, "replicate"])]
    best_baseline = others.loc[others.groupby(["task", "metric"])["mean"].idxmax()] if len(others) else others
    beats = {}
    for row in vae.itertuples():
        best = best_baseline[(best_baseline["task"] == row.task) & (best_baseline["metric"] == row.metric)]
        top = best.iloc[0] if len(best) else None
        beats.setdefault(row.model, []).append(
            {
                "task": row.task,
                "metric": row.metric,
                "vae": round(float(row.mean), 3),
                "vae_low": round(float(row.low), 3),
                "vae_high": round(float(row.high), 3),
                "above_mean_baseline": bool(row.low > 0),
                "best_baseline": None if top is None else top["model"],
                "best_baseline_placement": None if top is None else round(float(top["mean"]), 3),
                "beats_best": None if top is None else bool(row.mean > top["mean"]),
            }
        )

    def effects(prefix: str) -> dict:
        rows = summary[summary["variant"].str.startswith(prefix)]
        return {v: round(float(g["mean"].mean()), 3) for v, g in rows.groupby("variant")}

    curve = summary[summary["variant"].str.startswith("train_fraction=")]
    curve = curve.assign(
        fraction=curve["variant"].str.extract(r"train_fraction=([\d.]+)")[0].astype(float),
        learner=curve["variant"].str.split("|").str[1],
    )
    slopes = {}
    for learner, block in curve.groupby("learner"):
        by_fraction = block.groupby("fraction")["mean"].mean()
        if len(by_fraction) > 1:
            slopes[learner] = {
                "first": round(float(by_fraction.iloc[0]), 3),
                "last": round(float(by_fraction.iloc[-1]), 3),
                "fractions": [float(f) for f in by_fraction.index],
            }
    diversity = info[
        (info["model"].str.startswith("cvae") | info["model"].isin([MIN_ANCHOR, MAX_ANCHOR, "linear_go"]))
        & ~info["variant"].str.contains("train_fraction|added=")
    ]
    added = added_data_table(summary, info)
    hypotheses = summary[summary["variant"].str.startswith("hypothesis=")]
    hypotheses = hypotheses[hypotheses["variant"].str.contains(r"\|")]
    spread = diversity.groupby(["model", "variant"])[["effect_spread_ratio", "cell_variance_ratio"]].mean()
    widths = (summary["high"] - summary["low"]).dropna()
    return {
        "tasks": sorted(placed["task"].unique()),
        "seeds": list(settings.seeds),
        "trusted_metrics": metrics,
        "untrusted_metrics": trusted.loc[~trusted["trusted"], "metric"].tolist(),
        "vae_vs_baselines": beats,
        "losses": effects("loss="),
        "features": effects("features="),
        "learning_curve": slopes,
        "added_data": {
            learner: [
                {
                    "stage": s,
                    "placement": round(float(m), 3),
                    "low": round(float(lo), 3),
                    "high": round(float(hi), 3),
                    "train_cells": int(n),
                }
                for s, m, lo, hi, n in rows[["stage", "mean", "low", "high", "n_train_cells"]].itertuples(index=False)
            ]
            for learner, rows in added.groupby("learner", sort=True)
        },
        "hypotheses": {
            f"{v.split('|')[0].split('=', 1)[1]} on {t}, {v.split('|')[1]}": {
                "placement": round(float(g["mean"].mean()), 3),
                "low": round(float(g["low"].mean()), 3),
                "high": round(float(g["high"].mean()), 3),
            }
            for (t, v), g in hypotheses.groupby(["task", "variant"], sort=True)
        },
        "diversity": {
            f"{m} ({v})": {k: round(float(x), 3) for k, x in row.items()} for (m, v), row in spread.iterrows()
        },
        "median_interval_width": float(widths.median()) if len(widths) else float("nan"),
        "max_cells_per_perturbation": settings.max_cells_per_perturbation,
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),
        "device": device,
        "vae_cells_per_second": float(info.loc[info["model"].str.startswith("cvae"), "cells_per_second"].median()),
        "n_runs": int(len(info)),
    }


def learning_curve_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean placement (over the trusted metrics) per training fraction and learner, with its seed range."""
    curve = summary[summary["variant"].str.startswith("train_fraction=")].copy()
    curve["fraction"] = curve["variant"].str.extract(r"train_fraction=([\d.]+)")[0].astype(float)
    curve["learner"] = curve["variant"].str.split("|").str[1]
    return curve.groupby(["task", "learner", "fraction"])[["mean", "low", "high"]].mean().reset_index()


def variant_table(summary: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """Mean placement with its 95% interval per variant starting with ``prefix`` and metric."""
    rows = summary[summary["variant"].str.startswith(prefix)]
    return rows[["task", "model", "variant", "metric", "mean", "low", "high", "n_seeds"]].reset_index(drop=True)


def stage_order(stage: str) -> int:
    """Number of added cell lines of an ``added=<a+b>`` stage (0 for ``added=none``)."""
    return 0 if stage == "added=none" else stage.count("+") + 1


def added_data_table(summary: pd.DataFrame, info: pd.DataFrame) -> pd.DataFrame:
    """Mean placement (over the trusted metrics) per added-data stage and learner, with training cells.

    Columns ``task``, ``learner``, ``stage``, ``n_added``, ``mean``, ``low``, ``high`` (means of the metrics'
    values and 95% interval bounds) and ``n_train_cells`` (mean over seeds).
    """
    rows = summary[summary["variant"].str.startswith("added=") & summary["variant"].str.contains(r"\|")].copy()
    columns = ["task", "learner", "stage", "n_added", "mean", "low", "high", "n_train_cells"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    rows["stage"] = rows["variant"].str.split("|").str[0]
    rows["learner"] = rows["variant"].str.split("|").str[1]
    table = rows.groupby(["task", "learner", "stage"])[["mean", "low", "high"]].mean().reset_index()
    cells = info[info["variant"].str.startswith("added=")].groupby("variant")["n_train_cells"].mean()
    table["n_train_cells"] = [
        cells.get(f"{s}|{learner}", np.nan) for s, learner in zip(table["stage"], table["learner"])
    ]
    table["n_added"] = table["stage"].map(stage_order)
    return table.sort_values(["task", "learner", "n_added"])[columns].reset_index(drop=True)
