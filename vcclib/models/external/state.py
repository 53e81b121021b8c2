"""The STATE transition model (Adduri et al. 2025, Arc Institute; ``arc-state`` + ``cell-load``).

A transformer over *sets* of cells: each control cell of a set (its log1p profile) plus the perturbation's
feature vector is encoded, the cells attend to one another, and the set is mapped to the perturbed set; trained
with an energy distance between predicted and observed perturbed sets (geomloss).

Conventions kept: STATE's own trainer runs unchanged — ``state tx train``'s entry point
(:func:`state._cli.run_tx_train`) in-process, with the Hydra configuration composed from STATE's bundled
configs (:func:`state.__main__.load_hydra_config`, ``model=state_sm`` shrunk by the overrides below), reading
what STATE reads: a folder of h5ad files with a dense ``obsm['X_hvg']`` (here the project's log1p genes, so
``output_space=gene``), perturbation / cell-type / batch columns (``perturbation``, ``covariate``, and the
covariate again as batch: the project's cells carry no other batch label), and a TOML naming the dataset as a
training set. Held-out perturbations never reach STATE's data; they are predicted through STATE's
``data.kwargs.perturbation_features_file`` (a torch dict perturbation → vector): the project's GO embedding
(:func:`vcclib.models.features.perturbation_embedding`, 32 dims from the mirror's GO table, ``A+B`` →
e(A) + e(B)); the control gets STATE's zero vector. With STATE's default one-hot features an unseen perturbation
could not be answered. Training perturbations without a GO vector would enter STATE as the zero (control) vector,
so their cells are left out of its training; queried ones are flagged as a fallback. A prediction is STATE's
forward pass over the training control cells of the queried covariate, in sets of ``cell_set_len`` (shuffled
with the model's seed, the last set filled by wrapping around), with the query's feature vector; the mean over
the predicted cells is the profile. Covariate transfer works as in STATE: a new cell line's control cells (in
the training part) carry its context.

Settings: ``max_steps``, ``batch_size`` (sets per step), ``cell_set_len``, ``hidden_dim``, ``layers`` (Llama
blocks, bidirectional attention), ``heads``, ``lr``; energy loss, STATE's defaults otherwise. The registered
configuration is the book's: a small STATE (≈0.56 M trainable parameters, hidden 128, 2 blocks, 4 heads) rather
than ``state_sm`` (32.5 M), sets of 16 cells (the book's cells per perturbation; cell-load fills smaller groups
by resampling), 8 sets per step, 80 steps. Measured on the Norman 2019 subset at 16 cells per perturbation
(432 training cells) on a shared 2-core machine: 16 / 41 / 65 CPU-seconds per fit at 5 / 30 / 80 steps
(≈0.7–1.0 CPU-s per step, mostly cell-load's per-cell h5 reads and Lightning rather than the network, plus
≈11 CPU-s of set-up), so ≤ 90 s wall on two free cores; peak RSS ≈0.8 GB; prediction ≈2 CPU-seconds. More
steps train longer linearly; ``state_sm`` itself is far slower.

Run-time fixes and settings, applied here only: wandb off (``use_wandb=false``), ``num_workers=0``,
``pin_memory=false`` (cell-load 0.10.4 still passes ``pin_memory=True`` to its DataLoader: only a warning on
CPU); ``var['gene_name']`` written (cell-load reads gene names from it); validation never runs
(``val_freq`` > ``max_steps``: the held-out cells are scored by the project, not by STATE); the Llama backbone's
token embedding, zeroed, frozen and never used (STATE feeds ``inputs_embeds``), gets ``vocab_size=3`` instead of
32 000 rows (16 MB of zeros per saved model otherwise); STATE's global
``torch.set_float32_matmul_precision('medium')`` is undone after training. STATE chooses its accelerator itself
(CUDA when present); predictions run on the wrapper's ``device``. STATE's run folder (checkpoints, its pickled
``var_dims.pkl``, CSV logs) is a temporary directory deleted after training; only the final checkpoint's
``state_dict`` is read, with ``torch.load(weights_only=True)``.

Saved: the network's ``state_dict`` as arrays and its constructor arguments (STATE's saved hyper-parameters:
numbers, strings, lists) in the project's JSON + ``.npz`` files; loading builds
``StateTransitionPerturbationModel(**hyper_parameters)`` and loads the weights, without training.

Licence: STATE's code is CC BY-NC-SA 4.0 (non-commercial, share-alike); its released weights are not used.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from vcclib.models.external import PACKAGES, Package
from vcclib.models.external._common import ExternalModel, load_torch_weights, torch_weights
from vcclib.models.spec import PredictionTask, register_model
from vcclib.registry import ModelKind

PACKAGES["state"] = Package(
    ("arc-state", "cell-load", "torch"),
    "pip install 'vcclib[models]'",
    "CC-BY-NC-SA-4.0 (STATE code; weights non-commercial, not used here)",
    "https://github.com/ArcInstitute/state",
)

DATASET = "vcc"  #: the dataset name in STATE's TOML


def _overrides(params: dict[str, Any], folder: str, control: str, seed: int) -> list[str]:
    """The Hydra overrides of STATE's ``tx`` config for one training run in ``folder``."""
    steps, width, heads = int(params["max_steps"]), int(params["hidden_dim"]), int(params["heads"])
    backbone = "model.kwargs.transformer_backbone_kwargs"
    return [
        "name=run",
        f"output_dir={folder}/out",
        "use_wandb=false",
        "overwrite=true",
        "model=state_sm",
        f"data.kwargs.toml_config_path={folder}/split.toml",
        "data.kwargs.embed_key=X_hvg",
        "data.kwargs.output_space=gene",
        "data.kwargs.pert_col=perturbation",
        "data.kwargs.cell_type_key=covariate",
        "data.kwargs.batch_col=batch",
        f"data.kwargs.control_pert={control}",
        "data.kwargs.num_workers=0",
        "data.kwargs.pin_memory=false",
        "data.kwargs.barcode=false",
        f"data.kwargs.perturbation_features_file={folder}/features.pt",
        f"+data.kwargs.random_seed={seed}",
        f"training.max_steps={steps}",
        f"training.batch_size={int(params['batch_size'])}",
        f"training.lr={float(params['lr'])}",
        f"training.val_freq={steps + 1}",
        f"training.ckpt_every_n_steps={steps + 1}",
        f"training.train_seed={seed}",
        f"model.kwargs.cell_set_len={int(params['cell_set_len'])}",
        f"model.kwargs.hidden_dim={width}",
        f"{backbone}.intermediate_size={2 * width}",
        f"{backbone}.num_hidden_layers={int(params['layers'])}",
        f"{backbone}.num_attention_heads={heads}",
        f"{backbone}.num_key_value_heads={heads}",
        f"{backbone}.head_dim={width // heads}",
        f"+{backbone}.vocab_size=3",
    ]


