"""MIN references that learn from the training perturbations.

They are the Ahlmann-Eltze linear model and its prior-knowledge variants, k-nearest neighbours over gene
embeddings, and a random forest on crafted features.

All predict a mean effect Δ (log1p pseudobulk minus the control mean) and add it to the query covariate's
control mean. A query whose target has no embedding in the chosen source (e.g. a target that is not a measured
gene, for the training-PCA embedding) gets the mean of the training perturbations' Δ and ``vcc_fallback=True``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vcclib.models import features
from vcclib.models.base import Model
from vcclib.models.baselines import simple as _simple  # noqa: F401  (registers the simple references first)
from vcclib.models.baselines.forest import ForestArrays
from vcclib.models.spec import PredictionTask, register_model
from vcclib.registry import ModelKind

LEARNED = ModelKind.LEARNED
#: What the feature-based models answer on their own terms: a target (or each target of a combination) that the
#: embedding covers, seen or not.
EMBEDDING_TASKS = (PredictionTask.UNSEEN_PERTURBATION, PredictionTask.COMBINATION)


def _training_pca(pseudobulk: np.ndarray, n_components: int) -> np.ndarray:
    """Gene coordinates on the top principal components of the genes × perturbations pseudobulk matrix."""
    centred = pseudobulk - pseudobulk.mean(axis=0, keepdims=True)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    k = max(1, min(n_components, len(s)))
    return u[:, :k] * s[:k]


_LINEAR_SOURCE = "Ahlmann-Eltze, Huber & Anders 2025, Nat. Methods (linear_perturbation_prediction-Paper)"


def _linear(name: str, gene: str, pert: str, needs: tuple[str, ...] = ()):
    """One variant of the linear model (its gene and perturbation embeddings)."""
    pieces = ["training-PCA" if e == "pca" else e for e in (gene, pert)]
    return register_model(
        name,
        kind=LEARNED,
        params={"gene_embedding": gene, "pert_embedding": pert},
        needs=needs,
        tasks=EMBEDDING_TASKS,
        source=_LINEAR_SOURCE,
        description=f"ridge bilinear Δ = G W P + b; gene embedding {pieces[0]}, perturbation embedding {pieces[1]}",
    )


@_linear("linear_go_go", "go", "go", ("go",))
@_linear("linear_lincs", "pca", "lincs", ("lincs",))
@_linear("linear_depmap", "pca", "coessentiality", ("coessentiality",))
@_linear("linear_go", "pca", "go", ("go",))
@_linear("linear_pca", "pca", "pca")
class LinearModel(Model):
    """Ahlmann-Eltze, Huber & Anders (2025) linear baseline.

    Y (genes × training perturbations) = pseudobulk − control; b = rowMeans(Y); G = gene embedding (training
    PCA: gene coordinates on the top ``n_components`` PCs of the training pseudobulk; or a prior-knowledge source
    for the measured genes, 0 for genes it lacks); P = perturbation embedding (training PCA: the rows of G for
    the perturbed genes, so only measured targets; or a source's embedding of the targets, summed over a
    combination's targets). W = (GᵀG + λI)⁻¹ Gᵀ (Y − b) Pᵀ (PPᵀ + λI)⁻¹, λ = ``ridge``; Δ̂ = G W p + b.
    """

    def __init__(self, spec, gene_embedding="pca", pert_embedding="pca", n_components=10, ridge=0.1, **params):
        super().__init__(
            spec,
            gene_embedding=gene_embedding,
            pert_embedding=pert_embedding,
            n_components=n_components,
            ridge=ridge,
            **params,
        )

    def _gene_space(self, deltas: pd.DataFrame, covariate: str) -> pd.DataFrame:
        genes = self.var_names
        if self.params["gene_embedding"] == "pca":
            pseudobulk = (deltas.to_numpy() + self.control_mean(covariate)[None, :]).T  # genes × perts
            values = _training_pca(pseudobulk, self.params["n_components"])
            return pd.DataFrame(values, index=genes)
        table = features.gene_embedding(self.params["gene_embedding"], genes)
        return table.reindex(genes).fillna(0.0)

    def _pert_space(self, perturbations, gene_space: pd.DataFrame) -> pd.DataFrame:
        if self.params["pert_embedding"] == "pca":
            return features.perturbation_embedding(perturbations, "pca", gene_space=gene_space)
        return features.perturbation_embedding(perturbations, self.params["pert_embedding"])

    def _build(self, covariate):
        deltas = self.training_deltas(covariate)
        if len(deltas) < 2:
            return None
        gene_space = self._gene_space(deltas, covariate)
        b = deltas.mean(axis=0).to_numpy()
        pert_space = self._pert_space(deltas.index, gene_space)
        if len(pert_space) < 2:
            return {"gene_space": gene_space, "b": b, "W": None}
        G = gene_space.to_numpy()
        P = pert_space.to_numpy().T  # dims × perts
        Y = (deltas.loc[pert_space.index].to_numpy() - b[None, :]).T  # genes × perts
        lam = float(self.params["ridge"])
        left = np.linalg.solve(G.T @ G + lam * np.eye(G.shape[1]), G.T @ Y @ P.T)
        W = left @ np.linalg.inv(P @ P.T + lam * np.eye(P.shape[0]))
        return {"gene_space": gene_space, "b": b, "W": W, "n_train": len(pert_space)}

    def _predict_delta(self, covariate, perturbations):
        model = self.context(covariate, self._build)
        fallback = self.mean_delta(covariate)
        if model is None or model["W"] is None:
            return np.tile(fallback, (len(perturbations), 1)), np.ones(len(perturbations), bool)
        embedded = self._pert_space(perturbations, model["gene_space"])
        rows, flags = [], []
        G = model["gene_space"].to_numpy()
        for pert in perturbations:
            if pert in embedded.index:
                rows.append(G @ model["W"] @ embedded.loc[pert].to_numpy() + model["b"])
                flags.append(False)
            else:
                rows.append(fallback)
                flags.append(True)
        return np.vstack(rows), np.array(flags)


def _knn(name: str, embedding: str, k: int = 3, extra: str | None = None):
    """One variant of the nearest-neighbour model (its embedding)."""
    return register_model(
        name,
        kind=LEARNED,
        params={"embedding": embedding},
        needs=(embedding,),
        extra=extra,
        tasks=EMBEDDING_TASKS,
        source="vcclib (kNN over prior-knowledge gene embeddings)",
        description=f"mean Δ of the {k} training perturbations nearest in the {embedding} embedding (cosine)",
    )


@_knn("knn_text", "text", extra="text")
@_knn("knn_lincs", "lincs")
@_knn("knn_depmap", "coessentiality")
@_knn("knn_go", "go")
class NearestNeighbours(Model):
    """The mean Δ of the ``k`` training perturbations whose targets are nearest (cosine) in a gene embedding.

    A combination is embedded as the sum of its targets' embeddings. Ours to define (no peer has it).
    """

    def __init__(self, spec, embedding="go", k=3, **params):
        super().__init__(spec, embedding=embedding, k=k, **params)

    def _embed(self, perturbations) -> pd.DataFrame:
        table = features.perturbation_embedding(perturbations, self.params["embedding"])
        norms = np.linalg.norm(table.to_numpy(), axis=1, keepdims=True)
        return table[(norms[:, 0] > 0)] / np.where(norms > 0, norms, 1)[(norms[:, 0] > 0)]

    def _build(self, covariate):
        deltas = self.training_deltas(covariate)
        return {"deltas": deltas, "embedded": self._embed(deltas.index)}

    def _predict_delta(self, covariate, perturbations):
        model = self.context(covariate, self._build)
        fallback = self.mean_delta(covariate)
        train = model["embedded"]
        query = self._embed(perturbations) if len(train) else pd.DataFrame()
        rows, flags = [], []
        for pert in perturbations:
            if len(train) and pert in query.index:
                similarity = train.to_numpy() @ query.loc[pert].to_numpy()
                nearest = train.index[np.argsort(-similarity)[: int(self.params["k"])]]
                rows.append(model["deltas"].loc[nearest].to_numpy().mean(0))
                flags.append(False)
            else:
                rows.append(fallback)
                flags.append(True)
        return np.vstack(rows), np.array(flags)


@register_model(
    "random_forest",
    kind=LEARNED,
    needs=("go", "coessentiality", "depmap", "lincs"),
    tasks=EMBEDDING_TASKS,
    test_params={"n_estimators": 5},
    source="vcclib (random forest on crafted perturbation features)",
    description="random forest: Δ ~ GO + DepMap essentiality/co-essentiality + LINCS + target expression in control",
)
class RandomForest(Model):
    """A random forest regressing each perturbation's Δ (all genes, multi-output) on crafted features.

    Features (:func:`vcclib.models.features.crafted_features`): GO, co-essentiality, DepMap Chronos and LINCS
    embeddings of the targets, DepMap common-essential count, number of targets, and the target's expression in
    control cells. Ours to define (no peer has it). A query no source covers is flagged as fallback (its
    prediction is still the forest's output for all-zero features). The fitted forest is kept as its trees'
    arrays (:class:`~vcclib.models.baselines.forest.ForestArrays`), which predict exactly what scikit-learn's
    forest does and are stored without pickling.
    """

    def __init__(self, spec, n_estimators=200, seed=0, **params):
        super().__init__(spec, n_estimators=n_estimators, seed=seed, **params)

    def _features(self, covariate, perturbations):
        control = pd.Series(self.control_mean(covariate), index=self.var_names)
        return features.crafted_features(perturbations, control)

    def _build(self, covariate):
        from sklearn.ensemble import RandomForestRegressor

        deltas = self.training_deltas(covariate)
        if len(deltas) < 2:
            return None
        X = self._features(covariate, deltas.index)
        forest = RandomForestRegressor(
            n_estimators=int(self.params["n_estimators"]),
            max_features=0.5,
            random_state=int(self.params["seed"]),
            n_jobs=1,
        )
        forest.fit(X.to_numpy(), deltas.to_numpy())
        return {"forest": ForestArrays.from_sklearn(forest).to_state(), "columns": X.columns}

    def _predict_delta(self, covariate, perturbations):
        model = self.context(covariate, self._build)
        if model is None:
            return np.tile(self.mean_delta(covariate), (len(perturbations), 1)), np.ones(len(perturbations), bool)
        X = self._features(covariate, perturbations).reindex(columns=model["columns"], fill_value=0.0)
        covered = [c for c in X.columns if c.endswith("_covered") or c == "target_measured"]
        flags = (X[covered].sum(axis=1) == 0).to_numpy() if covered else np.zeros(len(X), bool)
        forest = ForestArrays.from_state(model["forest"])
        return forest.predict(X.to_numpy()).reshape(len(X), -1), flags
