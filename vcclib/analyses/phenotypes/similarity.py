"""Similarity of perturbation effects, one API for every data kind.

:func:`effect_similarity` takes either expression data (an AnnData in the project schema, log1p X) or signature
data (a :class:`vcclib.data.signatures.Signatures` collection of ranked gene lists) and returns an
:class:`EffectSimilarity`: a perturbation × perturbation matrix on a *similarity* scale (larger = more alike)
and the matching *distance* the clustering uses.

Methods
-------
Expression (effect Δ = pseudobulk of the perturbation − pseudobulk of control, mean of log1p over cells, every
measured gene):

* ``correlation``: Pearson correlation of the Δ profiles across genes; distance 1 − r;
* ``cosine``: cosine of the Δ profiles; distance 1 − cos;
* ``edistance``: E-distance between the perturbations' cells (:func:`vcclib.metrics.distances.edistance`,
  scPerturb convention, top principal components of all cells, all cells, in closed form);
  the distance is the E-distance clipped at 0, the similarity ``1 − E / max E``.

Signatures:

* ``jaccard``: Jaccard index of the significant (up) sets; distance 1 − J (two empty sets: J = 0);
* ``rbo``: rank-biased overlap of the rankings (Webber, Moffat & Zobel 2010; extrapolated RBO of the rankings
  truncated to ``depth`` genes, persistence ``p``); distance 1 − RBO.

Written here rather than taken from a package: the ``rbo`` package on PyPI compares one pair at a time in Python
(585 × 585 pairs × bootstraps is too slow), so :func:`rank_biased_overlap` computes all pairs at once with an
exact incremental update of the overlaps at every depth (tested against the definition).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from vcclib.errors import VccError

EXPRESSION_METHODS = ("correlation", "cosine", "edistance")
SIGNATURE_METHODS = ("jaccard", "rbo")


class SimilarityError(VccError, ValueError):
    """A similarity that cannot be computed as asked (wrong method for the data kind, too few perturbations)."""


def is_signatures(data) -> bool:
    """Whether ``data`` is a signature collection (ranked gene lists) rather than expression data."""
    return hasattr(data, "entries") and hasattr(data, "contexts")


@dataclass
class EffectSimilarity:
    """A perturbation × perturbation similarity and its distance.

    Attributes
    ----------
    similarity, distance
        Square DataFrames indexed by perturbation (similarity: larger = more alike; distance ≥ 0, 0 on the
        diagonal).
    method
        The method that made them.
    kind
        ``expression`` or ``signatures``.
    """

    similarity: pd.DataFrame
    distance: pd.DataFrame
    method: str
    kind: str

    @property
    def perturbations(self) -> list[str]:
        """The perturbations compared, in matrix order."""
        return self.similarity.index.tolist()

    def subset(self, perturbations) -> EffectSimilarity:
        """The similarity restricted to ``perturbations`` (in that order)."""
        keep = list(perturbations)
        return EffectSimilarity(self.similarity.loc[keep, keep], self.distance.loc[keep, keep], self.method, self.kind)


# --- expression -----------------------------------------------------------------------------------------------


@dataclass
class ExpressionEffects:
    """Cells of one expression dataset grouped for effect computations (built once, reused by bootstraps).

    Attributes
    ----------
    X
        CSR or dense cells × genes (log1p).
    labels
        Each cell's perturbation label.
    control
        The control label.
    perturbations
        The perturbations compared (sorted, control excluded).
    genes
        Gene names.
    """

    X: object
    labels: np.ndarray
    control: str
    perturbations: list[str]
    genes: list[str]

    @classmethod
    def from_anndata(
        cls, adata, perturbations=None, perturbation_column: str = "perturbation", control_label: str | None = None
    ) -> ExpressionEffects:
        """Effects of an AnnData in the project schema (log1p X; ``perturbations`` default: all but control)."""
        from vcclib.metrics.pseudobulk import as_float_matrix

        control = control_label or str(adata.uns["vcc"]["control_label"])
        labels = adata.obs[perturbation_column].astype(str).to_numpy()
        if control not in set(labels):
            raise SimilarityError(f"control label {control!r} is missing from obs[{perturbation_column!r}]")
        present = sorted(set(labels) - {control})
        if perturbations is None:
            perturbations = present
        missing = sorted(set(perturbations) - set(present))
        if missing:
            raise SimilarityError(f"perturbations {missing[:5]} are not in the data")
        return cls(as_float_matrix(adata.X), labels, control, sorted(perturbations), list(map(str, adata.var_names)))

    def pcs(self, n_pcs: int = 20, seed: int = 0) -> np.ndarray:
        """Top principal components of all cells (:func:`vcclib.analyses.null_effects.pca_embedding`); cached."""
        from vcclib.analyses.null_effects import pca_embedding

        cache = self.__dict__.setdefault("_pcs", {})
        if (n_pcs, seed) not in cache:
            cache[(n_pcs, seed)] = pca_embedding(self.X, n_pcs, seed)
        return cache[(n_pcs, seed)]

    def cell_groups(self) -> tuple[np.ndarray, list[str]]:
        """Each cell's code into ``[control, *perturbations]`` (−1 for cells of other perturbations)."""
        names = [self.control, *self.perturbations]
        lookup = {n: i for i, n in enumerate(names)}
        codes = np.fromiter((lookup.get(v, -1) for v in self.labels), dtype=np.int64, count=self.labels.size)
        return codes, names

    def deltas(self, weights: np.ndarray | None = None, codes: np.ndarray | None = None) -> pd.DataFrame:
        """Δ = pseudobulk(perturbation) − pseudobulk(control), perturbations × genes.

        ``weights`` (one per cell, e.g. bootstrap multiplicities) weigh each cell in its group's mean; ``codes``
        replace the cells' group codes (e.g. permuted labels).
        """
        if codes is None:
            codes, _ = self.cell_groups()
        n_groups = len(self.perturbations) + 1
        keep = codes >= 0
        w = np.ones(codes.size) if weights is None else np.asarray(weights, dtype=np.float64)
        keep &= w > 0
        rows, cols, vals = codes[keep], np.flatnonzero(keep), w[keep]
        totals = np.bincount(rows, weights=vals, minlength=n_groups)
        if np.any(totals == 0):
            empty = [([self.control, *self.perturbations])[i] for i in np.flatnonzero(totals == 0)]
            raise SimilarityError(f"no cells for {empty[:3]}")
        M = sp.csr_matrix((vals / totals[rows], (rows, cols)), shape=(n_groups, codes.size))
        means = M @ self.X
        means = means.toarray() if sp.issparse(means) else np.asarray(means)
        return pd.DataFrame(means[1:] - means[0], index=self.perturbations, columns=self.genes)


