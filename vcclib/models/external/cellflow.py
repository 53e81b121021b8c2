"""CellFlow (Klein et al. 2025): conditional flow matching from control to perturbed cells, in its own environment.

A velocity field, conditioned on a pooled set of perturbation embeddings, transports the control cells'
distribution to each perturbed one (optimal-transport flow matching, JAX), in a PCA representation of the cells.

Conventions kept: CellFlow trains on low-dimensional cell coordinates (here a PCA of the training cells,
``n_pcs`` components, mapped back to genes through the same PCA) and reads each perturbation as a set of gene
embeddings (``A+B`` → {e(A), e(B)}). The gene embedding is the project's GO embedding
(:func:`vcclib.models.features.gene_embedding`, from the mirror's GO annotation; CellFlow's own gene embeddings
are downloaded from Hugging Face, which is not done): a held-out target with a GO vector is answered by the
model (unseen perturbations and combinations), one without is flagged as a fallback. Layer sizes and a plain
Adam replace CellFlow's GPU-sized defaults (see ``params``); at the book's settings (Norman 2019, 16 cells per
perturbation, 592 cells × 500 genes) 1000 iterations fit in 44 CPU-s (JIT compilation included) and the
held-out groups are predicted in 42 CPU-s, 0.87 GB peak memory in the runner.

cellflow-tools 0.0.9 declares scikit-learn==1.5.1 and scipy<1.16 (and imports ``requests`` without declaring
it), so it runs in ``.envs/cellflow`` (``make env-cellflow``) as a subprocess
(:mod:`vcclib.models.external.ownenv`, ``runners/run_cellflow.py``); its own ``save`` (cloudpickle) is not used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vcclib.data.schema import split_targets
from vcclib.models.external.ownenv import OwnEnvModel
from vcclib.models.spec import PredictionTask, register_model
from vcclib.registry import ModelKind


@register_model(
    "cellflow",
    kind=ModelKind.EXTERNAL,
    description="CellFlow conditional flow matching over GO gene embeddings, in PCA space (own env)",
    source="Klein et al. 2025, bioRxiv (cellflow-tools 0.0.9; BSD-3)",
    params={
        "n_pcs": 30,
        "hidden": 256,
        "layers": 2,
        "condition_dim": 64,
        "time_freqs": 64,
        "cond_dropout": 0.0,
        "lr": 1e-4,
        "iterations": 1000,
        "batch_size": 256,
        "ode_steps": 20,
        "threads": 2,
        "seed": 0,
        "device": "auto",
    },
    needs=("go",),
    tasks=(PredictionTask.UNSEEN_PERTURBATION, PredictionTask.COMBINATION),
    test_params={"n_pcs": 8, "hidden": 32, "condition_dim": 16, "time_freqs": 16, "iterations": 20, "batch_size": 64},
)
class CellFlow(OwnEnvModel):
    """cellflow-tools' ``CellFlow`` (OT flow matching) trained from scratch in ``.envs/cellflow``."""

    environment = "cellflow"
    purpose = "CellFlow"

    def _inputs(self, work: Path, perturbations: list[str]) -> None:
        from vcclib.models.features import gene_embedding

        targets = sorted({t for p in perturbations if p != self.control_label for t in split_targets(p)})
        table = gene_embedding("go", targets)
        np.savez(
            work / "genes.npz",
            genes=np.asarray(table.index.astype(str), dtype=str),
            values=table.to_numpy(dtype=np.float32),
        )
