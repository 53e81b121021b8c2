"""scPRAM (Jiang et al. 2024): a VAE with optimal-transport matching and attention, in its own environment.

It moves a cell type's control cells by the latent shift that the perturbation causes in the other cell types,
shifts found by matching perturbed to control cells with optimal transport and weighted by the similarity of
the held-out type's cells to the other types' controls.

Conventions kept: scPRAM answers covariate transfer only (a perturbation seen in other cell types or lines,
predicted in one whose control cells it saw); any other query is flagged as a fallback. ``SCPRAM.predict`` is
the paper's method (``ratio`` of the most similar control cells); one VAE is trained on every training cell.

scpram 0.0.3 declares torch==1.13.1 (no wheel for Python 3.11), scanpy==1.9.3 and jupyter; it runs with
current torch and scanpy, installed without its declared dependencies in ``.envs/scpram``
(``make env-scpram``; the CPU torch wheel) as a subprocess (:mod:`vcclib.models.external.ownenv`,
``runners/run_scpram.py``).
"""

from __future__ import annotations

from vcclib.models.external.ownenv import OwnEnvModel
from vcclib.models.spec import PredictionTask, register_model
from vcclib.registry import ModelKind


@register_model(
    "scpram",
    kind=ModelKind.EXTERNAL,
    description="scPRAM VAE: latent shifts of other cell types matched by optimal transport, attention-weighted "
    "(own env)",
    source="Jiang et al. 2024, Bioinformatics (scpram 0.0.3; MIT)",
    params={
        "latent_dim": 50,
        "hidden_dim": 256,
        "noise_rate": 0.1,
        "kl_weight": 5e-4,
        "epochs": 30,
        "batch_size": 128,
        "lr": 5e-4,
        "ratio": 0.05,
        "threads": 2,
        "seed": 0,
        "device": "auto",
    },
    tasks=(PredictionTask.COVARIATE_TRANSFER,),
    test_params={"latent_dim": 8, "hidden_dim": 32, "epochs": 1},
)
class ScPram(OwnEnvModel):
    """scpram's ``SCPRAM`` trained from scratch in ``.envs/scpram``."""

    environment = "scpram"
    purpose = "scPRAM"
