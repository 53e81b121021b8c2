"""The book's plots, in one house style.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot, so a notebook shows it only
where it asks to (the book numbers and captions each figure once) and nothing leaks between figures. The numbers
behind every figure are written as a table by the chapter (``Results.figure(..., table=...)``).

House style: white background, no top/right spines, light horizontal grid, one palette (:data:`COLOURS`) with
fixed meanings across chapters (an *effect* is always blue, a *null* call red, control orange, a download grey).
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

COLOURS = {
    "effect": "#4c72b0",
    "null": "#c44e52",
    "control": "#dd8452",
    "neutral": "#8c8c8c",
    "mirror": "#4c72b0",
    "cache": "#55a868",
    "download": "#c7c7c7",
    "separates": "#4c72b0",
    "rewards_mean": "#c44e52",
    "undecided": "#8c8c8c",
}
STYLE = {
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.axis": "x",
    "grid.color": "#e5e5e5",
    "grid.linewidth": 0.6,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "font.family": "DejaVu Sans",
    "savefig.dpi": 120,
    "savefig.bbox": "tight",
}


@contextmanager
def house_style():
    """Matplotlib settings of the house style, for the duration of a ``with`` block."""
    with rc_context(STYLE):
        yield


def figure(width: float, height: float, ncols: int = 1) -> tuple[Figure, np.ndarray | object]:
    """A new figure (not registered with pyplot) and its axes, in the house style."""
    with house_style():
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(1, ncols)
    return fig, axes


def availability_bars(counts: pd.DataFrame) -> Figure:
    """Datasets per modality (rows of ``counts``) stacked by availability (its columns)."""
    with house_style():
        fig, ax = figure(7, 0.3 * len(counts) + 1.5)
        left = np.zeros(len(counts))
        for column in counts.columns:
            ax.barh(
                counts.index, counts[column], left=left, color=COLOURS.get(column, COLOURS["neutral"]), label=column
            )
            left += counts[column].to_numpy()
        ax.set_xlabel("datasets")
        ax.legend(title="availability", loc="lower right")
        ax.set_title("Datasets by modality: embedded (mirror, cache) vs download")
    return fig


def overlap_heatmap(overlaps: pd.DataFrame) -> Figure:
    """Shared perturbed genes between datasets (annotated counts, colour on a log scale)."""
    import seaborn as sns

    n = len(overlaps)
    with house_style():
        fig, ax = figure(1.0 + 0.7 * n, 0.6 + 0.6 * n)
        values = np.log10(overlaps + 1) if n else overlaps
        sns.heatmap(
            values,
            annot=overlaps,
            fmt="d",
            cmap="Blues",
            annot_kws={"fontsize": 7},
            cbar_kws={"label": "log10(shared genes + 1)"},
            ax=ax,
        )
        ax.grid(False)
        ax.set_title("Perturbed genes shared between datasets")
    return fig


def cells_per_perturbation_bars(cells: pd.DataFrame, control_label: str, title: str) -> Figure:
    """Cells per perturbation (columns ``perturbation``, ``n_cells``), the control bar in the control colour."""
    with house_style():
        fig, ax = figure(8, 3.5)
        colours = np.where(cells["perturbation"] == control_label, COLOURS["control"], COLOURS["effect"])
        ax.bar(cells["perturbation"].astype(str), cells["n_cells"], color=colours)
        ax.grid(axis="y")
        ax.grid(axis="x", visible=False)
        ax.set_ylabel("cells")
        ax.set_title(f"{title}: cells per perturbation (control in orange)")
        ax.tick_params(axis="x", rotation=90, labelsize=7)
    return fig


def effect_scatter(
    effects: pd.DataFrame, title: str, alpha: float = 0.05, null_call: str = "no detectable effect"
) -> Figure:
    """E-distance to control vs number of DE genes, one point per perturbation; null calls named in the legend.

    The dashed line is the E-distance between two halves of the control subsample (``attrs``), a noise floor.
    """
    null = (effects["call"] == null_call).to_numpy()
    with house_style():
        fig, ax = figure(8, 5.5)
        null_label = f"no detectable effect ({null.sum()}): " + ", ".join(effects.index[null])
        for mask, colour, label in (
            (~null, COLOURS["effect"], f"effect ({(~null).sum()})"),
            (null, COLOURS["null"], null_label),
        ):
            ax.scatter(
                effects.loc[mask, "edistance"], effects.loc[mask, "n_de_genes"], c=colour, label=label, s=30, alpha=0.8
            )
        for name, row in effects[~null].iterrows():
            ax.annotate(
                name, (row["edistance"], row["n_de_genes"]), fontsize=7, xytext=(3, 2), textcoords="offset points"
            )
        half = effects.attrs["n_control_cells_etest"] // 2
        ax.axvline(
            effects.attrs["control_split_edistance"],
            ls="--",
            c=COLOURS["neutral"],
            label=f"control vs control ({half} vs {half} cells)",
        )
        ax.set_ylim(-0.3, max(2.0, effects["n_de_genes"].max()) * 1.5)
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=1)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("E-distance to control (PCA space, pertpy convention)")
        ax.set_ylabel(f"DE genes (FDR < {alpha})")
        ax.set_title(title)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14))
    return fig


def target_fold_change_bars(
    own: pd.DataFrame, alpha: float, title: str, null_call: str = "no detectable effect"
) -> Figure:
    """Each measured target's own log2 fold change (bars coloured by call; ``*`` marks FDR < ``alpha``)."""
    with house_style():
        fig, ax = figure(7, 0.3 * len(own) + 1.5)
        colours = np.where(own["call"] == null_call, COLOURS["null"], COLOURS["effect"])
        ax.barh(own.index.astype(str), own["target_log2fc"], color=colours)
        for i, (lfc, fdr) in enumerate(zip(own["target_log2fc"], own["target_fdr"], strict=True)):
            if fdr < alpha:
                ax.text(lfc, i, " *", va="center", ha="right" if lfc < 0 else "left")
        ax.axvline(0, c="k", lw=0.8)
        ax.set_xlabel("log2 fold change of the target gene itself")
        ax.set_title(title)
    return fig


