"""The MIN references that need no features and the MAX references.

MIN: control mean, the three perturbed means, seen-Δ transfer, additive combinations. MAX: technical
duplicate, biological replicate.

Conventions: every mean is over log1p-normalised cells (pseudobulk = mean of log1p); a prediction for covariate
``c`` is ``control mean of c + Δ``; Δ is learnt from ``c``'s own training perturbations when it has any, else from
the other covariates (see :meth:`Model.training_deltas`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from vcclib.data.schema import split_targets
from vcclib.models.base import Model, _as_dense, covariates_of, normalise_query
from vcclib.models.spec import ModelOutput, PredictionTask, register_model
from vcclib.registry import ModelKind

MIN = ModelKind.MIN_REFERENCE
MAX = ModelKind.MAX_REFERENCE


@register_model(
    "control_mean",
    kind=MIN,
    source="the 'no change' reference (every benchmark)",
    description="control mean of the query's cell type/line; Δ = 0",
)
class ControlMean(Model):
    """Predict no change: every perturbation gets its covariate's control mean (Δ = 0)."""

    def _predict_delta(self, covariate, perturbations):
        return np.zeros((len(perturbations), len(self.var_names))), np.zeros(len(perturbations), bool)


@register_model(
    "perturbed_mean_pooled",
    kind=MIN,
    source="Systema (Viñas Torné et al. 2025): mean of all perturbed cells",
    description="control mean + (pooled perturbed cells' mean − control mean); large perturbations weigh by cells",
)
class PooledPerturbedMean(Model):
    """The mean over all perturbed training cells pooled (Systema's perturbed centroid)."""

    def _weights(self) -> pd.Series:
        counts = self.train_counts.reindex(self.deltas.index).fillna(0).to_numpy()
        return pd.Series(counts, index=self.deltas.index)

    def _predict_delta(self, covariate, perturbations):
        deltas = self.training_deltas(covariate)
        cov = self.deltas.index.get_level_values("covariate")
        all_weights = self._weights()
        if (cov == covariate).any():
            weights = all_weights[cov == covariate].droplevel("covariate").reindex(deltas.index).to_numpy()
        else:
            weights = all_weights.groupby(level="perturbation").sum().reindex(deltas.index).to_numpy()
        delta = (deltas.to_numpy() * weights[:, None]).sum(0) / max(weights.sum(), 1) if len(deltas) else 0
        return np.tile(delta, (len(perturbations), 1)), np.zeros(len(perturbations), bool)


@register_model(
    "perturbed_mean",
    kind=MIN,
    source="Diversity by Design (Shift Bioscience 2025): mean of perturbation means",
    description="control mean + mean over training perturbations of their mean Δ (each perturbation weighs 1)",
)
class MeanOfMeans(Model):
    """The mean of the per-perturbation means (Diversity by Design's mean baseline)."""

    def _predict_delta(self, covariate, perturbations):
        delta = self.mean_delta(covariate)
        return np.tile(delta, (len(perturbations), 1)), np.zeros(len(perturbations), bool)


@register_model(
    "celleval_mean",
    kind=MIN,
    source="cell-eval (Arc Institute) VCC 2025 baseline: mean of group means incl. control",
    description="control mean + n/(n+1) × mean Δ (the control group's Δ = 0 enters the average); real controls added",
)
class CellEvalMean(Model):
    """cell-eval's VCC baseline: the mean of all group means *including the control group*."""

    def _predict_delta(self, covariate, perturbations):
        n = len(self.training_deltas(covariate))
        delta = self.mean_delta(covariate) * (n / (n + 1))
        return np.tile(delta, (len(perturbations), 1)), np.zeros(len(perturbations), bool)


@register_model(
    "seen_delta",
    kind=MIN,
    tasks=[PredictionTask.COVARIATE_TRANSFER],
    source="covariate-transfer shift baseline (scGen/CPA-style mean shift)",
    description="control mean of the query covariate + the same perturbation's mean Δ in the other covariates",
)
class SeenDelta(Model):
    """The perturbation's own mean Δ from the covariates where it was seen (scGen-style shift transfer).

    For a perturbation unseen everywhere it falls back to the mean of the training perturbations' Δ.
    """

    def _predict_delta(self, covariate, perturbations):
        per_pert = self.deltas.groupby(level="perturbation").mean()
        fallback = self.mean_delta(covariate)
        rows, flags = [], []
        for pert in perturbations:
            if pert in per_pert.index:
                rows.append(per_pert.loc[pert].to_numpy())
                flags.append(False)
            else:
                rows.append(fallback)
                flags.append(True)
        return np.vstack(rows), np.array(flags)


@register_model(
    "additive",
    kind=MIN,
    tasks=[PredictionTask.COMBINATION],
    source="Ahlmann-Eltze, Huber & Anders 2025 (additive model for double perturbations)",
    description="control mean + sum of the seen singles' mean Δ; fallback mean of means",
)
class Additive(Model):
    """Combinations as the sum of their singles' effects: ctrl + Σ_t (single_t − ctrl) (Ahlmann-Eltze 2025).

    Perturbations that are not combinations, or whose singles were not all seen, get the mean-of-means fallback.
    """

    def _predict_delta(self, covariate, perturbations):
        singles = self.training_deltas(covariate)
        fallback = self.mean_delta(covariate)
        rows, flags = [], []
        for pert in perturbations:
            targets = split_targets(pert)
            if len(targets) > 1 and all(t in singles.index for t in targets):
                rows.append(singles.loc[targets].to_numpy().sum(0))
                flags.append(False)
            else:
                rows.append(fallback)
                flags.append(True)
        return np.vstack(rows), np.array(flags)