def _correlation(D: np.ndarray) -> np.ndarray:
    centred = D - D.mean(axis=1, keepdims=True)
    return _cosine(centred)


def _cosine(D: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(D, axis=1)
    norms[norms == 0] = np.nan
    unit = D / norms[:, None]
    S = np.clip(unit @ unit.T, -1.0, 1.0)
    S = np.nan_to_num(S, nan=0.0)
    np.fill_diagonal(S, 1.0)
    return S


def profile_similarity(deltas: pd.DataFrame, method: str = "correlation") -> EffectSimilarity:
    """Correlation or cosine between effect profiles (rows of ``deltas``)."""
    if method not in ("correlation", "cosine"):
        raise SimilarityError(f"profile similarity {method!r}: use 'correlation' or 'cosine'")
    D = deltas.to_numpy(dtype=np.float64)
    S = _correlation(D) if method == "correlation" else _cosine(D)
    return _wrap(S, 1.0 - S, deltas.index, method, "expression")


def edistance_similarity(
    effects: ExpressionEffects, *, n_pcs: int = 20, seed: int = 0, weights=None, codes=None
) -> EffectSimilarity:
    """Pairwise E-distance between the perturbations' cells (scPerturb convention) in the top PCs of all cells.

    With squared Euclidean distances the E-distance has a closed form in the groups' means and spreads,
    E = 2‖μ_a − μ_b‖² − 2 v_a / (N_a − 1) − 2 v_b / (N_b − 1) (v: mean squared distance to the group mean), equal to
    :func:`vcclib.metrics.distances.edistance` (``scperturb``) on all cells, at O(cells) cost (tested against it).
    ``weights`` and ``codes`` as in :meth:`ExpressionEffects.deltas`.
    """
    Z = effects.pcs(n_pcs, seed)
    if codes is None:
        codes, _ = effects.cell_groups()
    w = np.ones(codes.size) if weights is None else np.asarray(weights, dtype=np.float64)
    keep = (codes >= 0) & (w > 0)
    k = len(effects.perturbations) + 1
    c, w, Z = codes[keep], w[keep], Z[keep]
    N = np.bincount(c, weights=w, minlength=k)
    mu = np.vstack([np.bincount(c, weights=w * Z[:, j], minlength=k) for j in range(Z.shape[1])]).T / N[:, None]
    sq = np.bincount(c, weights=w * (Z * Z).sum(1), minlength=k) / N
    v = sq - (mu * mu).sum(1)
    spread = np.where(N > 1, v / np.maximum(N - 1, 1e-12), 0.0)[1:]
    M = mu[1:]
    gram = M @ M.T
    d2 = np.diag(gram)[:, None] + np.diag(gram)[None, :] - 2 * gram
    E = np.maximum(2 * d2 - 2 * spread[:, None] - 2 * spread[None, :], 0.0)
    np.fill_diagonal(E, 0.0)
    top = E.max() if E.max() > 0 else 1.0
    return _wrap(1.0 - E / top, E, effects.perturbations, "edistance", "expression")


# --- signatures -----------------------------------------------------------------------------------------------


@dataclass
class SignatureLists:
    """Signatures of one context as integer arrays (gene codes), ready for all-pairs comparisons.

    Attributes
    ----------
    perturbations
        Row names.
    genes
        The gene universe (union of every ranking and up set).
    rankings
        (perturbations × depth) gene codes, best first; −1 pads a shorter ranking.
    up
        CSR indicator (perturbations × genes) of the significant up sets.
    """

    perturbations: list[str]
    genes: list[str]
    rankings: np.ndarray
    up: sp.csr_matrix

    @classmethod
    def from_signatures(cls, signatures, context: str, perturbations=None, depth: int = 200) -> SignatureLists:
        """The signatures of ``context`` (rankings truncated to ``depth``) as integer arrays."""
        names = signatures.perturbations_in(context) if perturbations is None else list(perturbations)
        sigs = [signatures.get(p, context) for p in names]
        universe = sorted(set().union(*[set(s.ranking) | set(s.up) for s in sigs])) if sigs else []
        code = {g: i for i, g in enumerate(universe)}
        R = np.full((len(sigs), depth), -1, dtype=np.int64)
        rows, cols = [], []
        for i, s in enumerate(sigs):
            top = [code[g] for g in s.ranking[:depth]]
            R[i, : len(top)] = top
            members = [code[g] for g in s.up]
            rows += [i] * len(members)
            cols += members
        up = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(sigs), len(universe)))
        return cls(names, universe, R, up)

    def keep_genes(self, keep: np.ndarray) -> SignatureLists:
        """The lists with only the genes where ``keep`` is True (rankings keep their order, shorter)."""
        R = np.full_like(self.rankings, -1)
        for i, row in enumerate(self.rankings):
            kept = row[(row >= 0) & keep[np.maximum(row, 0)]]
            R[i, : kept.size] = kept
        up = self.up @ sp.diags(keep.astype(np.float64))
        return SignatureLists(self.perturbations, self.genes, R, sp.csr_matrix(up))

    def shuffled(self, rng: np.random.Generator) -> SignatureLists:
        """The null of signatures that share nothing beyond how often each gene is hit.

        Each signature's ranking and up set are replaced by genes drawn without replacement with probability
        proportional to how many signatures rank the gene (plus one), independently per signature (sizes
        and orders kept; Gumbel top-k sampling, vectorised). Frequently hit genes (generic responders) make null
        signatures overlap by chance as often as they do in the data.
        """
        n, k = self.rankings.shape
        n_genes = len(self.genes)
        valid = self.rankings >= 0
        weights = np.bincount(self.rankings[valid], minlength=n_genes) + 1.0
        up_sizes = np.diff(self.up.tocsr().indptr)
        depth = min(k, n_genes)
        R = np.full_like(self.rankings, -1)
        R[:, :depth] = np.where(valid[:, :depth], _weighted_draws(weights, n, depth, rng), -1)
        size = int(min(up_sizes.max(initial=0), n_genes))
        second = _weighted_draws(weights, n, size, rng)
        take = np.arange(size)[None, :] < up_sizes[:, None]
        rows = np.repeat(np.arange(n), take.sum(1))
        U = sp.csr_matrix((np.ones(rows.size), (rows, second[take])), shape=self.up.shape)
        return SignatureLists(self.perturbations, self.genes, R, U)


