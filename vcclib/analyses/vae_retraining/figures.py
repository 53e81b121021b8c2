"""The chapter's figures (each returns the figure; the notebook writes it with its numbers as a table)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from vcclib.analyses.vae_retraining.experiments import DEFAULT, REFERENCE


def plot_variants(table: pd.DataFrame, title: str):
    """Placements with 95% intervals: one panel per metric, one bar per variant (0 = mean baseline, 1 = ceiling)."""
    from matplotlib.figure import Figure

    metrics = list(dict.fromkeys(table["metric"]))
    fig = Figure(figsize=(2.6 * max(len(metrics), 1), 3.2))
    axes = fig.subplots(1, max(len(metrics), 1), sharey=True, squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        rows = table[table["metric"] == metric]
        labels = rows["model"].where(rows["variant"].isin([REFERENCE, DEFAULT]), rows["variant"])
        y = np.arange(len(rows))
        ax.barh(
            y,
            rows["mean"],
            xerr=[rows["mean"] - rows["low"], rows["high"] - rows["mean"]],
            color="#4c72b0",
            ecolor="#333",
            capsize=2,
        )
        ax.set_yticks(y, [str(v).split("=", 1)[-1] for v in labels], fontsize=7)
        for x in (0, 1):
            ax.axvline(x, color="#999", lw=0.8, ls="--" if x else "-")
        ax.set_title(metric, fontsize=8)
        ax.set_xlim(-2, 1.5)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_learning_curve(curve: pd.DataFrame):
    """Mean placement against the share of training perturbations, one line per learner."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 3))
    ax = fig.subplots()
    for learner, rows in curve.groupby("learner"):
        ax.plot(rows["fraction"], rows["mean"], marker="o", label=learner)
        ax.fill_between(rows["fraction"], rows["low"], rows["high"], alpha=0.2)
    ax.axhline(0, color="#999", lw=0.8)
    ax.set_xlabel("share of the training perturbations")
    ax.set_ylabel("placement (mean over trusted metrics)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_diversity(info: pd.DataFrame):
    """Predicted/real spread of perturbation effects per model and variant (1 = real diversity, 0 = collapsed)."""
    from matplotlib.figure import Figure

    table = (
        info[~info["variant"].str.contains("train_fraction|added=")]
        .groupby(["model", "variant"])["effect_spread_ratio"]
        .agg(["mean", "min", "max"])
        .reset_index()
        .sort_values("mean")
    )
    fig = Figure(figsize=(5, 0.22 * len(table) + 1))
    ax = fig.subplots()
    y = np.arange(len(table))
    ax.barh(
        y,
        table["mean"],
        xerr=[table["mean"] - table["min"], table["max"] - table["mean"]],
        color="#dd8452",
        ecolor="#333",
        capsize=2,
    )
    ax.set_yticks(y, [f"{m} ({v})" for m, v in zip(table["model"], table["variant"])], fontsize=6)
    ax.axvline(1, color="#999", lw=0.8, ls="--")
    ax.set_xlabel("effect spread, predicted / real (seed range)")
    fig.tight_layout()
    return fig, table


def plot_added_data(table: pd.DataFrame):
    """Mean placement against the number of added cell lines, one line per learner (bands: 95% intervals)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.4, 3))
    ax = fig.subplots()
    for learner, rows in table.groupby("learner"):
        ax.plot(rows["n_added"], rows["mean"], marker="o", label=learner)
        ax.fill_between(rows["n_added"], rows["low"], rows["high"], alpha=0.2)
    stages = table.drop_duplicates("n_added").sort_values("n_added")
    ax.set_xticks(stages["n_added"], [s.split("=", 1)[1].replace("+", "\n+") for s in stages["stage"]], fontsize=7)
    ax.axhline(0, color="#999", lw=0.8)
    ax.set_xlabel("McFaline-Figueroa 2023 lines added to Norman 2019 (K562)")
    ax.set_ylabel("placement (mean over trusted metrics)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
