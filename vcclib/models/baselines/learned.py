"""MIN references that learn from the training perturbations: the Ahlmann-Eltze linear model and its
prior-knowledge variants, k-nearest neighbours over gene embeddings, and a random forest on crafted features.

All predict a mean effect Δ (log1p pseudobulk minus the control mean) and add it to the query covariate's
control mean. A query whose target has no embedding in the chosen source (e.g. a target that is not a measured
gene, for the training-PCA embedding) gets the mean of the training perturbations' Δ and ``vcc_fallback=True``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vcclib.baselines import features
from vcclib.baselines import simple as _simple  # noqa: F401  (registers the simple references first)
from vcclib.baselines.base import Baseline, register


def _training_pca(pseudobulk: np.ndarray, n_components: int) -> np.ndarray:
    """Gene coordinates on the top principal components of the genes × perturbations pseudobulk matrix."""
    centred = pseudobulk - pseudobulk.mean(axis=0, keepdims=True)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    k = max(1, min(n_components, len(s)))
    return u[:, :k] * s[:k]


@register("linear_go_go", gene_embedding="go", pert_embedding="go", needs=("go",))
@register("linear_lincs", gene_embedding="pca", pert_embedding="lincs", needs=("lincs",))
@register("linear_depmap", gene_embedding="pca", pert_embedding="coessentiality", needs=("coessentiality",))
@register("linear_go", gene_embedding="pca", pert_embedding="go", needs=("go",))
@register("linear_pca", gene_embedding="pca", pert_embedding="pca")
class LinearModel(Baseline):
    """Ahlmann-Eltze, Huber & Anders (2025) linear baseline.

    Y (genes × training perturbations) = pseudobulk − control; b = rowMeans(Y); G = gene embedding (training
    PCA: gene coordinates on the top ``n_components`` PCs of the training pseudobulk; or a prior-knowledge source
    for the measured genes, 0 for genes it lacks); P = perturbation embedding (training PCA: the rows of G for
    the perturbed genes, so only measured targets; or a source's embedding of the targets, summed over a
    combination's targets). W = (GᵀG + λI)⁻¹ Gᵀ (Y − b) Pᵀ (PPᵀ + λI)⁻¹, λ = ``ridge``; Δ̂ = G W p + b.
    """

    source = "Ahlmann-Eltze, Huber & Anders 2025, Nat. Methods (linear_perturbation_prediction-Paper)"
    description = "ridge bilinear model Δ = G W P + b; G, P from training PCA or GO/DepMap/LINCS"

    def __init__(self, name="", gene_embedding="pca", pert_embedding="pca", n_components=10, ridge=0.1, **params):
        super().__init__(name, gene_embedding=gene_embedding, pert_embedding=pert_embedding,
                         n_components=n_components, ridge=ridge, **params)
        pieces = ["training-PCA" if gene_embedding == "pca" else gene_embedding,
                  "training-PCA" if pert_embedding == "pca" else pert_embedding]
        self.description = f"ridge bilinear Δ = G W P + b; gene embedding {pieces[0]}, perturbation embedding {pieces[1]}"

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


@register("knn_text", embedding="text", needs=("text",))
@register("knn_lincs", embedding="lincs", needs=("lincs",))
@register("knn_depmap", embedding="coessentiality", needs=("coessentiality",))
@register("knn_go", embedding="go", needs=("go",))
class NearestNeighbours(Baseline):
    """The mean Δ of the ``k`` training perturbations whose targets are nearest (cosine) in a gene embedding.

    A combination is embedded as the sum of its targets' embeddings. Ours to define (no peer has it).
    """

    source = "vcclib (kNN over prior-knowledge gene embeddings)"
    description = "mean Δ of the k most similar training perturbations (cosine over GO/DepMap/LINCS/text embedding)"

    def __init__(self, name="", embedding="go", k=3, **params):
        super().__init__(name, embedding=embedding, k=k, **params)
        self.description = f"mean Δ of the {k} training perturbations nearest in the {embedding} embedding (cosine)"

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


@register("random_forest")
class RandomForest(Baseline):
    """A random forest regressing each perturbation's Δ (all genes, multi-output) on crafted features.

    Features (:func:`vcclib.baselines.features.crafted_features`): GO, co-essentiality, DepMap Chronos and LINCS
    embeddings of the targets, DepMap common-essential count, number of targets, and the target's expression in
    control cells. Ours to define (no peer has it). A query no source covers is flagged as fallback (its
    prediction is still the forest's output for all-zero features).
    """

    source = "vcclib (random forest on crafted perturbation features)"
    description = "random forest: Δ ~ GO + DepMap essentiality/co-essentiality + LINCS + target expression in control"
    needs = ("go", "coessentiality", "depmap", "lincs")

    def __init__(self, name="", n_estimators=200, seed=0, **params):
        super().__init__(name, n_estimators=n_estimators, seed=seed, **params)

    def _features(self, covariate, perturbations):
        control = pd.Series(self.control_mean(covariate), index=self.var_names)
        return features.crafted_features(perturbations, control)

    def _build(self, covariate):
        from sklearn.ensemble import RandomForestRegressor

        deltas = self.training_deltas(covariate)
        if len(deltas) < 2:
            return None
        X = self._features(covariate, deltas.index)
        forest = RandomForestRegressor(n_estimators=int(self.params["n_estimators"]), max_features=0.5,
                                       random_state=int(self.params["seed"]), n_jobs=1)
        forest.fit(X.to_numpy(), deltas.to_numpy())
        return {"forest": forest, "columns": X.columns}

    def _predict_delta(self, covariate, perturbations):
        model = self.context(covariate, self._build)
        if model is None:
            return np.tile(self.mean_delta(covariate), (len(perturbations), 1)), np.ones(len(perturbations), bool)
        X = self._features(covariate, perturbations).reindex(columns=model["columns"], fill_value=0.0)
        covered = [c for c in X.columns if c.endswith("_covered") or c == "target_measured"]
        flags = (X[covered].sum(axis=1) == 0).to_numpy() if covered else np.zeros(len(X), bool)
        return model["forest"].predict(X.to_numpy()).reshape(len(X), -1), flags