def _weighted_draws(weights: np.ndarray, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` ordered draws of ``size`` items without replacement, P(item) ∝ ``weights`` (Gumbel top-k)."""
    if size == 0:
        return np.zeros((n, 0), dtype=np.int64)
    keys = np.log(weights)[None, :] + rng.gumbel(size=(n, weights.size))
    top = np.argpartition(-keys, size - 1, axis=1)[:, :size]
    order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def jaccard_matrix(up: sp.csr_matrix) -> np.ndarray:
    """Jaccard index of every pair of rows of a 0/1 indicator (two empty sets: 0; diagonal 1)."""
    U = sp.csr_matrix(up, dtype=np.float64)
    U.data[:] = 1.0
    inter = np.asarray((U @ U.T).todense())
    sizes = np.asarray(U.sum(axis=1)).ravel()
    union = sizes[:, None] + sizes[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        J = np.where(union > 0, inter / union, 0.0)
    np.fill_diagonal(J, 1.0)
    return J


def rank_biased_overlap(rankings: np.ndarray, p: float = 0.98) -> np.ndarray:
    """Extrapolated rank-biased overlap (RBO_ext, Webber et al. 2010, eq. 32) between every pair of rankings.

    Parameters
    ----------
    rankings
        (n × k) integer item codes, best first, all truncated to depth ``k``; −1 pads a shorter list (it then
        counts as a list of length ``k`` whose padded positions match nothing).
    p
        Persistence: the weight of depth d is (1 − p) p^(d−1) (p = 0.98: expected depth 50).

    Returns
    -------
    numpy.ndarray
        (n × n) RBO in [0, 1], 1 on the diagonal for non-empty lists.

    Notes
    -----
    RBO_ext = (1 − p) Σ_d p^(d−1) X_d / d + p^k X_k / k, with X_d the overlap of the two top-d lists. An item
    at rank r in A and s in B counts in X_d for every d ≥ max(r, s), so the sum is Σ over shared items of
    C(max(r, s)) = min(C(r), C(s)) with C(m) = Σ_{d=m}^{k} p^(d−1) / d decreasing. With W[a, item] = C(rank of
    the item in a) (0 when absent), row a of the sum is Σ over a's items of min(W[a, i], W[b, i]) for every b at
    once: n vectorised gathers of (n × k) (upper triangle), O(k · n²) without a Python loop over depths.
    """
    R = np.asarray(rankings, dtype=np.int64)
    n, k = R.shape
    if k == 0:
        return np.eye(n)
    valid = R >= 0
    items, codes = np.unique(R[valid], return_inverse=True)
    depth = np.arange(1, k + 1)
    C = np.cumsum(((p ** (depth - 1)) / depth)[::-1])[::-1]  # C[m-1] = sum_{d=m}^{k} p^(d-1)/d
    rows, ranks = np.nonzero(valid)
    W = np.zeros((n, items.size + 1), dtype=np.float64)
    W[rows, codes] = C[ranks]
    cols = np.full((n, k), items.size, dtype=np.int64)  # the last column is all zero: padding matches nothing
    cols[rows, ranks] = codes
    acc = np.zeros((n, n), dtype=np.float64)
    for a in range(n):  # upper triangle, mirrored below
        acc[a, a:] = np.minimum(W[a:, cols[a]], W[a, cols[a]][None, :]).sum(1)
    acc = np.triu(acc) + np.triu(acc, 1).T
    T = sp.csr_matrix((np.ones(rows.size), (rows, codes)), shape=(n, items.size + 1))
    X = np.asarray((T @ T.T).todense())
    S = (1 - p) * acc + (X / k) * p**k
    return np.clip(S, 0.0, 1.0)


def signature_similarity(lists: SignatureLists, method: str = "rbo", p: float = 0.98) -> EffectSimilarity:
    """Jaccard of the up sets or RBO of the rankings between every pair of signatures."""
    if method == "jaccard":
        S = jaccard_matrix(lists.up)
    elif method == "rbo":
        S = rank_biased_overlap(lists.rankings, p)
    else:
        raise SimilarityError(f"signature similarity {method!r}: use one of {SIGNATURE_METHODS}")
    return _wrap(S, 1.0 - S, lists.perturbations, method, "signatures")


# --- one entry point ------------------------------------------------------------------------------------------


def _wrap(S, D, names, method, kind) -> EffectSimilarity:
    D = np.maximum(np.asarray(D, dtype=np.float64), 0.0)
    D = (D + D.T) / 2
    np.fill_diagonal(D, 0.0)
    names = list(names)
    return EffectSimilarity(
        pd.DataFrame(S, index=names, columns=names), pd.DataFrame(D, index=names, columns=names), method, kind
    )


def effect_similarity(
    data,
    method: str | None = None,
    *,
    perturbations=None,
    context: str | None = None,
    depth: int = 200,
    p: float = 0.98,
    n_pcs: int = 20,
    seed: int = 0,
) -> EffectSimilarity:
    """Similarity of effects between perturbations, for expression or signature data.

    Parameters
    ----------
    data
        AnnData (log1p, project schema), :class:`ExpressionEffects`, a ``Signatures`` collection, or
        :class:`SignatureLists`.
    method
        Expression: ``correlation`` (default), ``cosine``, ``edistance``; signatures: ``rbo`` (default),
        ``jaccard``.
    perturbations
        The perturbations to compare (default: all; control excluded).
    context
        Signatures: the cell line or type (required when the collection has more than one).
    depth, p
        RBO truncation depth and persistence.
    n_pcs, seed
        E-distance settings (principal components of all cells, PCA seed).
    """
    if is_signatures(data) or isinstance(data, SignatureLists):
        method = method or "rbo"
        if method not in SIGNATURE_METHODS:
            raise SimilarityError(f"{method!r} is not a signature similarity; use one of {SIGNATURE_METHODS}")
        if not isinstance(data, SignatureLists):
            if context is None:
                if len(data.contexts) != 1:
                    raise SimilarityError(f"give a context: {data.contexts}")
                context = data.contexts[0]
            data = SignatureLists.from_signatures(data, context, perturbations, depth)
        return signature_similarity(data, method, p)
    method = method or "correlation"
    if method not in EXPRESSION_METHODS:
        raise SimilarityError(f"{method!r} is not an expression similarity; use one of {EXPRESSION_METHODS}")
    effects = data if isinstance(data, ExpressionEffects) else ExpressionEffects.from_anndata(data, perturbations)
    if method == "edistance":
        return edistance_similarity(effects, n_pcs=n_pcs, seed=seed)
    return profile_similarity(effects.deltas(), method)
