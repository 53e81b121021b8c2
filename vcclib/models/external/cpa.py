"""CPA (Lotfollahi et al. 2023, Compositional Perturbation Autoencoder), in its own environment.

An autoencoder whose latent space adds a learned embedding per perturbation (summed for combinations, scaled by
dose) and per covariate to each cell's basal state; an adversary keeps the basal state free of both.

Conventions kept: perturbations as ``A`` / ``A+B`` with doses ``1.0+1.0``, ``is_count_data=False`` (log1p
input, Gaussian likelihood), ``max_comb_len=2``; CPA's own random train/validation split of the training
cells and its early stopping on ``cpa_metric``. CPA answers what its embeddings cover: a combination of trained
perturbations, and a trained perturbation in another covariate (cell line or type) whose control cells it saw.
A target without a trained embedding (an unseen perturbation) is flagged as a fallback. Defaults follow CPA's
Norman 2019 tutorial, scaled down for CPU (see ``params``): at the book's settings (Norman 2019, 16 cells per
perturbation, 592 training cells × 500 genes) 60 epochs took 158 CPU-s to fit (mean Pearson Δ 0.14 on the
held-out pairs), so the registered configuration trains 20 with CPA's warm-up phases shortened: 28 CPU-s
(48 s wall on a loaded 2-core machine), 0.9 GB peak in the runner, mean Pearson Δ 0.02 on the same pairs.

cpa-tools 0.8.8 needs torch ≤ 2.0.1, numpy < 1.24, anndata 0.9 and scvi-tools 0.20, so it runs in
``.envs/cpa`` (``make env-cpa``; ~6 GB, the CUDA-11 torch wheels from PyPI) as a subprocess
(:mod:`vcclib.models.external.ownenv`, ``runners/run_cpa.py``). Run-time fixes, in the runner: ``save_path=False``
(CPA pickles its model by default), and prediction on tensors (CPA's ``predict`` needs the query labels
registered with its data).
"""

from __future__ import annotations

from vcclib.models.external.ownenv import OwnEnvModel
from vcclib.models.spec import PredictionTask, register_model
from vcclib.registry import ModelKind


@register_model(
    "cpa",
    kind=ModelKind.EXTERNAL,
    description="CPA autoencoder: learned perturbation and covariate embeddings added in latent space (own env)",
    source="Lotfollahi et al. 2023, Mol Syst Biol (cpa-tools 0.8.8; BSD-3)",
    params={
        "n_latent": 32,
        "recon_loss": "gauss",
        "doser_type": "linear",
        "n_hidden_encoder": 128,
        "n_layers_encoder": 2,
        "n_hidden_decoder": 128,
        "n_layers_decoder": 2,
        "use_batch_norm_encoder": True,
        "use_layer_norm_encoder": False,
        "use_batch_norm_decoder": False,
        "use_layer_norm_decoder": True,
        "dropout_rate_encoder": 0.2,
        "dropout_rate_decoder": 0.0,
        "variational": False,
        "lr": 1e-3,
        "wd": 3.2e-6,
        "n_epochs_pretrain_ae": 3,
        "n_epochs_adv_warmup": 5,
        "n_epochs_mixup_warmup": 3,
        "mixup_alpha": 0.1,
        "adv_steps": 3,
        "reg_adv": 10.0,
        "pen_adv": 20.0,
        "adv_lr": 1e-3,
        "n_layers_adv": 2,
        "n_hidden_adv": 64,
        "dropout_rate_adv": 0.3,
        "step_size_lr": 25,
        "max_epochs": 20,
        "batch_size": 128,
        "early_stopping_patience": 5,
        "check_val_every_n_epoch": 5,
        "threads": 2,
        "seed": 0,
        "device": "auto",
    },
    tasks=(PredictionTask.COMBINATION, PredictionTask.COVARIATE_TRANSFER),
    test_params={
        "n_latent": 8,
        "n_hidden_encoder": 16,
        "n_hidden_decoder": 16,
        "n_hidden_adv": 16,
        "max_epochs": 2,
        "n_epochs_pretrain_ae": 1,
        "n_epochs_adv_warmup": 1,
        "n_epochs_mixup_warmup": 1,
        "check_val_every_n_epoch": 1,
    },
)
class Cpa(OwnEnvModel):
    """cpa-tools' ``CPA`` trained from scratch in ``.envs/cpa``."""

    environment = "cpa"
    purpose = "CPA"