def systematic_variation_boxes(variation: pd.DataFrame) -> Figure:
    """Per dataset: boxes of the cosine to the mean effect and of the share of the effect it explains."""
    labels = {"cosine": "cos(effect, mean effect)", "share_explained": "share of effect explained by mean effect"}
    with house_style():
        fig, axes = figure(11, 0.45 * variation["dataset"].nunique() + 1.6, ncols=2)
        for ax, column in zip(axes, labels, strict=True):
            groups = list(variation.groupby("dataset")[column])
            ax.boxplot([g.to_numpy() for _, g in groups], orientation="horizontal")
            ax.set_yticks(range(1, len(groups) + 1), [name for name, _ in groups])
            ax.axvline(0, color=COLOURS["neutral"], lw=0.8)
            ax.set_xlabel(labels[column])
    return fig


def placement_heatmap(matrix: pd.DataFrame, low: float = -1.0, high: float = 1.5) -> Figure:
    """Metrics × baselines placement (0 = mean baseline, 1 = technical duplicate), colours clipped to [low, high]."""
    values = matrix.to_numpy(dtype=float)
    with house_style():
        fig, ax = figure(0.55 * matrix.shape[1] + 3, 0.28 * matrix.shape[0] + 1.5)
        image = ax.imshow(np.clip(values, low, high), cmap="RdBu_r", vmin=low, vmax=high, aspect="auto")
        ax.set_xticks(range(matrix.shape[1]), matrix.columns, rotation=70, ha="right")
        ax.set_yticks(range(matrix.shape[0]), matrix.index)
        ax.grid(False)
        for (i, j), value in np.ndenumerate(values):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=6)
        fig.colorbar(image, ax=ax, shrink=0.5, label="placement (0 = mean baseline, 1 = technical duplicate)")
        ax.set_title("Median placement over tasks")
    return fig


