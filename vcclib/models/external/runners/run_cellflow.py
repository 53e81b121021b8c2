"""CellFlow runner (cellflow-tools 0.0.9, in .envs/cellflow): ``check`` | ``fit WORK`` | ``predict WORK``.

CellFlow learns a conditional flow (OT flow matching) from the control cells' distribution to each perturbed
one, in a low-dimensional cell representation, conditioned on a set of perturbation embeddings.

Fit: the cell representation is a PCA of the training cells (``n_pcs`` components, numpy SVD; mean and
components are stored with the weights); each cell's perturbation is two gene slots ``gene_1``/``gene_2``
(``A`` → ``A``, pad; ``A+B`` → ``A``, ``B``) embedded by the gene embedding the wrapper wrote (``genes.npz``),
the pad and the controls a zero vector; several covariates split the controls into one population each
(CellFlow's ``split_covariates``). ``CellFlow.prepare_model`` gets CPU-sized layers and a plain Adam; the flax
parameters are written as arrays (CellFlow's own ``save`` cloudpickles the object, which is not used).

Predict: the same data and model rebuilt, the parameters loaded; one CellFlow ``predict`` per covariate pushes
its training control cells through the flow under every query's condition; the mean of the pushed cells is mapped back to genes
through the PCA. A query with a target the embedding lacks is not answered.
"""

from __future__ import annotations

import _exchange
import numpy as np

PAD = "__none__"


def versions() -> dict:
    """The versions of the packages this runner uses."""
    return _exchange.package_versions("cellflow-tools", "jax", "flax", "ott-jax", "anndata")


def check() -> None:
    """Import the package (``make env-*`` runs this last)."""
    import cellflow  # noqa: F401 - the import is the check


def _slots(label: str, control: str) -> tuple[str, str] | None:
    if label == control:
        return control, PAD
    targets = _exchange.split_targets(label)
    if not 1 <= len(targets) <= 2:
        return None
    return targets[0], targets[1] if len(targets) == 2 else PAD


def _embeddings(work: _exchange.Work, dims: int | None = None) -> dict[str, np.ndarray]:
    genes = work.gene_embedding()
    dims = dims or (len(next(iter(genes.values()))) if genes else 8)
    return {**genes, PAD: np.zeros(dims, np.float32), work.control: np.zeros(dims, np.float32)}


def _pca(X: np.ndarray, n_pcs: int) -> tuple[np.ndarray, np.ndarray]:
    mean = X.mean(0)
    _, _, vt = np.linalg.svd(X - mean, full_matrices=False)
    return mean.astype(np.float32), vt[:n_pcs].astype(np.float32)


def _model(work: _exchange.Work, pca: tuple[np.ndarray, np.ndarray] | None = None):
    import optax
    from cellflow.model import CellFlow

    adata = work.cells()
    X = np.asarray(adata.X, dtype=np.float32)
    mean, components = pca or _pca(X, int(work.params["n_pcs"]))
    adata.obsm["X_pca"] = (X - mean) @ components.T
    embeddings = _embeddings(work)
    slots = [_slots(p, work.control) for p in adata.obs["perturbation"].astype(str)]
    keep = np.array([s is not None and s[0] in embeddings and s[1] in embeddings for s in slots])
    adata = adata[keep].copy()
    slots = [s for s, k in zip(slots, keep) if k]
    adata.obs["gene_1"] = [s[0] for s in slots]
    adata.obs["gene_2"] = [s[1] for s in slots]
    adata.obs["control"] = adata.obs["is_control"].astype(bool)
    adata.obs["covariate"] = adata.obs["covariate"].astype(str).astype("category")
    adata.uns["gene_embeddings"] = embeddings
    split = ["covariate"] if adata.obs["covariate"].nunique() > 1 else None
    model = CellFlow(adata, solver="otfm")
    model.prepare_data(
        sample_rep="X_pca",
        control_key="control",
        perturbation_covariates={"genes": ("gene_1", "gene_2")},
        perturbation_covariate_reps={"genes": "gene_embeddings"},
        split_covariates=split,
        max_combination_length=2,
    )
    width = int(work.params["hidden"])
    depth = int(work.params["layers"])
    model.prepare_model(
        condition_embedding_dim=int(work.params["condition_dim"]),
        pooling="mean",
        time_freqs=int(work.params["time_freqs"]),
        time_encoder_dims=(width,) * depth,
        hidden_dims=(width,) * depth,
        decoder_dims=(width,) * depth,
        cond_output_dropout=float(work.params["cond_dropout"]),
        optimizer=optax.adam(float(work.params["lr"])),
        seed=work.seed,
    )
    return model, adata, (mean, components)


