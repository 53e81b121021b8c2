"""The chapter's figures, each drawn from one of its tables (the table holds every number the figure shows).

Each is a :class:`matplotlib.figure.Figure` built without pyplot (as in :mod:`vcclib.plotting`), so a notebook shows
it only where it is glued into a numbered caption, never again at the end of the cell.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle


def readout_figure(readout: pd.DataFrame) -> Figure:
    """pearson_delta (all genes, solid; unmeasured genes, dotted) against k, one panel per dataset.

    Grey lines: the k = 0 anchor (the training perturbations' mean effect, dashed) and the all-genes anchor
    (a technical duplicate, dash-dot). Table: ``readout_size``.
    """
    show = readout[readout["metric"].isin(["pearson_delta", "pearson_delta_unmeasured"])]
    datasets = list(dict.fromkeys(show["dataset"]))
    fig = Figure(figsize=(3.8 * max(1, len(datasets)), 3.6))
    axes = fig.subplots(1, max(1, len(datasets)), squeeze=False)
    for ax, name in zip(axes[0], datasets):
        block = show[show["dataset"] == name]
        curves = block[~block["gene_choice"].isin(["none", "all"])]
        for (choice, metric), rows in curves.groupby(["gene_choice", "metric"]):
            rows = rows.sort_values("k")
            ax.plot(
                rows["k"],
                rows["value"],
                marker="o",
                ms=3,
                ls="-" if metric == "pearson_delta" else ":",
                label=f"{choice} ({'all genes' if metric == 'pearson_delta' else 'unmeasured'})",
            )
        for anchor, style in (("none", "--"), ("all", "-.")):
            value = block[(block["gene_choice"] == anchor) & (block["metric"] == "pearson_delta")]["value"]
            if len(value):
                ax.axhline(value.iloc[0], ls=style, c="grey", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("measured genes k")
        ax.set_title(name)
    axes[0][0].set_ylabel("pearson_delta")
    axes[0][-1].legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    return fig


def matrix_heatmap(matrix: pd.DataFrame, order=None, min_n: int = 30) -> Figure:
    """Spearman ρ of every modality pair (table ``modality_matrix``).

    Numbers: genes shared; hatched: fewer than ``min_n``; boxed: two quantities of the same measurements.
    """
    names = list(order) if order is not None else list(dict.fromkeys(matrix["source"]))
    rho = matrix.pivot(index="source", columns="target", values="value").reindex(index=names, columns=names)
    nn = matrix.pivot(index="source", columns="target", values="n").reindex(index=names, columns=names)
    same = (
        matrix.pivot(index="source", columns="target", values="same_source").reindex(index=names, columns=names)
        if "same_source" in matrix
        else None
    )
    size = 0.42 * len(names) + 3
    fig = Figure(figsize=(size + 1.5, size))
    ax = fig.subplots()
    image = ax.imshow(rho.to_numpy(dtype=float), cmap="RdBu_r", vmin=-0.6, vmax=0.6)
    for i in range(len(names)):
        for j in range(len(names)):
            n = nn.iat[i, j]
            if i == j or not np.isfinite(n):
                continue
            small = n < min_n
            ax.text(
                j,
                i,
                f"{int(n)}" if n < 1000 else f"{n / 1000:.0f}k",
                ha="center",
                va="center",
                fontsize=5,
                color="grey" if small else "black",
                style="italic" if small else "normal",
            )
            if small:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", lw=0, ec="lightgrey"))
            if same is not None and bool(same.iat[i, j]):
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=1.2, ec="black"))
    ax.set_xticks(range(len(names)), names, rotation=75, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    fig.colorbar(image, ax=ax, shrink=0.7, label="Spearman ρ")
    fig.tight_layout()
    return fig


def prior_figure(priors: pd.DataFrame, metric: str = "pearson_delta") -> Figure:
    """Each prior source's placement per task (table ``prior_placement``).

    Point: mean over seeds; bar: seed range; orange: ≥ 50 % of the held-out perturbations fell back to the mean
    effect; tasks without a placement are named in the title.
    """
    rows = priors[priors["metric"] == metric]
    placed = rows.dropna(subset=["placement"])
    unplaced = sorted(set(rows["task"]) - set(placed["task"]))
    fig = Figure(figsize=(8, 0.32 * max(1, len(placed)) + 1.6))
    ax = fig.subplots()
    labels = []
    for y, row in enumerate(placed.itertuples()):
        ax.errorbar(
            row.placement,
            y,
            xerr=[[row.placement - row.low], [row.high - row.placement]],
            fmt="o",
            ms=4,
            c="tab:blue" if row.fallback < 0.5 else "tab:orange",
        )
        labels.append(f"{row.task} · {row.source}")
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.axvline(0, c="grey", ls="--")
    ax.axvline(1, c="grey", ls="-.")
    ax.set_xlabel(f"placement on {metric} (0 = mean effect, 1 = technical duplicate)")
    if unplaced:
        ax.set_title("no placement (anchors unordered): " + ", ".join(unplaced), fontsize=8)
    fig.tight_layout()
    return fig
