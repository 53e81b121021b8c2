"""biolord (Piran et al. 2024): a disentangled decoder over known attributes and a free latent per cell.

The attributes are the cell line/type (categorical) and the perturbation as an ordered attribute vector.

Conventions kept: the perturbation attribute is what biolord's unseen-perturbation recipe uses, a fixed vector
per perturbation from prior knowledge: the project's GO embedding (:mod:`vcclib.models.features`, 32 dims,
``A+B`` → e(A) + e(B), controls 0). A perturbation whose target has no GO annotation cannot be embedded and is
flagged as a fallback (in training its cells keep the zero vector of the controls). A prediction moves the
training control cells of the queried covariate to the queried attribute values and averages the decoded means
(biolord's ``compute_prediction_adata``, done on the tensors so that the cells' own latents are used).

Run-time fix: ``Biolord.train`` fails in scvi's checkpoint callback unless ``enable_checkpointing=False``
(models.md); with scvi-tools 1.4.2 its training plan reads ``latent_lr`` before setting it unless
``attribute_nn_lr``/``attribute_nn_wd`` are given, so they are; lightning's log folder goes to a temporary
directory.

Saved: the torch ``state_dict`` (every cell's latent included) as arrays; loading rebuilds the model on the
stored training cells and loads it.
"""

from __future__ import annotations

import tempfile

import numpy as np

from vcclib.models.external._common import ExternalModel, load_torch_weights, torch_weights
from vcclib.models.spec import PredictionTask, register_model
from vcclib.registry import ModelKind

ATTRIBUTE = "perturbation_go"


@register_model(
    "biolord",
    kind=ModelKind.EXTERNAL,
    extra="models",
    description="biolord: disentangled decoder over cell line + GO vector of the perturbation",
    source="Piran et al. 2024, Nat Biotechnol (biolord 0.0.3; BSD-3)",
    params={
        "n_latent": 32,
        "max_epochs": 30,
        "batch_size": 128,
        "decoder_width": 256,
        "attribute_width": 64,
        "seed": 0,
        "device": "auto",
    },
    needs=("go",),
    tasks=(PredictionTask.UNSEEN_PERTURBATION, PredictionTask.COMBINATION, PredictionTask.COVARIATE_TRANSFER),
    test_params={"n_latent": 8, "max_epochs": 1, "decoder_width": 32, "attribute_width": 16},
)
class Biolord(ExternalModel):
    """biolord trained from scratch; perturbations enter as GO vectors, covariates as categories."""

    package = "biolord"
    purpose = "biolord"

    def _embedding(self, perturbations) -> dict[str, np.ndarray]:
        from vcclib.models.features import perturbation_embedding

        labels = [p for p in dict.fromkeys(perturbations) if p != self.control_label]
        table = perturbation_embedding(labels, "go")
        return {str(p): row.to_numpy(dtype=np.float32) for p, row in table.iterrows()}

    def _new(self, train):
        import biolord

        data = train.copy()
        perts = data.obs["perturbation"].astype(str).to_numpy()
        known = self._embedding(sorted(set(perts)))
        dims = len(next(iter(known.values()))) if known else 32
        vectors = np.zeros((data.n_obs, dims), dtype=np.float32)
        for i, p in enumerate(perts):
            if p in known:
                vectors[i] = known[p]
        data.obsm[ATTRIBUTE] = vectors
        biolord.Biolord.setup_anndata(
            data, ordered_attributes_keys=[ATTRIBUTE], categorical_attributes_keys=["covariate"]
        )
        width, attr = int(self.params["decoder_width"]), int(self.params["attribute_width"])
        module_params = {
            "decoder_width": width,
            "decoder_depth": 2,
            "attribute_nn_width": attr,
            "attribute_nn_depth": 2,
            "n_latent_attribute_categorical": 4,
            "seed": self.seed,
        }
        model = biolord.Biolord(data, n_latent=int(self.params["n_latent"]), module_params=module_params)
        return model, data

    def _train(self, train) -> None:
        self.model, self.data = self._new(train)
        with tempfile.TemporaryDirectory() as logs:
            self.model.train(
                max_epochs=int(self.params["max_epochs"]),
                batch_size=int(self.params["batch_size"]),
                early_stopping=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                default_root_dir=logs,
                accelerator="gpu" if self.device == "cuda" else "cpu",
                plan_kwargs={
                    "n_epochs_warmup": 0,
                    "latent_lr": 1e-3,
                    "decoder_lr": 1e-3,
                    # biolord 0.0.3 reads self.latent_lr before setting it when these
                    # are None: given explicitly (run-time fix)
                    "attribute_nn_lr": {ATTRIBUTE: 1e-3},
                    "attribute_nn_wd": {ATTRIBUTE: 1e-4},
                },
            )

    def _rebuild(self, train) -> None:
        self.model, self.data = self._new(train)

    def _weights(self):
        return torch_weights(self.model.module)

    def _load_weights(self, weights) -> None:
        load_torch_weights(self.model.module, weights)

    def _profiles(self, covariate, perturbations):
        import torch

        obs = self.data.obs
        source = np.flatnonzero(
            (
                (obs["covariate"].astype(str) == covariate) & (obs["perturbation"].astype(str) == self.control_label)
            ).to_numpy()
        )
        known = self._embedding(perturbations)
        self.model.module.eval()
        rows, unanswered = [], []
        if len(source) == 0:
            return np.zeros((len(perturbations), len(self.var_names))), np.ones(len(perturbations), dtype=bool)
        with torch.no_grad():
            tensors = self.model.get_dataset(self.data, indices=source)
            for perturbation in perturbations:
                if perturbation not in known:
                    rows.append(np.zeros(len(self.var_names)))
                    unanswered.append(True)
                    continue
                batch = {key: value.to(self.model.device) for key, value in tensors.items()}
                vector = torch.as_tensor(known[perturbation], device=self.model.device)
                batch[ATTRIBUTE] = vector[None, :].repeat(len(source), 1)
                means, _ = self.model.module.get_expression(batch)
                rows.append(means.cpu().numpy().astype(np.float64).mean(0))
                unanswered.append(False)
        return np.vstack(rows), np.array(unanswered)
