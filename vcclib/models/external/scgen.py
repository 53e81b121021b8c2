"""scGen (Lotfollahi et al. 2019) through pertpy's ``Scgen`` (JAX).

A VAE whose latent perturbation vector, learned in the cell types that were perturbed, moves the control cells
of a new cell type.

Conventions kept: scGen answers covariate transfer only — a perturbation must have been seen in another cell
type or line; any other query is flagged as a fallback. The latent vector of perturbation ``p`` is the mean over
training covariates of (mean latent of ``p`` cells − mean latent of control cells); pertpy's ``Scgen.predict``
draws a random balanced subsample for the same means, replaced here by exact per-covariate means so that one seed
gives one prediction. The prediction is the decoder's mean over the held-out covariate's control cells moved by
that vector. One model is trained on every training perturbation (``batch_key`` = perturbation).

Saved: the flax train state (parameters and batch statistics) as arrays; loading builds pertpy's model on the
stored training cells, initialises its train state with one epoch, and overwrites it with the stored one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vcclib.models.external._common import ExternalModel
from vcclib.models.spec import PredictionTask, register_model
from vcclib.registry import ModelKind


def _to_numpy(tree):
    if isinstance(tree, dict):
        return {str(k): _to_numpy(v) for k, v in tree.items()}
    return np.asarray(tree)


@register_model(
    "scgen",
    kind=ModelKind.EXTERNAL,
    extra="models",
    description="scGen VAE (pertpy Scgen): latent perturbation vector from other cell types, decoded",
    source="Lotfollahi et al. 2019, Nat Methods (pertpy.tl.Scgen; BSD-3)",
    params={
        "n_hidden": 256,
        "n_latent": 32,
        "n_layers": 2,
        "max_epochs": 30,
        "batch_size": 64,
        "seed": 0,
        "device": "auto",
    },
    tasks=(PredictionTask.COVARIATE_TRANSFER,),
    test_params={"n_hidden": 32, "n_latent": 8, "max_epochs": 1},
)
class ScGen(ExternalModel):
    """pertpy's ``Scgen`` trained from scratch on the training cells."""

    package = "pertpy"
    purpose = "scGen"

    def _new(self, train):
        import pertpy as pt

        data = train.copy()
        pt.tl.Scgen.setup_anndata(data, batch_key="perturbation", labels_key="covariate")
        model = pt.tl.Scgen(
            data,
            n_hidden=int(self.params["n_hidden"]),
            n_latent=int(self.params["n_latent"]),
            n_layers=int(self.params["n_layers"]),
        )
        return model, data

    def _fit_epochs(self, model, epochs: int) -> None:
        import scvi

        scvi.settings.seed = self.seed
        model.train(
            max_epochs=epochs,
            batch_size=int(self.params["batch_size"]),
            early_stopping=False,
            enable_progress_bar=False,
            accelerator="gpu" if self.device == "cuda" else "cpu",
        )

    def _train(self, train) -> None:
        self.model, self.data = self._new(train)
        self._fit_epochs(self.model, int(self.params["max_epochs"]))
        self._latents()

    def _rebuild(self, train) -> None:
        self.model, self.data = self._new(train)
        self._fit_epochs(self.model, 1)  # only to create the train state; the stored weights overwrite it

    def _weights(self) -> dict[str, Any]:
        return _to_numpy(self.model.module.state_dict())

    def _load_weights(self, weights) -> None:
        self.model.module.load_state_dict(weights)
        self._latents()

    def _latents(self) -> None:
        """Mean latent per (covariate, perturbation) of the training cells, and each cell's latent."""
        self.latent = np.asarray(self.model.get_latent_representation(self.data), dtype=np.float64)
        obs = self.data.obs
        self.keys = list(zip(obs["covariate"].astype(str), obs["perturbation"].astype(str)))

    def _vector(self, perturbation: str) -> np.ndarray | None:
        """The latent perturbation vector, averaged over the training covariates where both groups exist."""
        obs = self.data.obs
        covariates, perts = obs["covariate"].astype(str).to_numpy(), obs["perturbation"].astype(str).to_numpy()
        shifts = []
        for covariate in sorted(set(covariates[perts == perturbation])):
            here = covariates == covariate
            ctrl, stim = here & (perts == self.control_label), here & (perts == perturbation)
            if ctrl.any() and stim.any():
                shifts.append(self.latent[stim].mean(0) - self.latent[ctrl].mean(0))
        return np.mean(shifts, axis=0) if shifts else None

    def _profiles(self, covariate, perturbations):
        obs = self.data.obs
        source = (
            (obs["covariate"].astype(str) == covariate) & (obs["perturbation"].astype(str) == self.control_label)
        ).to_numpy()
        decoder = self.model.module.as_bound()
        rows, unanswered = [], []
        for perturbation in perturbations:
            vector = self._vector(perturbation)
            if vector is None or not source.any():
                rows.append(np.zeros(len(self.var_names)))
                unanswered.append(True)
                continue
            moved = (self.latent[source] + vector[None, :]).astype(np.float32)
            decoded = np.asarray(decoder.generative(moved)["px"], dtype=np.float64)
            rows.append(np.clip(decoded, 0, None).mean(0))
            unanswered.append(False)
        return np.vstack(rows), np.array(unanswered)
