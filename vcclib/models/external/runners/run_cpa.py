"""CPA runner (cpa-tools 0.8.8, in .envs/cpa): ``check`` | ``fit WORK`` | ``predict WORK`` (see _exchange.py).

Fit: ``CPA.setup_anndata`` on the training cells (perturbations as ``A`` / ``A+B`` with doses ``1.0+1.0``,
``is_count_data=False`` for log1p data, ``max_comb_len=2``, the covariate as CPA's categorical covariate), then
``CPA.train`` with CPA's own random train/validation split of the training cells, early stopping on its
``cpa_metric``; ``save_path=False`` (nothing is pickled); the module's ``state_dict`` is written as arrays, and
the device it trained on as ``device`` in ``run.json`` (the wrapper's where this torch can use it, else cpu).

Predict: the same ``setup_anndata`` on the stored training cells (CPA's encoders are sorted, so they are the
same), the module rebuilt and its weights loaded; each query moves the training control cells of its covariate
to the queried perturbation (CPA's counterfactual: the cells' basal latents + the perturbation embedding sum +
the covariate embedding, decoded by ``CPAModule.get_expression``, built here on tensors since the query labels
are not in the registered data) and averages the decoded means. A query whose target has no trained embedding,
or whose covariate CPA never saw, is not answered.
"""

from __future__ import annotations

import _exchange

MODULE_KEYS = (
    "n_latent",
    "recon_loss",
    "doser_type",
    "n_hidden_encoder",
    "n_layers_encoder",
    "n_hidden_decoder",
    "n_layers_decoder",
    "use_batch_norm_encoder",
    "use_layer_norm_encoder",
    "use_batch_norm_decoder",
    "use_layer_norm_decoder",
    "dropout_rate_encoder",
    "dropout_rate_decoder",
    "variational",
)
PLAN_KEYS = (
    "lr",
    "wd",
    "n_epochs_pretrain_ae",
    "n_epochs_adv_warmup",
    "n_epochs_mixup_warmup",
    "mixup_alpha",
    "adv_steps",
    "reg_adv",
    "pen_adv",
    "adv_lr",
    "adv_wd",
    "n_layers_adv",
    "n_hidden_adv",
    "dropout_rate_adv",
    "step_size_lr",
    "do_clip_grad",
    "gradient_clip_value",
    "adv_loss",
)


def versions() -> dict:
    """The versions of the packages this runner uses."""
    return _exchange.package_versions("cpa-tools", "torch", "scvi-tools", "anndata")


def check() -> None:
    """Import the package (``make env-*`` runs this last)."""
    import cpa  # noqa: F401 - the import is the check


def _model(work: _exchange.Work):
    import cpa
    import torch

    torch.manual_seed(work.seed)
    adata = work.cells()
    adata.obs["condition"] = adata.obs["perturbation"].astype(str).astype("category")
    cpa.CPA.setup_anndata(
        adata,
        perturbation_key="condition",
        control_group=work.control,
        dosage_key=None,
        is_count_data=False,
        categorical_covariate_keys=["covariate"],
        max_comb_len=2,
    )
    module = {k: work.params[k] for k in MODULE_KEYS if k in work.params}
    return cpa.CPA(adata, seed=work.seed, **module), adata


def fit(work: _exchange.Work) -> None:
    """Train on ``work``'s training cells; write ``weights.npz``."""
    import scvi
    import torch

    scvi.settings.seed = work.seed
    torch.set_num_threads(max(1, int(work.params.get("threads") or torch.get_num_threads())))
    model, _ = _model(work)
    plan = {k: work.params[k] for k in PLAN_KEYS if k in work.params}
    model.train(
        max_epochs=int(work.params["max_epochs"]),
        use_gpu=_exchange.torch_device(work, "CPA") == "cuda",
        batch_size=int(work.params["batch_size"]),
        plan_kwargs=plan,
        save_path=False,
        early_stopping_patience=int(work.params["early_stopping_patience"]),
        check_val_every_n_epoch=int(work.params["check_val_every_n_epoch"]),
        enable_progress_bar=False,
        logger=False,
        enable_checkpointing=False,
    )
    work.write_weights({k: v.detach().cpu().numpy() for k, v in model.module.state_dict().items()})


def predict(work: _exchange.Work) -> None:
    """Answer ``work``'s query from the stored cells and weights; write ``prediction.h5ad``."""
    import numpy as np
    import torch
    from cpa._utils import CPA_REGISTRY_KEYS as KEYS

    model, adata = _model(work)
    model.module.load_state_dict({k: torch.as_tensor(v) for k, v in work.weights().items()}, strict=True)
    model.module.eval()
    perts, covars = model.pert_encoder, model.covars_encoder["covariate"]
    X = np.asarray(adata.X, dtype=np.float32)
    obs = adata.obs
    query = work.query()
    rows, answered = [], []
    for group in query:
        targets = _exchange.split_targets(group["perturbation"])
        controls = ((obs["covariate"].astype(str) == group["covariate"]) & obs["is_control"]).to_numpy()
        if (
            not targets
            or len(targets) > 2
            or not all(t in perts for t in targets)
            or group["covariate"] not in covars
            or not controls.any()
        ):
            rows.append(np.zeros(adata.n_vars, dtype=np.float32))
            answered.append(False)
            continue
        n = int(controls.sum())
        codes = [perts[t] for t in targets] + [KEYS.PADDING_IDX] * (2 - len(targets))
        doses = [1.0] * len(targets) + [0.0] * (2 - len(targets))
        tensors = {
            KEYS.X_KEY: torch.as_tensor(X[controls]),
            KEYS.PERTURBATION_KEY: torch.zeros((n, 1), dtype=torch.long),
            KEYS.PERTURBATIONS: torch.as_tensor(np.tile(codes, (n, 1)), dtype=torch.long),
            KEYS.PERTURBATIONS_DOSAGES: torch.as_tensor(np.tile(doses, (n, 1)), dtype=torch.float32),
            "covariate": torch.full((n, 1), covars[group["covariate"]], dtype=torch.long),
        }
        with torch.no_grad():
            decoded = model.module.get_expression(tensors, n_samples=1)["px"]
        rows.append(np.clip(decoded.detach().cpu().numpy(), 0, None).mean(0))
        answered.append(True)
    work.write_prediction(query, np.vstack(rows) if rows else np.zeros((0, adata.n_vars)), answered)


if __name__ == "__main__":
    _exchange.main(check, fit, predict, versions)
