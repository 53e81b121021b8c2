"""The group-mean predictor: a held-out perturbation predicted as the mean effect of its phenotype group.

The group's other members make the prediction: what knowing the group is worth.

Groups are found on the *training* perturbations (pseudobulk Δ correlation, average-linkage clustering cut at
``1 − min_correlation``; :mod:`vcclib.analyses.phenotypes.groups`). A held-out perturbation's group is the group
whose mean Δ its own Δ correlates with best, its Δ read from the query half ``A`` of its held-out cells (the
half the MAX references get; it is scored on half ``B``). The prediction is control mean + the mean Δ of that
group's training members, which do not include the perturbation itself. Only the group label is taken from the
held-out cells, never their values: it is an *oracle of the group*, so it is registered on the MAX side (it
reads held-out cells) and is placed between the mean baseline and the technical duplicate like every baseline.
With ``groups`` (a perturbation → group mapping, e.g. published clusters), the label comes from the mapping
instead, where it holds the perturbation. A perturbation whose best correlation is below ``min_correlation``,
or with no ``A`` cells, gets the mean of means and ``vcc_fallback``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vcclib.models.base import Model, _as_dense, covariates_of
from vcclib.models.spec import PredictionTask, register_model
from vcclib.registry import ModelKind


@register_model(
    "group_mean",
    kind=ModelKind.LEARNED,
    halves="random",
    tasks=[PredictionTask.UNSEEN_PERTURBATION],
    source="this project's phenotype-groups chapter (group oracle: the group, not the effect)",
    description="control mean + mean Δ of the training perturbations in the held-out perturbation's "
    "phenotype group (group read from its query half A)",
)
class GroupMean(Model):
    """Mean Δ of the held-out perturbation's phenotype group (see the module docstring)."""

    def __init__(self, spec, min_correlation: float = 0.3, min_size: int = 2, groups=None, **params):
        super().__init__(
            spec, min_correlation=min_correlation, min_size=min_size, groups=dict(groups) if groups else None, **params
        )

    def _fit(self, train, heldout):
        self._heldout_X = heldout.X if heldout is not None else None
        self._heldout_cov = (
            np.asarray(covariates_of(heldout, self.covariate_column), dtype=str)
            if heldout is not None
            else np.array([], dtype=str)
        )
        self._heldout_pert = (
            heldout.obs["perturbation"].astype(str).to_numpy(dtype=str)
            if heldout is not None
            else np.array([], dtype=str)
        )

    def _groups(self, covariate: str) -> dict:
        from vcclib.analyses.phenotypes.groups import SINGLETON, cluster
        from vcclib.analyses.phenotypes.similarity import profile_similarity

        deltas = self.training_deltas(covariate)
        if self.params["groups"]:
            labels = pd.Series({p: self.params["groups"].get(p, SINGLETON) for p in deltas.index})
        elif len(deltas) >= 2:
            labels = cluster(
                profile_similarity(deltas, "correlation"),
                "hierarchical",
                threshold=1 - self.params["min_correlation"],
                min_size=self.params["min_size"],
            )
        else:
            labels = pd.Series(SINGLETON, index=deltas.index)
        grouped = labels[labels != SINGLETON]
        centroids = pd.DataFrame({g: deltas.loc[grouped.index[grouped == g]].mean(0) for g in sorted(set(grouped))}).T
        return {"centroids": centroids}

    def _extra_state(self):
        return {
            "heldout": None if self._heldout_X is None else _as_dense(self._heldout_X),
            "covariates": self._heldout_cov.tolist(),
            "perturbations": self._heldout_pert.tolist(),
        }

    def _set_extra_state(self, state):
        self._heldout_X = state["heldout"]
        self._heldout_cov = np.asarray(state["covariates"], dtype=str)
        self._heldout_pert = np.asarray(state["perturbations"], dtype=str)

    def assign(self, covariate: str, perturbation: str) -> str:
        """The group of a query perturbation (``""``: none; then the fallback predicts it)."""
        fitted = self.context(covariate, self._groups)
        centroids = fitted["centroids"]
        mapping = self.params["groups"]
        if mapping and perturbation in mapping:
            return mapping[perturbation] if mapping[perturbation] in centroids.index else ""
        if centroids.empty or self._heldout_X is None:
            return ""
        mask = (self._heldout_cov == covariate) & (self._heldout_pert == perturbation)
        if not mask.any():
            return ""
        own = _as_dense(self._heldout_X[mask]).mean(0) - self.control_mean(covariate)
        C = centroids.to_numpy()
        a = own - own.mean()
        B = C - C.mean(1, keepdims=True)
        denom = np.linalg.norm(B, axis=1) * np.linalg.norm(a)
        r = np.where(denom > 0, B @ a / np.where(denom > 0, denom, 1), -np.inf)
        best = int(np.argmax(r))
        return str(centroids.index[best]) if r[best] >= self.params["min_correlation"] else ""

    def _predict_delta(self, covariate, perturbations):
        fitted = self.context(covariate, self._groups)
        fallback = self.mean_delta(covariate)
        rows, flags = [], []
        for pert in perturbations:
            group = self.assign(covariate, pert)
            if group:
                rows.append(fitted["centroids"].loc[group].to_numpy())
                flags.append(False)
            else:
                rows.append(fallback)
                flags.append(True)
        return np.vstack(rows), np.array(flags)
