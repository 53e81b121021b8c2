"""What each group is: shared response genes, enrichment, co-essentiality, published clusters, generic programmes.

Each perturbation may also collapse onto a generic stress programme (:func:`generic_calls`).

Enrichment is a one-sided hypergeometric test (over-representation of a gene set among a group's shared
response genes, universe = the measured genes / the genes the signatures rank), Benjamini–Hochberg across the
gene sets tested for that group. decoupler (whose ``ora`` is the same Fisher/hypergeometric test) is not a
dependency of this project, so the test is written here on scipy and checked against ``scipy.stats.fisher_exact``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control, hypergeom

from vcclib.analyses.phenotypes.groups import SINGLETON

#: generic programmes: Hallmark sets and GO BP terms (names as in GO.db 3.16) that make up each one
GENERIC_PROGRAMMES = {
    "p53 / DNA damage": (
        "HALLMARK_P53_PATHWAY",
        "HALLMARK_DNA_REPAIR",
        "intrinsic apoptotic signaling pathway in response to DNA damage by p53 class mediator",
    ),
    "unfolded protein response": ("HALLMARK_UNFOLDED_PROTEIN_RESPONSE", "response to unfolded protein"),
    "integrated stress response": ("integrated stress response signaling",),
    "ribosome biogenesis / translation": ("ribosome biogenesis", "cytoplasmic translation"),
    "cell-cycle arrest": ("HALLMARK_G2M_CHECKPOINT", "HALLMARK_E2F_TARGETS"),
    "apoptosis": ("HALLMARK_APOPTOSIS",),
    "interferon": ("HALLMARK_INTERFERON_ALPHA_RESPONSE", "HALLMARK_INTERFERON_GAMMA_RESPONSE"),
}


def gene_sets(
    hallmark: dict, gene2go: pd.DataFrame | None = None, *, min_size: int = 10, max_size: int = 500
) -> dict[str, frozenset]:
    """Hallmark sets and GO biological-process terms of ``min_size``–``max_size`` genes.

    ``hallmark`` comes from the ``msigdb_gmt`` loader, ``gene2go`` from the ``go_human`` loader (terms named
    ``GO:<term name>``).
    """
    sets = {name: frozenset(genes) for name, genes in hallmark.items()}
    if gene2go is not None:
        bp = gene2go[gene2go["ontology"] == "BP"].drop_duplicates(["symbol", "go_term"])
        for term, genes in bp.groupby("go_term")["symbol"]:
            if min_size <= genes.size <= max_size:
                sets[f"GO:{term}"] = frozenset(genes)
    return sets


def programme_sets(hallmark: dict, gene2go: pd.DataFrame) -> dict[str, frozenset]:
    """The genes of each generic programme (union of its Hallmark sets and GO terms)."""
    bp = gene2go[gene2go["ontology"] == "BP"]
    out = {}
    for name, parts in GENERIC_PROGRAMMES.items():
        genes = set()
        for part in parts:
            genes |= (
                set(hallmark.get(part, ()))
                if part.startswith("HALLMARK_")
                else set(bp.loc[bp["go_term"] == part, "symbol"])
            )
        out[name] = frozenset(genes)
    return out


def hypergeometric_enrichment(genes, universe, sets: dict, *, min_overlap: int = 2) -> pd.DataFrame:
    """Over-representation of each gene set among ``genes`` (one-sided hypergeometric, BH across sets).

    Parameters
    ----------
    genes
        The query genes (restricted to ``universe``).
    universe
        Every gene that could have been a query gene; sets are restricted to it.
    sets
        Name → genes.
    min_overlap
        Sets sharing fewer query genes are not tested.

    Returns
    -------
    pandas.DataFrame
        ``term``, ``overlap``, ``set_size`` (in the universe), ``query_size``, ``odds`` (observed / expected
        overlap), ``p``, ``fdr``, sorted by p.
    """
    universe = frozenset(universe)
    query = frozenset(genes) & universe
    N, n = len(universe), len(query)
    rows = []
    for name, members in sets.items():
        members = members & universe
        k = len(members & query)
        if k < min_overlap or not members:
            continue
        K = len(members)
        rows.append(
            {
                "term": name,
                "overlap": k,
                "set_size": K,
                "query_size": n,
                "odds": k / (n * K / N),
                "p": float(hypergeom.sf(k - 1, N, K, n)),
            }
        )
    table = pd.DataFrame(rows, columns=["term", "overlap", "set_size", "query_size", "odds", "p"])
    table["fdr"] = false_discovery_control(table["p"]) if len(table) else []
    return table.sort_values("p").reset_index(drop=True)


def shared_response_genes(profiles: pd.DataFrame, members, *, n_top: int = 30, min_share: float = 0.5) -> list[str]:
    """Genes among the top ``n_top`` responses of at least ``min_share`` of ``members``, with the same sign.

    The top responses are the largest |Δ| (expression) or the up set (signatures).

    ``profiles``: perturbations × genes scores (expression Δ; or 1/0 membership of the signatures' up sets,
    where ``n_top`` is ignored and a gene counts when it is in the set).
    """
    block = profiles.loc[list(members)]
    values = block.to_numpy(dtype=np.float64)
    if set(np.unique(values)) <= {0.0, 1.0}:
        hits_up, hits_down = values > 0, np.zeros_like(values, dtype=bool)
    else:
        order = np.argsort(-np.abs(values), axis=1)[:, :n_top]
        top = np.zeros_like(values, dtype=bool)
        np.put_along_axis(top, order, True, axis=1)
        hits_up, hits_down = top & (values > 0), top & (values < 0)
    need = max(2, int(np.ceil(min_share * len(block))))
    shared = (hits_up.sum(0) >= need) | (hits_down.sum(0) >= need)
    return block.columns[shared].tolist()


def coessentiality(groups: pd.Series, edges: pd.DataFrame) -> pd.DataFrame:
    """Per group: share of member pairs that are DepMap co-essential, against all pairs of the perturbations.

    ``edges``: the ``depmap_coessentiality`` loader's table (``gene_a``, ``gene_b``). The background is every pair
    of the grouped dataset's perturbations (exact, no sampling). ``ratio`` = group share / background share
    (NaN where the background holds no co-essential pair).
    """
    pairs = {frozenset(p) for p in zip(edges["gene_a"].astype(str), edges["gene_b"].astype(str))}
    names = groups.index.tolist()
    everything = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    background = np.mean([frozenset(p) in pairs for p in everything]) if everything else np.nan
    rows = []
    for g in sorted(set(groups) - {SINGLETON}):
        members = groups.index[groups == g].tolist()
        inside = [(a, b) for i, a in enumerate(members) for b in members[i + 1 :]]
        share = float(np.mean([frozenset(p) in pairs for p in inside])) if inside else np.nan
        rows.append(
            {
                "group": g,
                "n_pairs": len(inside),
                "coessential_share": share,
                "background_share": float(background),
                "coessentiality_ratio": share / background if background else np.nan,
            }
        )
    return pd.DataFrame(
        rows, columns=["group", "n_pairs", "coessential_share", "background_share", "coessentiality_ratio"]
    )


def published_agreement(groups: pd.Series, published: pd.DataFrame) -> tuple[float, pd.DataFrame]:
    """Agreement with published perturbation clusters (Replogle 2022 Table S3: ``gene``, ``cluster_label``).

    Returns
    -------
    ari, recovery
        Adjusted Rand index over the perturbations in both (our singletons each their own cluster; published
        non-members likewise), and per published cluster with ≥ 2 members here: its size, the best-matching
        group and the share of the cluster's members that group holds (``recovery``).
    """
    from sklearn.metrics import adjusted_rand_score

    labels = published.drop_duplicates("gene").set_index("gene")["cluster_label"].astype(str)
    common = [p for p in groups.index if p in labels.index]
    ours = [g if g != SINGLETON else f"_single_{p}" for p, g in groups.loc[common].items()]
    ari = float(adjusted_rand_score(labels.loc[common], ours)) if len(common) > 1 else float("nan")
    rows = []
    for cluster, members in labels.loc[common].groupby(labels.loc[common]).groups.items():
        members = list(members)
        if len(members) < 2:
            continue
        hit = groups.loc[members]
        counts = hit[hit != SINGLETON].value_counts()
        best = counts.index[0] if len(counts) else SINGLETON
        rows.append(
            {
                "published_cluster": cluster,
                "size_here": len(members),
                "best_group": best,
                "recovery": float(counts.iloc[0] / len(members)) if len(counts) else 0.0,
            }
        )
    return ari, pd.DataFrame(rows, columns=["published_cluster", "size_here", "best_group", "recovery"])


def matched_clusters(groups: pd.Series, published: pd.DataFrame) -> pd.Series:
    """Per group: the published cluster holding most of its members, with the share (``label (k/n)``)."""
    labels = published.drop_duplicates("gene").set_index("gene")["cluster_label"].astype(str)
    out = {}
    for g in sorted(set(groups) - {SINGLETON}):
        members = [p for p in groups.index[groups == g] if p in labels.index]
        if not members:
            out[g] = ""
            continue
        counts = labels.loc[members].value_counts()
        out[g] = f"{counts.index[0]} ({counts.iloc[0]}/{(groups == g).sum()})"
    return pd.Series(out, dtype=object)


def programme_scores(
    profiles: pd.DataFrame,
    programmes: dict,
    *,
    kind: str,
    n_random: int = 500,
    seed: int = 0,
    min_genes: int = 5,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Each perturbation scored against each generic programme.

    Expression (``kind="expression"``, profiles = Δ): the mean Δ over the programme's measured genes, against
    ``n_random`` random gene sets of the same size (two-sided empirical p, BH over perturbation × programme);
    ``score`` is that mean as a z-score against the random sets. Signatures (profiles = 0/1 up-set membership):
    hypergeometric over-representation of the programme in the up set; ``score`` = observed / expected overlap.
    Programmes with fewer than ``min_genes`` genes in the universe are skipped.

    Returns a long table: ``perturbation``, ``programme``, ``n_genes``, ``score``, ``p``, ``fdr``, ``significant``.
    """
    rng = np.random.default_rng(seed)
    genes = profiles.columns
    values = profiles.to_numpy(dtype=np.float64)
    rows = []
    for name, members in programmes.items():
        idx = np.flatnonzero(genes.isin(list(members)))
        if idx.size < min_genes:
            continue
        if kind == "expression":
            observed = values[:, idx].mean(1)
            draws = np.vstack([rng.choice(genes.size, idx.size, replace=False) for _ in range(n_random)])
            null = values[:, draws].mean(2)  # perturbations × n_random
            mu, sd = null.mean(1), null.std(1)
            z = (observed - mu) / np.where(sd > 0, sd, np.nan)
            exceed = (np.abs(null - mu[:, None]) >= np.abs(observed - mu)[:, None]).sum(1)
            p = (1 + exceed) / (1 + n_random)
            score = z
        else:
            N, K = genes.size, idx.size
            n = values.sum(1)
            k = values[:, idx].sum(1)
            p = hypergeom.sf(k - 1, N, K, n)
            score = np.where(n > 0, k / np.maximum(n * K / N, 1e-12), np.nan)
        rows += [
            {"perturbation": q, "programme": name, "n_genes": int(idx.size), "score": float(s), "p": float(v)}
            for q, s, v in zip(profiles.index, score, p)
        ]
    table = pd.DataFrame(rows, columns=["perturbation", "programme", "n_genes", "score", "p"])
    table["fdr"] = false_discovery_control(table["p"]) if len(table) else []
    table["significant"] = table["fdr"] < alpha
    if kind != "expression":
        table["significant"] &= table["score"] > 1
    return table


