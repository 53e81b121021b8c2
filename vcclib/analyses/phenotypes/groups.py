"""Groups of perturbations with a shared phenotype: clustering, bootstrap stability, a permutation null.

Clustering (:func:`cluster`) works on an :class:`~vcclib.analyses.phenotypes.similarity.EffectSimilarity`:

* ``hierarchical``: average linkage on the distance (scipy), cut at distance ``threshold`` (default: 1 − 0.3,
  i.e. members correlate / overlap at 0.3 on average);
* ``leiden``: Leiden communities (igraph's ``community_leiden``, modularity, ``resolution``) of the
  ``n_neighbors``-nearest-neighbour graph weighted by similarity (the graph-based clustering of scanpy, without
  the cell-level preprocessing). Needs python-igraph; :func:`leiden_available` says whether it is installed.

A group is a set of ≥ ``min_size`` perturbations; the others are singletons (group ``""``).

Is a group more than noise? Two checks, both recomputing the whole clustering:

* **stability** (:func:`bootstrap_stability`): the data are resampled (cells within each perturbation with
  replacement for expression; ``gene_fraction`` of the genes without replacement for signatures), the clustering
  is redone, and each group's stability is Hennig's (2007, ``fpc::clusterboot``) mean best Jaccard overlap with
  the resampled groups; each perturbation's stability is how often it stays with its group's other members;
* **strength vs a permutation null** (:func:`null_strengths`): group strength = mean similarity within the group −
  mean similarity of its members to the other perturbations; the null is the strength of the strongest group the
  same clustering finds in each of ``n_null`` datasets without shared effects (expression: cell labels permuted
  among the perturbed cells; signatures: each signature's genes redrawn at the genes' observed hit frequencies,
  sizes kept). A group's ``null_p`` = (1 + #{null datasets whose strongest group is at least as strong}) /
  (1 + ``n_null``): a max-statistic test, so it holds for every group of a dataset at once and resolves to
  1 / (1 + ``n_null``) however few groups the null data hold (``n_null`` ≥ 20 for p < 0.05).

:func:`call_groups` keeps a group when ``null_p < alpha`` and ``stability >= min_stability``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vcclib.analyses.phenotypes.similarity import (
    EffectSimilarity,
    ExpressionEffects,
    SignatureLists,
    edistance_similarity,
    profile_similarity,
    signature_similarity,
)
from vcclib.errors import OptionalDependencyError

SINGLETON = ""
METHODS = ("hierarchical", "leiden")


def leiden_available() -> bool:
    """Whether graph-based (Leiden) clustering can run here (python-igraph installed)."""
    try:
        import igraph  # noqa: F401
    except ImportError:
        return False
    return True


def _relabel(raw: np.ndarray, names: list[str], min_size: int, prefix: str = "G") -> pd.Series:
    """Groups numbered by size (G1 largest); groups smaller than ``min_size`` become singletons."""
    labels = pd.Series(raw, index=names)
    sizes = labels.value_counts()
    big = [c for c in sizes.index if sizes[c] >= min_size]
    order = sorted(big, key=lambda c: (-sizes[c], min(labels.index[labels == c])))
    mapping = {c: f"{prefix}{i + 1}" for i, c in enumerate(order)}
    return labels.map(lambda c: mapping.get(c, SINGLETON))


def cluster(
    sim: EffectSimilarity,
    method: str = "hierarchical",
    *,
    threshold: float = 0.7,
    n_neighbors: int = 5,
    resolution: float = 1.0,
    min_size: int = 2,
    seed: int = 0,
) -> pd.Series:
    """Group the perturbations of ``sim``.

    Parameters
    ----------
    method
        ``hierarchical`` (average linkage, cut at ``threshold`` on the distance scale) or ``leiden``.
    threshold
        Hierarchical cut (distance). For E-distance the distance is rescaled to [0, 1] by its maximum first.
    n_neighbors, resolution
        Leiden: neighbours per perturbation in the graph, and the modularity resolution.
    min_size
        Smallest group; smaller clusters are singletons (``""``).

    Returns
    -------
    pandas.Series
        Group label per perturbation (``G1`` the largest group; ``""`` a singleton).
    """
    names = sim.perturbations
    if len(names) < 2:
        return pd.Series([SINGLETON] * len(names), index=names, dtype=object)
    if method == "hierarchical":
        from scipy.cluster.hierarchy import fcluster, linkage
        from scipy.spatial.distance import squareform

        D = sim.distance.to_numpy(dtype=np.float64)
        if sim.method == "edistance":
            D = D / D.max() if D.max() > 0 else D
        Z = linkage(squareform(D, checks=False), method="average")
        raw = fcluster(Z, t=threshold, criterion="distance")
    elif method == "leiden":
        raw = _leiden(sim, n_neighbors, resolution, seed)
    else:
        raise ValueError(f"clustering {method!r}: use one of {METHODS}")
    return _relabel(np.asarray(raw), names, min_size)


def _leiden(sim: EffectSimilarity, n_neighbors: int, resolution: float, seed: int) -> np.ndarray:
    if not leiden_available():
        raise OptionalDependencyError("Leiden clustering needs python-igraph: pip install igraph")
    import igraph as ig

    S = sim.similarity.to_numpy(dtype=np.float64).copy()
    n = S.shape[0]
    np.fill_diagonal(S, -np.inf)
    k = int(min(n_neighbors, n - 1))
    edges = {}
    for i in range(n):
        for j in np.argsort(-S[i])[:k]:
            w = S[i, j]
            if np.isfinite(w) and w > 0:
                key = (min(i, j), max(i, j))
                edges[key] = max(edges.get(key, 0.0), float(w))
    graph = ig.Graph(n=n, edges=list(edges), directed=False)
    weights = list(edges.values())
    import random

    state = random.getstate()
    random.seed(seed)  # igraph draws from Python's random module
    try:
        parts = graph.community_leiden(
            objective_function="modularity", weights=weights or None, resolution=resolution, n_iterations=-1
        )
    finally:
        random.setstate(state)
    return np.asarray(parts.membership)


def group_strength(sim: EffectSimilarity, groups: pd.Series) -> pd.Series:
    """Per group: mean within-group similarity − mean similarity of its members to the other perturbations."""
    S = sim.similarity.loc[groups.index, groups.index].to_numpy(dtype=np.float64)
    out = {}
    for g in sorted(set(groups) - {SINGLETON}):
        inside = (groups == g).to_numpy()
        if inside.sum() < 2 or inside.all():  # a group of everything has no outside: strength undefined
            continue
        block = S[np.ix_(inside, inside)]
        within = (block.sum() - np.trace(block)) / (inside.sum() * (inside.sum() - 1))
        between = S[np.ix_(inside, ~inside)].mean() if (~inside).any() else 0.0
        out[g] = float(within - between)
    return pd.Series(out, dtype=float)


# --- resampling ---------------------------------------------------------------------------------------------


class Resampler:
    """Rebuilds a similarity from resampled or null data, for one data kind and method.

    Parameters
    ----------
    data
        :class:`ExpressionEffects` or :class:`SignatureLists`.
    method
        The similarity method (as in :func:`~vcclib.analyses.phenotypes.similarity.effect_similarity`).
    gene_fraction
        Signatures: share of genes kept in each resample.
    p, n_pcs
        RBO persistence; principal components of the E-distance (PCA of all cells, computed once).
    """

    def __init__(
        self, data, method: str, *, gene_fraction: float = 0.8, p: float = 0.98, n_pcs: int = 20, seed: int = 0
    ):
        self.data, self.method = data, method
        self.gene_fraction, self.p, self.n_pcs, self.seed = gene_fraction, p, n_pcs, seed

    def _expression(self, weights=None, codes=None) -> EffectSimilarity:
        if self.method == "edistance":
            return edistance_similarity(self.data, n_pcs=self.n_pcs, seed=self.seed, weights=weights, codes=codes)
        return profile_similarity(self.data.deltas(weights=weights, codes=codes), self.method)

    def original(self) -> EffectSimilarity:
        """The similarity of the data as they are."""
        if isinstance(self.data, SignatureLists):
            return signature_similarity(self.data, self.method, self.p)
        return self._expression()

    def bootstrap(self, rng: np.random.Generator) -> EffectSimilarity:
        """Cells resampled with replacement within each group (expression) or a gene subsample (signatures)."""
        if isinstance(self.data, SignatureLists):
            keep = rng.random(len(self.data.genes)) < self.gene_fraction
            return signature_similarity(self.data.keep_genes(keep), self.method, self.p)
        codes, _ = self.data.cell_groups()
        weights = np.zeros(codes.size)
        for c in np.unique(codes[codes >= 0]):
            idx = np.flatnonzero(codes == c)
            weights += np.bincount(rng.choice(idx, size=idx.size, replace=True), minlength=codes.size)
        return self._expression(weights=weights)

    def null(self, rng: np.random.Generator) -> EffectSimilarity:
        """Data without shared effects: perturbed cells' labels permuted (expression) or redrawn genes (signatures).

        See :meth:`~vcclib.analyses.phenotypes.similarity.SignatureLists.shuffled` for the signature null.
        """
        if isinstance(self.data, SignatureLists):
            return signature_similarity(self.data.shuffled(rng), self.method, self.p)
        codes, _ = self.data.cell_groups()
        perturbed = np.flatnonzero(codes > 0)
        permuted = codes.copy()
        permuted[perturbed] = rng.permutation(codes[perturbed])
        return self._expression(codes=permuted)


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def bootstrap_stability(
    resampler: Resampler, groups: pd.Series, *, n_boot: int = 20, seed: int = 0, **cluster_args
) -> tuple[pd.Series, pd.Series]:
    """Stability of each group and each perturbation under resampling (see the module docstring).

    Returns
    -------
    group_stability, perturbation_stability
        Per group: mean over resamples of the best Jaccard overlap with a resampled group (Hennig 2007).
        Per perturbation in a group: mean over resamples and over its group's other members of "still in the same
        group"; NaN for singletons.
    """
    rng = np.random.default_rng(seed)
    names = groups.index.tolist()
    labels = groups.to_numpy()
    members = {g: np.flatnonzero(labels == g) for g in set(labels) - {SINGLETON}}
    best = {g: [] for g in members}
    together = np.zeros(len(names))
    for _ in range(n_boot):
        boot = cluster(resampler.bootstrap(rng), **cluster_args).reindex(names).fillna(SINGLETON).to_numpy()
        codes = {g: np.flatnonzero(boot == g) for g in set(boot) - {SINGLETON}}
        for g, m in members.items():
            best[g].append(max((_jaccard(set(m), set(b)) for b in codes.values()), default=0.0))
            same = (boot[m][:, None] == boot[m][None, :]) & (boot[m] != SINGLETON)[:, None]
            np.fill_diagonal(same, False)
            together[m] += same.sum(1) / max(m.size - 1, 1)
    together = pd.Series(together, index=names)
    group_stab = pd.Series({g: float(np.mean(v)) for g, v in best.items()}, dtype=float)
    pert_stab = (together / max(n_boot, 1)).where(groups != SINGLETON)
    return group_stab, pert_stab


def null_strengths(resampler: Resampler, *, n_null: int = 20, seed: int = 0, **cluster_args) -> np.ndarray:
    """Strength of the strongest group the clustering finds in each of ``n_null`` null datasets (−inf: none)."""
    rng = np.random.default_rng(seed + 7919)
    values = []
    for _ in range(n_null):
        sim = resampler.null(rng)
        strengths = group_strength(sim, cluster(sim, **cluster_args))
        values.append(float(strengths.max()) if len(strengths) else -np.inf)
    return np.asarray(values, dtype=float)


def null_pvalues(strength: pd.Series, null: np.ndarray) -> pd.Series:
    """Max-statistic p: (1 + #{null datasets whose strongest group ≥ s}) / (1 + #null datasets)."""
    return strength.map(lambda s: (1 + int((null >= s).sum())) / (1 + null.size)).astype(float)


def call_groups(
    groups: pd.Series,
    group_stability: pd.Series,
    strength: pd.Series,
    p_values: pd.Series,
    *,
    alpha: float = 0.05,
    min_stability: float = 0.5,
) -> pd.DataFrame:
    """One row per group found: size, strength, null p, stability, ``reported`` (more than noise)."""
    rows = []
    for g in sorted(set(groups) - {SINGLETON}, key=lambda x: int(x[1:]) if x[1:].isdigit() else x):
        rows.append(
            {
                "group": g,
                "size": int((groups == g).sum()),
                "strength": float(strength.get(g, np.nan)),
                "null_p": float(p_values.get(g, np.nan)),
                "stability": float(group_stability.get(g, np.nan)),
            }
        )
    table = pd.DataFrame(rows, columns=["group", "size", "strength", "null_p", "stability"])
    table["reported"] = (table["null_p"] < alpha) & (table["stability"] >= min_stability)
    return table


def find_groups(
    data,
    method: str = "correlation",
    *,
    clustering: str = "hierarchical",
    n_boot: int = 20,
    n_null: int = 20,
    alpha: float = 0.05,
    min_stability: float = 0.5,
    seed: int = 0,
    exclude=(),
    gene_fraction: float = 0.8,
    p: float = 0.98,
    n_pcs: int = 20,
    **cluster_args,
) -> dict:
    """Similarity, groups, stability and null of one dataset.

    Parameters
    ----------
    data
        :class:`ExpressionEffects` or :class:`SignatureLists` (perturbations to group; null-effect ones already
        removed, or listed in ``exclude``).
    exclude
        Perturbations kept apart (not clustered): the null-effect calls.

    Returns
    -------
    dict
        ``similarity`` (EffectSimilarity of the clustered perturbations), ``groups`` (Series; unreported groups
        are turned into singletons), ``raw_groups`` (the clustering before the calls), ``table``
        (:func:`call_groups`), ``perturbation_stability``, ``null`` (null strengths), ``settings``.
    """
    if exclude:
        keep = [q for q in data.perturbations if q not in set(exclude)]
        data = _restrict(data, keep)
    resampler = Resampler(data, method, gene_fraction=gene_fraction, p=p, n_pcs=n_pcs, seed=seed)
    args = {"method": clustering, **cluster_args}
    sim = resampler.original()
    raw = cluster(sim, **args)
    group_stab, pert_stab = bootstrap_stability(resampler, raw, n_boot=n_boot, seed=seed, **args)
    strength = group_strength(sim, raw)
    null = null_strengths(resampler, n_null=n_null, seed=seed, **args)
    table = call_groups(
        raw, group_stab, strength, null_pvalues(strength, null), alpha=alpha, min_stability=min_stability
    )
    kept = set(table.loc[table["reported"], "group"])
    groups = raw.where(raw.isin(kept), SINGLETON)
    settings = {
        "similarity": method,
        "clustering": clustering,
        "n_boot": n_boot,
        "n_null": n_null,
        "alpha": alpha,
        "min_stability": min_stability,
        "seed": seed,
        "excluded": list(exclude),
        **cluster_args,
    }
    return {
        "similarity": sim,
        "groups": groups,
        "raw_groups": raw,
        "table": table,
        "perturbation_stability": pert_stab,
        "null": null,
        "settings": settings,
    }


def _restrict(data, keep: list[str]):
    if isinstance(data, SignatureLists):
        rows = [data.perturbations.index(q) for q in keep]
        return SignatureLists(keep, data.genes, data.rankings[rows], data.up[rows])
    if isinstance(data, ExpressionEffects):
        return ExpressionEffects(data.X, data.labels, data.control, sorted(keep), data.genes)
    raise TypeError(f"cannot restrict {type(data).__name__}")