@register_model(
    "state",
    kind=ModelKind.EXTERNAL,
    extra="models",
    description="STATE transition model: set transformer from control cells + GO vector of the perturbation",
    source="Adduri et al. 2025, bioRxiv (arc-state 0.11.1; CC BY-NC-SA 4.0)",
    params={
        "max_steps": 80,
        "batch_size": 8,
        "cell_set_len": 16,
        "hidden_dim": 128,
        "layers": 2,
        "heads": 4,
        "lr": 1e-4,
        "seed": 0,
        "device": "auto",
    },
    needs=("go",),
    tasks=(PredictionTask.UNSEEN_PERTURBATION, PredictionTask.COMBINATION, PredictionTask.COVARIATE_TRANSFER),
    test_params={"max_steps": 4, "batch_size": 2, "cell_set_len": 8, "hidden_dim": 32, "layers": 1, "heads": 2},
)
class State(ExternalModel):
    """STATE's transition model trained from scratch by STATE's own trainer on the training cells."""

    package = "state"
    purpose = "the STATE transition model"

    def _features(self, perturbations) -> dict[str, np.ndarray]:
        """The GO feature vector of each perturbation that has one (controls excluded)."""
        from vcclib.models.features import perturbation_embedding

        labels = [str(p) for p in dict.fromkeys(perturbations) if str(p) != self.control_label]
        table = perturbation_embedding(labels, "go")
        return {str(p): row.to_numpy(dtype=np.float32) for p, row in table.iterrows()}

    def _write_inputs(self, train: AnnData, folder: str) -> None:
        """STATE's inputs in ``folder``: ``data/vcc.h5ad``, ``features.pt`` and ``split.toml``."""
        import torch

        perts = train.obs["perturbation"].astype(str).to_numpy()
        features = self._features(sorted(set(perts)))
        keep = (perts == self.control_label) | np.isin(perts, list(features))
        X = np.asarray(train.X, dtype=np.float32)[keep]
        covariate = train.obs["covariate"].astype(str).to_numpy()[keep]
        obs = pd.DataFrame(
            {"perturbation": perts[keep], "covariate": covariate, "batch": covariate},
            index=[f"cell_{i}" for i in range(int(keep.sum()))],
        ).astype("category")
        genes = pd.Index(train.var_names.astype(str))
        cells = AnnData(X=X, obs=obs, var=pd.DataFrame({"gene_name": genes}, index=genes))
        cells.obsm["X_hvg"] = X
        os.makedirs(os.path.join(folder, "data"))
        cells.write_h5ad(os.path.join(folder, "data", f"{DATASET}.h5ad"))
        torch.save({p: torch.as_tensor(v) for p, v in features.items()}, os.path.join(folder, "features.pt"))
        with open(os.path.join(folder, "split.toml"), "w") as handle:
            handle.write(f'[datasets]\n{DATASET} = "{folder}/data"\n\n[training]\n{DATASET} = "train"\n')

    def _train(self, train) -> None:
        import torch
        from state.__main__ import load_hydra_config
        from state._cli import run_tx_train

        precision = torch.get_float32_matmul_precision()
        with tempfile.TemporaryDirectory(prefix="vcc-state-") as folder:
            self._write_inputs(train, folder)
            config = load_hydra_config("tx", _overrides(self.params, folder, self.control_label, self.seed))
            try:
                run_tx_train(config)
            finally:
                torch.set_float32_matmul_precision(precision)
            checkpoint = torch.load(
                os.path.join(folder, "out", "run", "checkpoints", "final.ckpt"), map_location="cpu", weights_only=True
            )
        self.hyper_parameters = dict(checkpoint["hyper_parameters"])
        self._rebuild(train)
        self.network.load_state_dict(checkpoint["state_dict"], strict=True)

    def _rebuild(self, train) -> None:
        from state.tx.models.state_transition import StateTransitionPerturbationModel

        self.network = StateTransitionPerturbationModel(**self.hyper_parameters).to(self.device).eval()

    def _weights(self):
        return torch_weights(self.network)

    def _load_weights(self, weights) -> None:
        load_torch_weights(self.network, weights)
        self.network.to(self.device).eval()

    def _extra_state(self) -> dict[str, Any]:
        return {**super()._extra_state(), "hyper_parameters": self.hyper_parameters}

    def _set_extra_state(self, state: dict[str, Any]) -> None:
        self.hyper_parameters = dict(state["hyper_parameters"])
        super()._set_extra_state(state)

    def _profiles(self, covariate, perturbations):
        import torch

        obs = self.train_cells.obs
        controls = np.flatnonzero(
            (
                (obs["covariate"].astype(str) == covariate) & (obs["perturbation"].astype(str) == self.control_label)
            ).to_numpy()
        )
        known = self._features(perturbations)
        if len(controls) == 0:
            return np.zeros((len(perturbations), len(self.var_names))), np.ones(len(perturbations), dtype=bool)
        length = int(self.hyper_parameters["cell_set_len"])
        order = np.random.default_rng(self.seed).permutation(controls)
        order = np.resize(order, int(np.ceil(len(order) / length)) * length)  # whole sets, wrapping around
        basal = torch.as_tensor(np.asarray(self.train_cells.X, dtype=np.float32)[order], device=self.device)
        rows, unanswered = [], []
        with torch.no_grad():
            for perturbation in perturbations:
                if perturbation not in known:
                    rows.append(np.zeros(len(self.var_names)))
                    unanswered.append(True)
                    continue
                vector = torch.as_tensor(known[perturbation], device=self.device)
                batch = {"ctrl_cell_emb": basal, "pert_emb": vector[None, :].repeat(len(order), 1)}
                predicted = self.network(batch, padded=True)
                rows.append(predicted.cpu().numpy().astype(np.float64).mean(0))
                unanswered.append(False)
        return np.vstack(rows), np.array(unanswered)
