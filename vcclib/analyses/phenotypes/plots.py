"""The chapter's figures, in the house style of :mod:`vcclib.plotting`."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from vcclib.analyses.phenotypes.groups import SINGLETON
from vcclib.plotting import COLOURS, figure, house_style


def ordered(similarity: pd.DataFrame, groups: pd.Series) -> list[str]:
    """Perturbations ordered by average-linkage leaf order (groups stay contiguous when the cut made them)."""
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    D = np.clip(1 - similarity.to_numpy(dtype=float), 0, None)
    D = (D + D.T) / 2
    np.fill_diagonal(D, 0)
    if len(D) < 3:
        return similarity.index.tolist()
    return similarity.index[leaves_list(linkage(squareform(D, checks=False), "average"))].tolist()


def similarity_heatmap(similarity: pd.DataFrame, groups: pd.Series, title: str) -> Figure:
    """Clustered similarity heatmap; reported groups are boxed and named."""
    order = ordered(similarity, groups)
    S = similarity.loc[order, order].to_numpy(dtype=float)
    n = len(order)
    size = min(3 + 0.18 * n, 11)
    with house_style():
        fig, ax = figure(size + 1.5, size)
        image = ax.imshow(S, cmap="RdBu_r", vmin=-1 if S.min() < 0 else 0, vmax=1, interpolation="nearest")
        ax.grid(False)
        if n <= 80:
            ax.set_xticks(range(n), order, rotation=90, fontsize=6)
            ax.set_yticks(range(n), order, fontsize=6)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
        labels = groups.reindex(order).fillna(SINGLETON).to_numpy()
        for g in sorted(set(labels) - {SINGLETON}):
            idx = np.flatnonzero(labels == g)
            lo, hi = idx.min() - 0.5, idx.max() + 0.5
            ax.add_patch(Rectangle((lo, lo), hi - lo, hi - lo, fill=False, lw=1.2, ec="black"))
            ax.text(hi + 0.5, lo, g, fontsize=7, va="top")
        fig.colorbar(image, ax=ax, shrink=0.6, label="similarity")
        ax.set_title(title)
    return fig


def group_map(annotation: pd.DataFrame, title: str) -> Figure:
    """Group-level map: size against strength, coloured by whether the group is more than noise."""
    with house_style():
        fig, ax = figure(7, 4)
        if len(annotation):
            colours = np.where(annotation["reported"], COLOURS["effect"], COLOURS["neutral"])
            ax.scatter(
                annotation["strength"], annotation["stability"], s=30 + 25 * annotation["size"], c=colours, alpha=0.8
            )
            for _, r in annotation.iterrows():
                label = r["group"] + (f": {r['top_terms'].split(' (FDR')[0][:40]}" if r["top_terms"] else "")
                ax.annotate(
                    label, (r["strength"], r["stability"]), fontsize=7, xytext=(4, 3), textcoords="offset points"
                )
        ax.set_xlabel("group strength (within − between similarity)")
        ax.set_ylabel("bootstrap stability (Jaccard)")
        ax.set_title(title + " (blue: more than noise; size: members)")
    return fig


def crosstab_heatmap(crosstab: pd.DataFrame, title: str) -> Figure:
    """Counts of shared knockdowns in each (first-context group, second-context group)."""
    with house_style():
        fig, ax = figure(0.3 * crosstab.shape[1] + 3, 0.3 * crosstab.shape[0] + 2)
        image = ax.imshow(np.log10(crosstab.to_numpy() + 1), cmap="Blues", aspect="auto")
        ax.set_xticks(range(crosstab.shape[1]), [c or "single" for c in crosstab.columns], rotation=90, fontsize=6)
        ax.set_yticks(range(crosstab.shape[0]), [c or "single" for c in crosstab.index], fontsize=6)
        ax.grid(False)
        fig.colorbar(image, ax=ax, shrink=0.6, label="log10(knockdowns + 1)")
        ax.set_title(title)
    return fig


def pair_agreement(pairs: pd.DataFrame, title: str) -> Figure:
    """ARI of the groups of each pair of contexts, against the same pair with one side's labels shuffled."""
    with house_style():
        fig, ax = figure(max(5, 0.25 * len(pairs) + 3), 3.5)
        x = np.arange(len(pairs))
        ax.bar(x - 0.2, pairs["ari"], width=0.4, color=COLOURS["effect"], label="groups")
        ax.bar(x + 0.2, pairs["ari_shuffled"], width=0.4, color=COLOURS["neutral"], label="labels shuffled")
        ax.set_xticks(x, [f"{a} / {b}" for a, b in zip(pairs["first"], pairs["second"])], rotation=90, fontsize=6)
        ax.set_ylabel("adjusted Rand index")
        ax.legend(fontsize=7)
        ax.set_title(title)
    return fig