class HeldoutCells(Model):
    """A MAX reference: real held-out cells of the same perturbation predict the scored cells.

    ``fit(train, heldout=A)`` keeps the query half ``A``; ``predict`` returns ``A``'s cells of each query group
    (``cells`` output; ``n_cells`` of the query is ignored). Groups with no ``A`` cells get the control mean and
    ``vcc_fallback``. A saved model stores ``A``'s expression matrix (sparse stays sparse) and each cell's group.
    """

    def _fit(self, train, heldout: AnnData | None):
        self._heldout_X = heldout.X
        self._heldout_covariates = np.asarray(covariates_of(heldout, self.covariate_column), dtype=str)
        self._heldout_perturbations = heldout.obs["perturbation"].astype(str).to_numpy(dtype=str)

    def _extra_state(self):
        X = self._heldout_X
        matrix = (
            {"data": X.data, "indices": X.indices, "indptr": X.indptr, "shape": list(X.shape)}
            if sp.issparse(X)
            else {"dense": np.asarray(X)}
        )
        return {
            "X": matrix,
            "covariates": self._heldout_covariates.tolist(),
            "perturbations": self._heldout_perturbations.tolist(),
        }

    def _set_extra_state(self, state):
        matrix = state["X"]
        self._heldout_X = (
            sp.csr_matrix((matrix["data"], matrix["indices"], matrix["indptr"]), shape=tuple(matrix["shape"]))
            if "data" in matrix
            else matrix["dense"]
        )
        self._heldout_covariates = np.asarray(state["covariates"], dtype=str)
        self._heldout_perturbations = np.asarray(state["perturbations"], dtype=str)

    def predict(self, query: pd.DataFrame) -> AnnData:
        """The kept held-out cells of each query group (control mean and ``vcc_fallback`` where none)."""
        self._check_fitted()
        query = normalise_query(query)
        blocks, obs = [], []
        for row in query.itertuples(index=False):
            mask = (self._heldout_covariates == row.covariate) & (self._heldout_perturbations == row.perturbation)
            if mask.any():
                blocks.append(_as_dense(self._heldout_X[mask]))
                flags = False
            else:
                blocks.append(self.control_mean(row.covariate)[None, :])
                flags = True
            n = blocks[-1].shape[0]
            obs.append(
                pd.DataFrame(
                    {
                        "covariate": [row.covariate] * n,
                        "perturbation": [row.perturbation] * n,
                        "vcc_fallback": [flags] * n,
                    }
                )
            )
        X = np.vstack(blocks) if blocks else np.zeros((0, len(self.var_names)))
        frame = (
            pd.concat(obs, ignore_index=True)
            if obs
            else pd.DataFrame(columns=["covariate", "perturbation", "vcc_fallback"])
        )
        return self._to_anndata(X, frame)


@register_model(
    "technical_duplicate",
    kind=MAX,
    output=ModelOutput.CELLS,
    halves="random",
    source="Diversity by Design (2025); cell-eval --ceiling: split-half of each perturbation's cells",
    description="a random half of each held-out perturbation's cells predicts the other (scored) half",
)
class TechnicalDuplicate(HeldoutCells):
    """The technical duplicate: a random half of each held-out group's cells."""


@register_model(
    "replicate",
    kind=MAX,
    output=ModelOutput.CELLS,
    halves="replicate",
    source="biological replicates of the same experiment (Papalexi 2021 rep_1–rep_3)",
    description="cells of the other biological replicates (control-matched) predict the scored replicates",
)
class BiologicalReplicate(HeldoutCells):
    """The other biological replicates' cells, moved onto the scored replicates' control level.

    Replicates of one experiment differ by a batch offset that every perturbation shares; the control cells
    (training data) measure it. The prediction is the query replicates' cells plus
    ``mean(control cells of the scored replicates) − mean(control cells of the query replicates)`` (log1p,
    clipped at 0), so the ceiling measures how reproducible the *effect* is, not the batch.
    ``control_matched=False`` keeps the raw cells.
    """

    def __init__(self, spec, control_matched=True, **params):
        super().__init__(spec, control_matched=control_matched, **params)

    def _fit(self, train, heldout):
        super()._fit(train, heldout)
        self._shift = {}
        column = self.halves
        if not self.params["control_matched"] or column not in train.obs or column not in heldout.obs:
            return
        query_reps = set(heldout.obs[column].astype(str))
        is_ctrl = (train.obs["perturbation"].astype(str) == self.control_label).to_numpy()
        reps = train.obs[column].astype(str).to_numpy()
        covs = covariates_of(train, self.covariate_column)
        for covariate in np.unique(covs[is_ctrl]):
            in_cov = is_ctrl & (covs == covariate)
            query = in_cov & np.isin(reps, list(query_reps))
            scored = in_cov & ~np.isin(reps, list(query_reps))
            if query.any() and scored.any():
                self._shift[covariate] = _as_dense(train.X[scored]).mean(0) - _as_dense(train.X[query]).mean(0)

    def _extra_state(self):
        return {**super()._extra_state(), "shift": dict(self._shift)}

    def _set_extra_state(self, state):
        super()._set_extra_state(state)
        self._shift = dict(state["shift"])

    def predict(self, query):
        """The held-out replicates' cells, shifted onto the scored replicates' control level (clipped at 0)."""
        prediction = super().predict(query)
        if not self._shift:
            return prediction
        column = self.covariate_column
        covs = prediction.obs[column].astype(str).to_numpy() if column else np.full(prediction.n_obs, "all")
        X = np.asarray(prediction.X, dtype=np.float64)
        for covariate, shift in self._shift.items():
            rows = (covs == covariate) & ~prediction.obs["vcc_fallback"].to_numpy()
            X[rows] = np.clip(X[rows] + shift[None, :], 0, None)
        prediction.X = X.astype(np.float32)
        return prediction
