"""Groups across contexts: the same knockdowns in two cell lines, doubles against their singles, drugs by line."""

from __future__ import annotations

import numpy as np
import pandas as pd

from vcclib.analyses.phenotypes.groups import SINGLETON
from vcclib.data.schema import split_targets


def _as_clusters(groups: pd.Series) -> list[str]:
    return [g if g != SINGLETON else f"_single_{p}" for p, g in groups.items()]


def conservation(first: pd.Series, second: pd.Series) -> tuple[dict, pd.DataFrame]:
    """Agreement of two groupings of the same perturbations (e.g. K562 and RPE1).

    Returns
    -------
    summary, crosstab
        ``n_shared``, ``ari`` (adjusted Rand index, singletons each their own cluster) and ``conserved_share``
        (share of perturbations in a group of ``first`` that share a group with at least one of the same partners
        in ``second``); the crosstab of group labels (singletons pooled as ``""``).
    """
    from sklearn.metrics import adjusted_rand_score

    common = sorted(set(first.index) & set(second.index))
    a, b = first.loc[common], second.loc[common]
    grouped = a[a != SINGLETON]
    kept = []
    for p, g in grouped.items():
        partners = set(grouped.index[grouped == g]) - {p}
        kept.append(b[p] != SINGLETON and any(b[q] == b[p] for q in partners))
    summary = {
        "n_shared": len(common),
        "ari": float(adjusted_rand_score(_as_clusters(a), _as_clusters(b))),
        "conserved_share": float(np.mean(kept)) if kept else float("nan"),
        "n_grouped_first": len(grouped),
    }
    return summary, pd.crosstab(a.rename("first"), b.rename("second"))


def doubles_vs_singles(groups: pd.Series) -> pd.DataFrame:
    """Each double perturbation A+B next to the groups of its singles.

    ``same_as_single``: its group is one of theirs; ``new_group``: grouped, with neither single.
    """
    rows = []
    for p, g in groups.items():
        targets = split_targets(p)
        if len(targets) < 2:
            continue
        single = [groups.get(t, None) for t in targets]
        rows.append(
            {
                "perturbation": p,
                "group": g,
                "single_groups": ", ".join(str(s) for s in single),
                "same_as_single": g != SINGLETON and g in single,
                "new_group": g != SINGLETON and g not in single,
            }
        )
    return pd.DataFrame(rows, columns=["perturbation", "group", "single_groups", "same_as_single", "new_group"])


def line_conservation(
    signatures, *, depth: int = 100, threshold: float = 0.7, p: float = 0.98, min_size: int = 2
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Perturbation groups of every context (cell line) of a signature collection, compared pair by pair.

    Each line's perturbations are clustered as in the chapter (RBO of the rankings truncated to ``depth``,
    average linkage cut at ``threshold``; no resampling: a description, not a call). For every pair of lines,
    on the perturbations both hold: :func:`conservation`'s ARI and conserved share, and the same ARI for the
    pair with one line's labels permuted (``ari_shuffled``: what chance agreement looks like at those group sizes).

    Returns
    -------
    pairs, groups
        One row per pair of lines; the long table of groups (``context``, ``perturbation``, ``group``).
    """
    from vcclib.analyses.phenotypes.groups import cluster
    from vcclib.analyses.phenotypes.similarity import SignatureLists, signature_similarity

    rng = np.random.default_rng(0)
    labels = {}
    for context in signatures.contexts:
        lists = SignatureLists.from_signatures(signatures, context, depth=depth)
        labels[context] = cluster(signature_similarity(lists, "rbo", p), threshold=threshold, min_size=min_size)
    rows = []
    names = list(labels)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            summary, _ = conservation(labels[first], labels[second])
            common = sorted(set(labels[first].index) & set(labels[second].index))
            shuffled = pd.Series(rng.permutation(labels[second].loc[common].to_numpy()), index=common)
            chance, _ = conservation(labels[first].loc[common], shuffled)
            rows.append(
                {
                    "first": first,
                    "second": second,
                    **summary,
                    "ari_shuffled": chance["ari"],
                    "conserved_share_shuffled": chance["conserved_share"],
                    "n_grouped_second": int((labels[second].loc[common] != SINGLETON).sum()),
                }
            )
    long = pd.concat(
        [pd.DataFrame({"context": c, "perturbation": g.index, "group": g.to_numpy()}) for c, g in labels.items()],
        ignore_index=True,
    )
    return pd.DataFrame(rows), long