def _ode_solver(steps: int) -> dict:
    """Settings of the flow's ODE (diffrax): ``steps`` fixed Tsit5 steps from t = 0 to 1.

    0 steps keeps CellFlow's default, an adaptive Tsit5 at rtol = atol = 1e-5, which takes about 2 s per
    condition on 64 cells on a CPU (about 20 fixed steps' worth many times over).
    """
    if steps <= 0:
        return {}
    import diffrax

    return {"solver": diffrax.Tsit5(), "dt0": 1.0 / steps, "stepsize_controller": diffrax.ConstantStepSize()}


def fit(work: _exchange.Work) -> None:
    """Train on ``work``'s training cells; write ``weights.npz``."""
    from flax import traverse_util

    model, _, (mean, components) = _model(work)
    iterations = int(work.params["iterations"])
    model.train(num_iterations=iterations, batch_size=int(work.params["batch_size"]), valid_freq=iterations + 1)
    params = traverse_util.flatten_dict(model.solver.vf_state_inference.params, sep="/")
    weights = {f"vf/{k}": np.asarray(v) for k, v in params.items()}
    work.write_weights({**weights, "pca/mean": mean, "pca/components": components})


def predict(work: _exchange.Work) -> None:
    """Answer ``work``'s query from the stored cells and weights; write ``prediction.h5ad``."""
    import jax.numpy as jnp
    import pandas as pd
    from flax import traverse_util

    weights = work.weights()
    model, adata, (mean, components) = _model(work, (weights["pca/mean"], weights["pca/components"]))
    params = traverse_util.unflatten_dict(
        {k[3:]: jnp.asarray(v) for k, v in weights.items() if k.startswith("vf/")}, sep="/"
    )
    model.solver.vf_state = model.solver.vf_state.replace(params=params)
    model.solver.vf_state_inference = model.solver.vf_state_inference.replace(params=params)
    model.solver.is_trained = True
    embeddings = adata.uns["gene_embeddings"]
    query = work.query()
    rows = np.zeros((len(query), adata.n_vars), np.float32)
    answered = np.zeros(len(query), bool)
    categories = adata.obs["covariate"].cat.categories
    solver = _ode_solver(int(work.params.get("ode_steps", 0)))
    # one ``predict`` per covariate, all its queries at once (CellFlow pushes the controls once per condition)
    for covariate in sorted({str(group["covariate"]) for group in query}):
        controls = adata[(adata.obs["covariate"].astype(str) == covariate).to_numpy() & adata.obs["control"].to_numpy()]
        asked = []
        for i, group in enumerate(query):
            slots = _slots(group["perturbation"], work.control)
            if str(group["covariate"]) == covariate and slots is not None and all(s in embeddings for s in slots):
                asked.append((i, slots))
        if not asked or controls.n_obs == 0:
            continue
        condition = pd.DataFrame(
            {
                "gene_1": [slots[0] for _, slots in asked],
                "gene_2": [slots[1] for _, slots in asked],
                "control": False,
                "covariate": pd.Categorical([covariate] * len(asked), categories=categories),
                "condition": [f"q{i}" for i, _ in asked],
            }
        )
        pushed = model.predict(
            controls.copy(), covariate_data=condition, sample_rep="X_pca", condition_id_key="condition", **solver
        )
        for i, _ in asked:
            cells = np.asarray(pushed[f"q{i}"], dtype=np.float32)
            rows[i] = np.clip(cells.mean(0) @ components + mean, 0, None)
            answered[i] = True
    work.write_prediction(query, rows, answered.tolist())


if __name__ == "__main__":
    _exchange.main(check, fit, predict, versions)