def win_rate_bars(pooled: pd.DataFrame, separating: float = 0.8) -> Figure:
    """Per metric, the share of perturbations where the ceiling beats the mean baseline."""
    colours = np.where(
        pooled["separates"],
        COLOURS["separates"],
        np.where(pooled["rewards_mean"], COLOURS["rewards_mean"], COLOURS["undecided"]),
    )
    with house_style():
        fig, ax = figure(6, 0.22 * len(pooled) + 1)
        ax.barh(pooled["metric"], pooled["win_rate"], color=colours)
        ax.axvline(0.5, color="black", lw=0.8)
        ax.axvline(separating, color="black", lw=0.8, ls="--")
        ax.invert_yaxis()
        ax.set_xlabel("share of perturbations where the ceiling beats the mean baseline")
    return fig


def note_figure(text: str) -> Figure:
    """A small figure that says why a figure is empty in this run (so its numbered caption still has a body)."""
    with house_style():
        fig, ax = figure(6, 1.2)
        ax.axis("off")
        ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=9, color=COLOURS["neutral"], wrap=True)
    return fig


def calibration_qq(qq: pd.DataFrame, title: str) -> Figure:
    """QQ plot of held-out control groups' calibrated p-values against the uniform (columns expected, observed).

    With a ``dataset`` column, one colour per dataset (and a legend).
    """
    with house_style():
        fig, ax = figure(4.5, 4.5)
        if "dataset" in qq:
            for name, part in qq.groupby("dataset", sort=False):
                ax.scatter(part["expected"], part["observed"], s=12, label=str(name))
            ax.legend(loc="upper left", fontsize=7)
        else:
            ax.scatter(qq["expected"], qq["observed"], s=12, c=COLOURS["control"])
        ax.plot([0, 1], [0, 1], c="k", lw=0.8)
        ax.set_xlabel("expected quantile (uniform)")
        ax.set_ylabel("calibrated p of held-out control groups")
        ax.set_title(title)
    return fig


def call_bars(shares: pd.DataFrame, title: str) -> Figure:
    """Share of each call per group (columns group, call, share, low, high), with 95% intervals."""
    colours = {
        "no effect": COLOURS["null"],
        "effect": COLOURS["effect"],
        "effect, dying-cell readout": "#8172b2",
        "failed knockdown": COLOURS["neutral"],
        "too few cells": "#c7c7c7",
    }
    with house_style():
        groups = list(dict.fromkeys(shares["group"]))
        fig, ax = figure(8, 0.5 * len(groups) * 2 + 1.5)
        calls = list(dict.fromkeys(shares["call"]))
        height = 0.8 / max(len(calls), 1)
        for j, call in enumerate(calls):
            part = shares[shares["call"] == call].set_index("group").reindex(groups)
            y = np.arange(len(groups)) + j * height
            ax.barh(
                y,
                part["share"],
                height=height,
                color=colours.get(call, COLOURS["neutral"]),
                label=call,
                xerr=[part["share"] - part["low"], part["high"] - part["share"]],
                error_kw={"lw": 0.6},
            )
        ax.set_yticks(np.arange(len(groups)) + 0.4 - height / 2, groups)
        ax.set_xlabel("share of perturbations (95% Wilson interval)")
        ax.set_title(title)
        ax.legend(loc="lower right")
    return fig


def as_image(fig: Figure, dpi: int = 110):
    """The figure as an ``IPython.display.Image`` (PNG): displays a pyplot-free figure inline in any kernel.

    Parameters
    ----------
    fig
        A figure made by this module (no pyplot state), which IPython would otherwise show as its text repr.
    dpi
        Resolution of the PNG.
    """
    import io

    from IPython.display import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return Image(data=buffer.getvalue(), format="png")
