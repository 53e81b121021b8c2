"""The conditional perturbation VAE as a registered model (``cvae``, ``cvae_go``, …; ``kind=NEURAL``).

See :mod:`vcclib.models.neural.network` for the model and its objective. This module prepares the data
(:mod:`~vcclib.models.neural.inputs`), trains with the shared :class:`~vcclib.models.neural.trainer.Trainer`,
predicts query groups by decoding stored basal states of training control cells plus the query's shift, and
stores the fitted weights as numpy arrays in the model's ``arrays.npz`` (no pickle; torch is imported only to fit
and to predict).

Losses (``loss``): a base — ``mse`` (Gaussian on log1p, fixed variance), ``gaussian`` (learned per-gene
variance), ``nb`` / ``zinb`` (counts in ``layers['counts']``), ``wmse`` (MSE reconstruction, DEG-weighted
counterfactual term) — optionally followed by ``+energy`` or ``+mmd`` (distribution term) and ``+grn`` (GRN
alignment), e.g. ``"mse+energy+grn"``.

A query perturbation the model cannot embed (a learned model and a target it never saw; a prior-feature model
and a target no source covers) gets the mean shift of the training perturbations and ``vcc_fallback=True``: the
VAE's analogue of the mean baseline.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from vcclib.data.schema import split_targets
from vcclib.models.base import Model, covariates_of, normalise_query
from vcclib.models.neural import inputs
from vcclib.models.spec import ModelOutput, PredictionTask, register_model
from vcclib.optional import require
from vcclib.registry import ModelKind

NEURAL = ModelKind.NEURAL
BASES = {"mse": "gaussian", "gaussian": "gaussian", "wmse": "gaussian", "nb": "nb", "zinb": "zinb"}
SOURCE = (
    "vcclib: conditional VAE with additive latent perturbation shifts (CPA, Lotfollahi et al. 2023; "
    "GPO-VAE, Baek et al. 2025)"
)
TEST = {
    "latent_dim": 4,
    "hidden_dim": 16,
    "epochs": 3,
    "batch_size": 128,
    "n_basal": 16,
    "minibulks_per_group": 3,
    "progress": False,
}


def parse_loss(spec: str) -> dict:
    """``"mse+energy+grn"`` → base ``mse`` (likelihood gaussian), distribution ``energy``, grn True."""
    parts = [p.strip() for p in str(spec).split("+") if p.strip()]
    if not parts or parts[0] not in BASES:
        raise inputs.NeuralInputError(f"loss {spec!r}: start with one of {sorted(BASES)} (then +energy, +mmd, +grn)")
    extras = parts[1:]
    unknown = [p for p in extras if p not in ("energy", "mmd", "grn")]
    if unknown or (("energy" in extras) and ("mmd" in extras)):
        raise inputs.NeuralInputError(f"loss {spec!r}: add at most one of +energy, +mmd, and +grn")
    distribution = next((p for p in extras if p in ("energy", "mmd")), "")
    return {"base": parts[0], "likelihood": BASES[parts[0]], "distribution": distribution, "grn": "grn" in extras}


_ALL_TASKS = tuple(PredictionTask)
_SEEN_TASKS = (PredictionTask.COMBINATION, PredictionTask.COVARIATE_TRANSFER)


def _variant(name: str, features: str, description: str, needs=(), extra: str = "torch", **params):
    output = ModelOutput.PSEUDOBULK if params.get("pseudobulk") else ModelOutput.CELLS
    return register_model(
        name,
        kind=NEURAL,
        extra=extra,
        needs=tuple(needs),
        output=output,
        source=SOURCE,
        params={"features": features, **params},
        test_params=TEST,
        tasks=_SEEN_TASKS if features == "learned" else _ALL_TASKS,
        description=description,
    )


@_variant(
    "cvae_pseudobulk", "go", "conditional VAE on pseudobulk mini-bulks, GO-feature shifts", ("go",), pseudobulk=True
)
@_variant(
    "cvae_text",
    "text",
    "conditional VAE, shifts from text embeddings of the targets' GO terms",
    ("text",),
    extra="text",
)
@_variant(
    "cvae_union", "union", "conditional VAE, shifts from GO + DepMap + co-essentiality + LINCS features", inputs.UNION
)
@_variant("cvae_lincs", "lincs", "conditional VAE, shifts from the targets' LINCS knockdown z-scores", ("lincs",))
@_variant(
    "cvae_depmap",
    "depmap+coessentiality",
    "conditional VAE, shifts from DepMap Chronos and co-essentiality embeddings",
    ("depmap", "coessentiality"),
)
@_variant(
    "cvae_go",
    "go",
    "conditional VAE over genes, perturbation shifts computed from GO embeddings of the "
    "targets (unseen targets predicted)",
    ("go",),
)
@_variant(
    "cvae",
    "learned",
    "conditional VAE over genes, one learned latent shift per training target "
    "(combinations add; unseen targets fall back)",
)
class ConditionalVAE(Model):
    """Conditional VAE with an additive latent perturbation shift.

    See the module docstring and :mod:`vcclib.models.neural.network`.

    Parameters
    ----------
    features
        ``learned`` (one shift per training target), a prior source (``go``, ``depmap``, ``coessentiality``,
        ``lincs``, ``text``), several joined by ``+``, or ``union``.
    loss
        The objective (see the module docstring), e.g. ``mse``, ``nb``, ``wmse``, ``mse+energy``, ``mse+grn``.
    pseudobulk
        Train on mini-bulks (means of ``minibulk_size`` cells, ``minibulks_per_group`` per group) instead of
        cells, and predict one mean profile per group.
    latent_dim, hidden_dim, n_layers
        Network sizes.
    kl_weight, basal_weight, cf_weight, distribution_weight, grn_weight
        Weights of the objective's terms.
    grn
        The gene network of ``+grn``: ``trrust`` or ``dorothea``.
    epochs, batch_size, learning_rate, patience
        Trainer settings (:class:`~vcclib.models.neural.trainer.TrainerConfig`).
    val_fraction
        Share of training samples held out for early stopping when ``fit`` gets no ``val`` part.
    max_cells_per_group
        Subsample training cells per (covariate, perturbation) group (0: all).
    n_basal
        Control basal states kept per covariate for predicting.
    seed, device, progress, checkpoint_dir, resume
        Seed of everything random; ``auto|cpu|cuda``; progress bar; trainer checkpoints and resume.
    """

    def __init__(
        self,
        spec,
        features="learned",
        loss="mse",
        pseudobulk=False,
        latent_dim=16,
        hidden_dim=128,
        n_layers=1,
        kl_weight=1e-3,
        basal_weight=1.0,
        cf_weight=1.0,
        distribution_weight=1.0,
        grn="trrust",
        grn_weight=1.0,
        minibulk_size=16,
        minibulks_per_group=8,
        epochs=50,
        batch_size=256,
        learning_rate=1e-3,
        patience=5,
        val_fraction=0.1,
        max_cells_per_group=0,
        n_basal=200,
        seed=0,
        device="auto",
        progress=True,
        checkpoint_dir="",
        resume=False,
        **params,
    ):
        parse_loss(loss)
        inputs.sources_of(features)
        super().__init__(
            spec,
            features=features,
            loss=loss,
            pseudobulk=bool(pseudobulk),
            latent_dim=latent_dim,
            hidden_dim=hidden_dim,
            n_layers=n_layers,
            kl_weight=kl_weight,
            basal_weight=basal_weight,
            cf_weight=cf_weight,
            distribution_weight=distribution_weight,
            grn=grn,
            grn_weight=grn_weight,
            minibulk_size=minibulk_size,
            minibulks_per_group=minibulks_per_group,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            patience=patience,
            val_fraction=val_fraction,
            max_cells_per_group=max_cells_per_group,
            n_basal=n_basal,
            seed=seed,
            device=device,
            progress=progress,
            checkpoint_dir=checkpoint_dir,
            resume=resume,
            **params,
        )
        self._network_cache = None
        self._val = None

    # --- fitting -----------------------------------------------------------------------------------------
    def fit(self, train: AnnData, *, val: AnnData | None = None, heldout: AnnData | None = None) -> Model:
        """Fit on ``train``; early-stop on ``val``.

        ``val`` is the split's val part; without one, a seeded ``val_fraction`` of the training samples.
        """
        self._val = val
        return super().fit(train, val=val, heldout=heldout)

    def _covariate_of(self, adata: AnnData) -> np.ndarray:
        return covariates_of(adata, self.covariate_column)

    def _prepare(self, train: AnnData):
        """Training and validation samples, the group table and the likelihood's data."""
        from vcclib.models.runner import subsample

        p = self.params
        objective = parse_loss(p["loss"])
        covariates = [str(c) for c in self.control_means.index]
        keep = np.isin(self._covariate_of(train), covariates)
        train = train[keep]
        if p["max_cells_per_group"]:
            train = subsample(train, int(p["max_cells_per_group"]), seed=int(p["seed"]), column=self.covariate_column)
        val = self._val
        if val is not None and val.n_obs:
            val = val[np.isin(self._covariate_of(val), covariates)]
        if val is None or not val.n_obs:
            rng = np.random.default_rng(int(p["seed"]))
            held = rng.random(train.n_obs) < float(p["val_fraction"])
            held &= train.obs["perturbation"].astype(str).to_numpy() != self.control_label
            train, val = train[~held], (train[held] if held.any() else None)
        counts = objective["likelihood"] != "gaussian"
        if counts and p["pseudobulk"]:
            raise inputs.NeuralInputError(
                "pseudobulk mode trains on mean log1p profiles: use loss mse, gaussian or wmse, not a count likelihood"
            )
        groups: dict = {}
        cells = inputs.cell_samples(train, covariates, self._covariate_of, groups, self.control_label, counts)
        val_cells = (
            inputs.cell_samples(val, covariates, self._covariate_of, groups, self.control_label, counts)
            if val is not None and val.n_obs
            else None
        )
        return objective, covariates, groups, cells, val_cells

    def _fit(self, train: AnnData, heldout) -> None:
        torch = require("torch", extra="torch", purpose="the conditional VAE")
        from vcclib.models.neural.trainer import Trainer, TrainerConfig

        p = self.params
        seed = int(p["seed"])
        objective, covariates, groups, cells, val_cells = self._prepare(train)
        weights = (
            inputs.dbd_weights(cells, groups, self.control_label)
            if objective["base"] == "wmse"
            else np.ones((len(groups), cells.x.shape[1]), dtype=np.float32)
        )
        if p["pseudobulk"]:
            size, per = int(p["minibulk_size"]), int(p["minibulks_per_group"])
            cells = inputs.minibulk_samples(cells, size, per, seed)
            val_cells = inputs.minibulk_samples(val_cells, size, max(1, per // 4), seed + 1) if val_cells else None
        sources = inputs.sources_of(p["features"])
        labels = set(cells.perturbation) | (set(val_cells.perturbation) if val_cells is not None else set())
        vocabulary = inputs.target_vocabulary(cells.perturbation if not sources else labels, self.control_label)
        self._covariates, self._vocabulary, self._sources = covariates, vocabulary, sources
        feature_table = self._fit_features(vocabulary) if sources else None
        self._scale = inputs.normalisation_scale(train) if objective["likelihood"] != "gaussian" else 1.0
        trainer = Trainer(
            TrainerConfig(
                max_epochs=int(p["epochs"]),
                batch_size=int(p["batch_size"]),
                learning_rate=float(p["learning_rate"]),
                patience=int(p["patience"]),
                seed=seed,
                device=str(p["device"]),
                progress=bool(p["progress"]),
                checkpoint_dir=str(p["checkpoint_dir"]),
                resume=bool(p["resume"]),
            )
        )
        trainer.seed_everything()
        self._dims = {
            "n_genes": int(cells.x.shape[1]),
            "n_covariates": len(covariates),
            "n_targets": len(vocabulary),
            "feature_dim": 0 if feature_table is None else feature_table.shape[1],
        }
        network = self._build_network(objective)
        self._set_buffers(torch, network, cells, weights, feature_table, objective)
        history = trainer.fit(
            network, self._tensors(torch, cells), self._tensors(torch, val_cells) if val_cells is not None else None
        )
        network.to("cpu")
        self._history = history.to_dict()
        self._network_cache = network
        self._weights = {k: v.detach().cpu().numpy() for k, v in network.state_dict().items()}
        self._store_basal(torch, network, cells)

    def _fit_features(self, vocabulary: list[str]) -> np.ndarray:
        table = inputs.prior_features(vocabulary, self._sources)
        self._feature_columns = list(table.columns)
        values = table.to_numpy(dtype=np.float64)
        self._feature_mean = values.mean(axis=0)
        std = values.std(axis=0)
        self._feature_std = np.where(std > 1e-12, std, 1.0)
        return ((values - self._feature_mean) / self._feature_std).astype(np.float32)

    def _features_of(self, targets: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Standardised prior features of ``targets`` and whether any source covers each."""
        table = inputs.prior_features(targets, self._sources).reindex(columns=self._feature_columns, fill_value=0.0)
        flags = [c for c in table.columns if c.endswith("_covered")]
        covered = (table[flags].sum(axis=1) > 0).to_numpy()
        values = (table.to_numpy(dtype=np.float64) - self._feature_mean) / self._feature_std
        return values.astype(np.float32), covered

    def _build_network(self, objective: dict | None = None):
        from vcclib.models.neural.network import PerturbationVAE

        p = self.params
        objective = objective or parse_loss(p["loss"])
        weights = {
            "kl": float(p["kl_weight"]),
            "basal": float(p["basal_weight"]),
            "cf": float(p["cf_weight"]),
            "distribution": float(p["distribution_weight"]) if objective["distribution"] else 0.0,
            "distribution_kind": objective["distribution"],
            "grn": float(p["grn_weight"]) if objective["grn"] else 0.0,
            "cf_loss": "wmse" if objective["base"] == "wmse" else "mse",
            "learn_variance": objective["base"] == "gaussian",
        }
        return PerturbationVAE(
            self._dims["n_genes"],
            self._dims["n_covariates"],
            self._dims["n_targets"],
            latent_dim=int(p["latent_dim"]),
            hidden_dim=int(p["hidden_dim"]),
            n_layers=int(p["n_layers"]),
            likelihood=objective["likelihood"],
            feature_dim=self._dims["feature_dim"],
            scale=self._scale,
            weights=weights,
        )

    def _set_buffers(self, torch, network, cells, weights, feature_table, objective) -> None:
        order = np.argsort(cells.covariate[cells.is_control], kind="stable")
        pool = np.flatnonzero(cells.is_control)[order]
        sizes = np.bincount(cells.covariate[pool], minlength=len(self._covariates))
        if (sizes == 0).any():
            raise inputs.NeuralInputError("every covariate needs training control samples")
        network.pool_x = torch.from_numpy(cells.x[pool])
        network.pool_sizes = torch.from_numpy(sizes.astype(np.int64))
        network.pool_offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64))
        network.group_weights = torch.from_numpy(np.asarray(weights, dtype=np.float32))
        if feature_table is not None:
            network.target_features = torch.from_numpy(feature_table)
        if objective["grn"]:
            network_table = inputs.load_network(str(self.params["grn"]))
            regulators = [t for t in self._vocabulary if t in set(network_table["tf"])]
            signs = inputs.grn_signs(regulators, self.var_names, network_table, self.perturbation_type)
            keep = [i for i, row in enumerate(signs) if row.any()]
            network.grn_signs = torch.from_numpy(signs[keep])
            network.grn_targets = torch.tensor([self._vocabulary.index(regulators[i]) for i in keep], dtype=torch.long)
            self._grn_regulators = [regulators[i] for i in keep]

    def _tensors(self, torch, samples: inputs.Samples) -> dict:
        targets, _ = inputs.target_matrix(samples.perturbation, self._vocabulary, self.control_label)
        data = {
            "x": torch.from_numpy(samples.x),
            "covariate": torch.from_numpy(samples.covariate),
            "group": torch.from_numpy(samples.group),
            "is_control": torch.from_numpy(samples.is_control),
            "targets": torch.from_numpy(targets),
        }
        if samples.counts is not None:
            data["counts"] = torch.from_numpy(samples.counts)
            data["library"] = torch.from_numpy(samples.library.astype(np.float32))
        return data

    def _store_basal(self, torch, network, cells: inputs.Samples) -> None:
        """Keep the basal states predictions start from, and the fallback shift.

        Up to ``n_basal`` control basal states per covariate (and their library sizes), and the mean shift of the
        training perturbations.
        """
        rng = np.random.default_rng(int(self.params["seed"]))
        self._basal, self._library = {}, {}
        with torch.no_grad():
            for index, covariate in enumerate(self._covariates):
                rows = np.flatnonzero(cells.is_control & (cells.covariate == index))
                rows = np.sort(rng.choice(rows, size=min(len(rows), int(self.params["n_basal"])), replace=False))
                mean, _ = network.encode(torch.from_numpy(cells.x[rows]), torch.full((len(rows),), index))
                self._basal[covariate] = mean.numpy()
                library = cells.library[rows] if cells.library is not None else np.ones(len(rows), np.float32)
                self._library[covariate] = library.astype(np.float32)
            labels = sorted(set(cells.perturbation) - {self.control_label})
            targets, _ = inputs.target_matrix(labels, self._vocabulary, self.control_label)
            shifts = torch.from_numpy(targets) @ network.target_shifts()
            self._mean_shift = (
                shifts.mean(0).numpy() if len(labels) else np.zeros(int(self.params["latent_dim"]), np.float32)
            )

    # --- predicting --------------------------------------------------------------------------------------
    def _network(self):
        torch = require("torch", extra="torch", purpose="the conditional VAE")
        if self._network_cache is None:
            network = self._build_network()
            network.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in self._weights.items()})
            network.eval()
            self._network_cache = network
        return torch, self._network_cache

    def query_shifts(self, perturbations: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The latent shift of each perturbation label and whether it fell back to the mean training shift."""
        torch, network = self._network()
        labels = list(dict.fromkeys(perturbations))
        with torch.no_grad():
            if self._sources:
                targets = sorted({t for label in labels for t in split_targets(label)})
                values, covered = self._features_of(targets) if targets else (np.zeros((0, 0), np.float32), [])
                table = network.target_shifts(torch.from_numpy(values)).numpy() if targets else None
                ok = dict(zip(targets, covered))
                position = {t: i for i, t in enumerate(targets)}
                rows, flags = [], []
                for label in labels:
                    parts = split_targets(label)
                    good = bool(parts) and all(ok.get(t, False) for t in parts)
                    rows.append(table[[position[t] for t in parts]].sum(0) if good else self._mean_shift)
                    flags.append(not good)
            else:
                matrix, covered = inputs.target_matrix(labels, self._vocabulary, self.control_label)
                shifts = (torch.from_numpy(matrix) @ network.target_shifts()).numpy()
                rows = [s if c and m.any() else self._mean_shift for s, c, m in zip(shifts, covered, matrix)]
                flags = [not (c and m.any()) for c, m in zip(covered, matrix)]
        index = {label: i for i, label in enumerate(labels)}
        take = [index[p] for p in perturbations]
        return np.asarray(rows, dtype=np.float32)[take], np.asarray(flags, dtype=bool)[take]

    def predict(self, query: pd.DataFrame) -> AnnData:
        """Predicted cells for each query group.

        Stored control basal states of the covariate plus the group's shift, decoded (cells mode: ``n_cells``
        cells; pseudobulk mode: the mean over the basal states, repeated ``n_cells`` times). Seeded by ``seed``:
        the same query gives the same numbers.
        """
        self._check_fitted()
        query = normalise_query(query)
        torch, network = self._network()
        shifts, fallback = self.query_shifts(query["perturbation"].tolist())
        generator = torch.Generator().manual_seed(int(self.params["seed"]))
        rng = np.random.default_rng(int(self.params["seed"]))
        blocks = []
        for row, shift in zip(query.itertuples(index=False), shifts):
            if row.covariate not in self._basal:
                raise ValueError(f"no training control cells for covariate {row.covariate!r}")
            basal, library = self._basal[row.covariate], self._library[row.covariate]
            n = max(int(row.n_cells), 1)
            chosen = (
                np.arange(len(basal))
                if self.params["pseudobulk"]
                else rng.permutation(len(basal))[np.arange(n) % len(basal)]
            )
            index = self._covariates.index(row.covariate)
            cells = network.predict(
                torch.from_numpy(basal[chosen]),
                torch.full((len(chosen),), index),
                torch.from_numpy(shift)[None, :],
                torch.from_numpy(library[chosen]),
                generator,
            ).numpy()
            blocks.append(np.repeat(cells.mean(0, keepdims=True), n, axis=0) if self.params["pseudobulk"] else cells)
        n = query["n_cells"].clip(lower=1).to_numpy()
        obs = pd.DataFrame(
            {
                "covariate": np.repeat(query["covariate"].to_numpy(), n),
                "perturbation": np.repeat(query["perturbation"].to_numpy(), n),
                "vcc_fallback": np.repeat(fallback, n),
            }
        )
        X = np.vstack(blocks) if blocks else np.zeros((0, len(self.var_names)), np.float32)
        return self._to_anndata(X, obs)

    @property
    def history(self) -> dict:
        """The trainer's history (epochs, best epoch, throughput, device)."""
        return self._history

    # --- files -------------------------------------------------------------------------------------------
    def _extra_state(self):
        state = {
            "weights": self._weights,
            "covariates": list(self._covariates),
            "vocabulary": list(self._vocabulary),
            "sources": list(self._sources),
            "dims": dict(self._dims),
            "scale": float(self._scale),
            "basal": dict(self._basal),
            "library": dict(self._library),
            "mean_shift": self._mean_shift,
            "history": self._history,
        }
        if self._sources:
            state.update(
                feature_columns=list(self._feature_columns),
                feature_mean=self._feature_mean,
                feature_std=self._feature_std,
            )
        return state

    def _set_extra_state(self, state):
        self._weights = dict(state["weights"])
        self._covariates, self._vocabulary = list(state["covariates"]), list(state["vocabulary"])
        self._sources = tuple(state["sources"])
        self._dims, self._scale = dict(state["dims"]), float(state["scale"])
        self._basal, self._library = dict(state["basal"]), dict(state["library"])
        self._mean_shift, self._history = np.asarray(state["mean_shift"]), state["history"]
        if self._sources:
            self._feature_columns = list(state["feature_columns"])
            self._feature_mean, self._feature_std = state["feature_mean"], state["feature_std"]
        self._network_cache = None