def specific_sets(hallmark: dict) -> dict[str, frozenset]:
    """The Hallmark sets that are not part of any generic programme: the *specific* alternatives."""
    generic = {t for parts in GENERIC_PROGRAMMES.values() for t in parts}
    return {name: frozenset(genes) for name, genes in hallmark.items() if name not in generic}


def generic_calls(scores: pd.DataFrame, specific: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per perturbation: the best-scoring significant generic programme (``generic_programme``, empty if none).

    ``collapses`` is True where a generic programme is significant and, when ``specific`` is given
    (per-perturbation scores of non-generic sets, same test: ``perturbation``, ``programme``, ``fdr``), no
    specific set is more significant than it: the response reads as a generic stress programme rather than a
    specific one. ``best_specific`` names the most significant specific set and ``specific_fdr`` its FDR.
    """
    sig = scores[scores["significant"]].copy()
    sig["strength"] = sig["score"].abs()
    best = sig.sort_values(["fdr", "strength"], ascending=[True, False]).drop_duplicates("perturbation")
    out = pd.DataFrame({"perturbation": scores["perturbation"].unique()})
    out = out.merge(best[["perturbation", "programme", "fdr", "score"]], on="perturbation", how="left")
    out = out.rename(columns={"programme": "generic_programme", "fdr": "programme_fdr", "score": "programme_score"})
    out["generic_programme"] = out["generic_programme"].fillna("")
    collapses = out["generic_programme"] != ""
    out["best_specific"], out["specific_fdr"] = "", np.nan
    if specific is not None and len(specific):
        top = specific.sort_values("fdr").drop_duplicates("perturbation").set_index("perturbation")
        out["best_specific"] = out["perturbation"].map(top["programme"]).fillna("")
        out["specific_fdr"] = out["perturbation"].map(top["fdr"])
        collapses &= out["programme_fdr"].fillna(1.0) <= out["specific_fdr"].fillna(1.0)
    out["collapses"] = collapses
    return out
