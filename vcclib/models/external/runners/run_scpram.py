"""scPRAM runner (scpram 0.0.3, in .envs/scpram): ``check`` | ``fit WORK`` | ``predict WORK``.

scPRAM (Jiang et al. 2024) trains a VAE on the training cells; to predict a perturbation in a cell type it
matches perturbed and control cells of the other cell types in latent space by optimal transport (POT), and
moves the held-out type's control cells by an attention-weighted mean of the matched latent shifts.

Fit: ``SCPRAM(input_dim=n_genes, latent_dim, hidden_dim, noise_rate, kl_weight)`` and ``train_SCPRAM`` on every
training cell; the ``state_dict`` is written as arrays. Predict: the model rebuilt, its weights loaded, and
``SCPRAM.predict`` (the paper's method) run per query on the training cells of the control and the queried
perturbation, ``key_dic`` naming the project's columns, with torch and numpy seeded per query; the mean of the
predicted cells is the answer. A query is not answered unless the perturbation was trained in another
covariate and both that covariate and the queried one have control cells.
"""

from __future__ import annotations

import _exchange
import numpy as np


def versions() -> dict:
    """The versions of the packages this runner uses."""
    return _exchange.package_versions("scpram", "torch", "pot", "anndata")


def check() -> None:
    """Import the package (``make env-*`` runs this last)."""
    import scpram.models  # noqa: F401 - the import is the check


def _device(work: _exchange.Work):
    """The torch device scPRAM runs on, recorded in ``run.json`` as ``device``.

    The wrapper's device where this environment's torch can use it, else the CPU (``make env-scpram`` installs
    the CPU wheel).
    """
    import torch

    return torch.device(_exchange.torch_device(work, "scPRAM"))


def _model(work: _exchange.Work, n_genes: int):
    import torch
    from scpram.models import SCPRAM

    torch.manual_seed(work.seed)
    device = _device(work)
    model = SCPRAM(
        input_dim=n_genes,
        latent_dim=int(work.params["latent_dim"]),
        hidden_dim=int(work.params["hidden_dim"]),
        noise_rate=float(work.params["noise_rate"]),
        kl_weight=float(work.params["kl_weight"]),
        device=device,
    )
    return model.to(device)  # SCPRAM moves its batches to ``device`` but leaves its layers where they were made


def fit(work: _exchange.Work) -> None:
    """Train on ``work``'s training cells; write ``weights.npz``."""
    import torch

    torch.set_num_threads(max(1, int(work.params.get("threads") or torch.get_num_threads())))
    np.random.seed(work.seed)
    adata = work.cells()
    model = _model(work, adata.n_vars)
    model.train_SCPRAM(
        adata, epochs=int(work.params["epochs"]), batch_size=int(work.params["batch_size"]), lr=float(work.params["lr"])
    )
    work.write_weights({k: v.detach().cpu().numpy() for k, v in model.state_dict().items()})


def predict(work: _exchange.Work) -> None:
    """Answer ``work``'s query from the stored cells and weights; write ``prediction.h5ad``."""
    import torch

    adata = work.cells()
    model = _model(work, adata.n_vars)
    model.load_state_dict({k: torch.as_tensor(v) for k, v in work.weights().items()}, strict=True)
    model.eval()
    obs = adata.obs
    covariate, perturbation = obs["covariate"].astype(str).to_numpy(), obs["perturbation"].astype(str).to_numpy()
    control = perturbation == work.control
    query = work.query()
    rows, answered = [], []
    for group in query:
        here, pert = covariate == group["covariate"], group["perturbation"]
        elsewhere = ~here & control
        stim = (perturbation == pert) & ~here
        if (
            pert == work.control
            or not (here & control).any()
            or not stim.any()
            or not set(covariate[stim]) & set(covariate[elsewhere])
        ):
            rows.append(np.zeros(adata.n_vars, np.float32))
            answered.append(False)
            continue
        cells = adata[control | stim].copy()
        key_dic = {
            "condition_key": "perturbation",
            "cell_type_key": "covariate",
            "ctrl_key": work.control,
            "stim_key": pert,
            "pred_key": "predicted",
        }
        torch.manual_seed(work.seed)
        np.random.seed(work.seed)
        with torch.no_grad():
            predicted = model.predict(cells, group["covariate"], key_dic, ratio=float(work.params["ratio"]))
        rows.append(np.asarray(predicted.X, dtype=np.float32).mean(0))
        answered.append(True)
    work.write_prediction(query, np.vstack(rows) if rows else np.zeros((0, adata.n_vars)), answered)


if __name__ == "__main__":
    _exchange.main(check, fit, predict, versions)
