"""One base class for baselines and models.

``fit`` on the training part, ``predict`` the held-out groups, ``save``/``load`` in safe files.

A prediction is an AnnData in the project's schema (:mod:`vcclib.data.schema`), one row per predicted cell,
``X`` on the training data's scale (log1p). Models whose output is ``pseudobulk`` predict one mean profile per
group and repeat it ``n_cells`` times (as cell-eval's VCC baseline does), so every prediction can be scored by
cell-level metrics; ``cells`` models return real cells. ``obs['vcc_fallback']`` marks groups that a model could
not predict on its own terms (e.g. a target without an embedding) and filled with its fallback, the mean of the
training perturbations' mean effects.

A fitted model is saved as a directory of JSON and ``.npz`` (:mod:`vcclib.models.storage`): the training
statistics, every fitted sub-model as arrays, never a pickled object. Prior-knowledge feature tables are not
stored; they are re-derived from the verified data files when a loaded model embeds a query.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from vcclib.data.schema import SchemaError, require_single_perturbation, validate
from vcclib.models import storage
from vcclib.models.spec import MODELS, ModelSpec
from vcclib.splits import COVARIATE_NONE, covariate_column

QUERY_COLUMNS = ("covariate", "perturbation", "n_cells")
POOLED = "__pooled__"  # the context key of covariates without training perturbations of their own


def _as_dense(matrix) -> np.ndarray:
    return np.asarray(matrix.toarray() if sp.issparse(matrix) else matrix, dtype=np.float64)


def covariates_of(adata: AnnData, column: str | None) -> np.ndarray:
    """Each cell's covariate value (``"all"`` when the data have no covariate column)."""
    if column is None:
        return np.full(adata.n_obs, COVARIATE_NONE, dtype=object)
    return adata.obs[column].astype(str).to_numpy()


def group_means(adata: AnnData, column: str | None) -> pd.DataFrame:
    """Pseudobulk: the mean of X per (covariate, perturbation), rows a MultiIndex, columns the genes."""
    keys = pd.MultiIndex.from_arrays(
        [covariates_of(adata, column), adata.obs["perturbation"].astype(str).to_numpy()],
        names=["covariate", "perturbation"],
    )
    codes, uniques = pd.factorize(keys)
    indicator = sp.csr_matrix(
        (np.ones(adata.n_obs), (codes, np.arange(adata.n_obs))), shape=(len(uniques), adata.n_obs)
    )
    sums = indicator @ (adata.X if sp.issparse(adata.X) else np.asarray(adata.X))
    sums = _as_dense(sums)
    counts = np.asarray(indicator.sum(axis=1)).ravel()
    frame = pd.DataFrame(
        sums / counts[:, None], index=pd.MultiIndex.from_tuples(uniques, names=keys.names), columns=adata.var_names
    )
    return frame.sort_index()


class Model:
    """Base class of every baseline and model: ``fit(train)``, ``predict(query)``, ``save(dir)``/``load(dir)``.

    Built from its registered :class:`~vcclib.models.spec.ModelSpec` (``get_model(name)``), which holds its
    metadata. Subclasses implement :meth:`_predict_delta` (a mean effect Δ per query, added to the query
    covariate's control mean), or override :meth:`predict` for cell-level outputs. A subclass with fitted
    sub-models builds them per covariate in ``_build(covariate)`` (a dict of arrays, DataFrames and numbers, or
    None), cached by :meth:`context` and stored by :meth:`save`; other fitted state goes through
    :meth:`_extra_state` / :meth:`_set_extra_state`.

    Parameters
    ----------
    spec
        The registered spec (name, kind, output, needs, halves, ...).
    **params
        The variant's constructor parameters (stored in :attr:`params` and in the saved model).
    """

    def __init__(self, spec: ModelSpec, **params: Any):
        self.spec = spec
        self.name = spec.name
        self.params = params
        self.fitted = False

    # --- metadata (from the spec) ------------------------------------------------------------------------
    @property
    def kind(self):
        """The model's kind (from its spec)."""
        return self.spec.kind

    @property
    def side(self):
        """The model's side, MIN or MAX reference (from its spec)."""
        return self.spec.side

    @property
    def output(self):
        """What the model predicts, pseudobulk or cells (from its spec)."""
        return self.spec.output

    @property
    def needs(self) -> tuple[str, ...]:
        """The feature sources the model needs (from its spec)."""
        return self.spec.needs

    @property
    def halves(self) -> str | None:
        """How the held-out cells are halved for this model, or None (from its spec)."""
        return self.spec.halves

    @property
    def source(self) -> str:
        """Where the model comes from (from its spec)."""
        return self.spec.source

    @property
    def description(self) -> str:
        """The model's one-line description (from its spec)."""
        return self.spec.description

    # --- fitting -----------------------------------------------------------------------------------------
    def fit(self, train: AnnData, *, val: AnnData | None = None, heldout: AnnData | None = None) -> Model:
        """Learn from the training cells (controls included).

        ``val`` is a validation part (baselines ignore it); MAX references also get ``heldout``, the query half
        of the held-out cells.
        """
        meta = dict(train.uns.get("vcc", {}))
        if "control_label" not in meta:
            raise SchemaError("training data lack uns['vcc']['control_label']")
        require_single_perturbation(train, f"model {self.name!r}")
        if self.halves is not None and heldout is None:
            raise ValueError(f"{self.name} is a MAX reference: pass the held-out query half as heldout=")
        self.control_label = str(meta["control_label"])
        self.covariate_column = covariate_column(train)
        self.var_names = train.var_names.copy()
        self.uns_vcc = meta
        self.perturbation_type = str(train.obs["perturbation_type"].astype(str).mode().iloc[0])
        means = group_means(train, self.covariate_column)
        perturbation = means.index.get_level_values("perturbation")
        controls = means[perturbation == self.control_label].droplevel("perturbation")
        if controls.empty:
            raise ValueError("the training data hold no control cells")
        self.control_means = controls
        pert = means[perturbation != self.control_label]
        cov = pert.index.get_level_values("covariate")
        known = cov.isin(controls.index)
        pert = pert[known]
        self.deltas = pert - controls.loc[pert.index.get_level_values("covariate")].to_numpy()
        self.train_counts = pd.Series(
            pd.MultiIndex.from_arrays(
                [covariates_of(train, self.covariate_column), train.obs["perturbation"].astype(str).to_numpy()]
            ).value_counts()
        )
        self._context_cache: dict[str, Any] = {}
        self._fit(train, heldout)
        self.fitted = True
        return self

    def _fit(self, train: AnnData, heldout: AnnData | None) -> None:
        """Hook for subclasses (after the common statistics are computed)."""

    def training_deltas(self, covariate: str) -> pd.DataFrame:
        """Mean effects (perturbation × genes) a model may learn from for ``covariate``.

        These are that covariate's own training perturbations where it has any, else each perturbation's Δ
        averaged over the other covariates.
        """
        if self.deltas.empty:
            return pd.DataFrame(columns=self.var_names)
        cov = self.deltas.index.get_level_values("covariate")
        if (cov == covariate).any():
            return self.deltas[cov == covariate].droplevel("covariate")
        return self.deltas.groupby(level="perturbation").mean()

    def mean_delta(self, covariate: str) -> np.ndarray:
        """The fallback: the mean of the training perturbations' mean effects (zero when there are none)."""
        deltas = self.training_deltas(covariate)
        return deltas.mean(axis=0).to_numpy() if len(deltas) else np.zeros(len(self.var_names))

    def _context_key(self, covariate: str) -> str:
        return covariate if (self.deltas.index.get_level_values("covariate") == covariate).any() else POOLED

    def context(self, covariate: str, build):
        """Per-covariate cache for fitted sub-models (``build(covariate)`` is called once)."""
        key = self._context_key(covariate)
        if key not in self._context_cache:
            self._context_cache[key] = build(covariate)
        return self._context_cache[key]

    # --- predicting --------------------------------------------------------------------------------------
    def _predict_delta(self, covariate: str, perturbations: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Mean effects (len(perturbations) × genes) and a fallback flag per perturbation."""
        raise NotImplementedError

    def control_mean(self, covariate: str) -> np.ndarray:
        """The training control cells' mean profile of ``covariate``; ValueError if it has none."""
        if covariate not in self.control_means.index:
            raise ValueError(f"no training control cells for covariate {covariate!r}")
        return self.control_means.loc[covariate].to_numpy()

    def predict_means(self, query: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """The predicted pseudobulk (one row per query group, log1p scale) and the fallback flags."""
        self._check_fitted()
        query = normalise_query(query)
        rows = np.zeros((len(query), len(self.var_names)))
        fallback = np.zeros(len(query), dtype=bool)
        for covariate, index in query.groupby("covariate").groups.items():
            positions = query.index.get_indexer(index)
            perts = query.loc[index, "perturbation"].tolist()
            delta, flags = self._predict_delta(str(covariate), perts)
            rows[positions] = self.control_mean(str(covariate))[None, :] + np.asarray(delta)
            fallback[positions] = flags
        rows = np.clip(rows, 0, None)
        frame = pd.DataFrame(
            rows, index=pd.MultiIndex.from_frame(query[["covariate", "perturbation"]]), columns=self.var_names
        )
        return frame, fallback

    def predict(self, query: pd.DataFrame) -> AnnData:
        """Predict the query groups (columns ``covariate``, ``perturbation``, ``n_cells``) as an AnnData."""
        means, fallback = self.predict_means(query)
        query = normalise_query(query)
        n = query["n_cells"].clip(lower=1).to_numpy()
        X = np.repeat(means.to_numpy(dtype=np.float32), n, axis=0)
        obs = pd.DataFrame(
            {
                "covariate": np.repeat(query["covariate"].to_numpy(), n),
                "perturbation": np.repeat(query["perturbation"].to_numpy(), n),
                "vcc_fallback": np.repeat(fallback, n),
            }
        )
        return self._to_anndata(X, obs)

    # --- output ------------------------------------------------------------------------------------------
    def _to_anndata(self, X: np.ndarray, obs: pd.DataFrame) -> AnnData:
        obs = obs.reset_index(drop=True)
        obs.index = [f"pred_{self.name}_{i}" for i in range(len(obs))]
        column = self.covariate_column or "cell_line"
        covariate = obs.pop("covariate").astype(str)
        obs[column] = covariate if self.covariate_column else "unknown"
        obs["perturbation"] = obs["perturbation"].astype(str)
        obs["is_control"] = False
        obs["dataset"] = str(self.uns_vcc.get("dataset", ""))
        obs["perturbation_type"] = self.perturbation_type
        obs["vcc_fallback"] = obs["vcc_fallback"].astype(bool)
        for key in ("perturbation", column, "dataset", "perturbation_type"):
            obs[key] = obs[key].astype("category")
        result = AnnData(X=np.asarray(X, dtype=np.float32), obs=obs, var=pd.DataFrame(index=self.var_names.copy()))
        result.uns["vcc"] = {**self.uns_vcc, "prediction": self.metadata()}
        return validate(result)

    def metadata(self) -> dict[str, Any]:
        """Name, kind, side, output, source and parameters, stored in ``uns['vcc']['prediction']``."""
        return {
            "model": self.name,
            "kind": self.kind.value,
            "side": self.side.value,
            "output": self.output.value,
            "source": self.source,
            "needs": list(self.needs),
            "halves": self.halves,
            "params": {k: v for k, v in self.params.items() if isinstance(v, (int, float, str, bool))},
        }

    def _check_fitted(self):
        if not self.fitted:
            raise RuntimeError(f"{self.name}: call fit() before predict()")

    # --- files -------------------------------------------------------------------------------------------
    def fit_all_contexts(self) -> None:
        """Build the fitted sub-model of every covariate with control cells (what :meth:`save` stores)."""
        build = getattr(self, "_build", None)
        if build is None:
            return
        for covariate in self.control_means.index:
            self.context(str(covariate), build)

    def _extra_state(self) -> dict[str, Any]:
        """Subclass state beyond the common statistics and the contexts (arrays, frames, numbers, labels)."""
        return {}

    def _set_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`_extra_state` returned."""

    def save(self, directory: str | Path) -> Path:
        """Write the fitted model to ``directory`` (``model.json`` + ``arrays.npz``; no pickle).

        Every covariate's sub-model is fitted first, so the loaded model predicts exactly what this one does.
        A directory that already holds a model is refused.
        """
        self._check_fitted()
        self.fit_all_contexts()
        from vcclib import __version__

        header = {"model": self.name, "class": self.spec.cls, "params": self.params, "vcclib": __version__}
        state = {
            "control_label": self.control_label,
            "covariate_column": self.covariate_column,
            "var_names": self.var_names,
            "uns_vcc": self.uns_vcc,
            "perturbation_type": self.perturbation_type,
            "control_means": self.control_means,
            "deltas": self.deltas,
            "train_counts": self.train_counts,
            "contexts": self._context_cache,
            "extra": self._extra_state(),
        }
        try:
            return storage.write(directory, header, state)
        except TypeError as error:
            raise storage.ModelFileError(f"{self.name}: its fitted state cannot be stored safely ({error})") from None

    @classmethod
    def load(cls, directory: str | Path) -> Model:
        """The fitted model saved in ``directory`` by :meth:`save` (its registered class, its parameters)."""
        header, state = storage.read(directory)
        spec = MODELS.get(header["model"])
        if spec.cls != header["class"]:
            raise storage.ModelFileError(
                f"{directory}: model {spec.name!r} is now {spec.cls}, the file was written by {header['class']}"
            )
        model = spec.create(**header["params"])
        if not isinstance(model, cls):
            raise storage.ModelFileError(f"{directory} holds a {type(model).__name__}, not a {cls.__name__}")
        for key in (
            "control_label",
            "covariate_column",
            "uns_vcc",
            "perturbation_type",
            "control_means",
            "deltas",
            "train_counts",
        ):
            setattr(model, key, state[key])
        model.var_names = pd.Index(state["var_names"])
        model._context_cache = dict(state["contexts"])
        model._set_extra_state(state["extra"])
        model.fitted = True
        return model


def normalise_query(query: pd.DataFrame) -> pd.DataFrame:
    """A query table with string ``covariate``/``perturbation`` and integer ``n_cells`` (default 1)."""
    query = query.copy()
    if "covariate" not in query:
        query["covariate"] = COVARIATE_NONE
    if "n_cells" not in query:
        query["n_cells"] = 1
    missing = {"perturbation"} - set(query.columns)
    if missing:
        raise ValueError(f"query lacks columns {sorted(missing)}")
    query["covariate"] = query["covariate"].astype(str)
    query["perturbation"] = query["perturbation"].astype(str)
    query["n_cells"] = query["n_cells"].astype(int)
    return query.reset_index(drop=True)[list(QUERY_COLUMNS)]


def with_controls(prediction: AnnData, controls: AnnData) -> AnnData:
    """The prediction followed by the real control cells, on the prediction's genes, ready for evaluation."""
    import anndata as ad

    missing = prediction.var_names.difference(controls.var_names)
    if len(missing):
        raise ValueError(f"the control cells lack {len(missing)} predicted genes")
    controls = controls[:, prediction.var_names]
    keep = [c for c in prediction.obs.columns if c in controls.obs.columns]
    ctrl = AnnData(
        X=_as_dense(controls.X).astype(np.float32),
        obs=controls.obs[keep].copy(),
        var=pd.DataFrame(index=prediction.var_names.copy()),
    )
    ctrl.obs["vcc_fallback"] = False
    ctrl.obs_names = [f"ctrl_{name}" for name in controls.obs_names]
    pred = prediction.copy()
    pred.X = _as_dense(pred.X).astype(np.float32)
    combined = ad.concat([pred, ctrl], join="outer", merge="same")
    for key in ("perturbation", "dataset", "perturbation_type"):
        combined.obs[key] = combined.obs[key].astype(str).astype("category")
    combined.obs["is_control"] = combined.obs["is_control"].astype(bool)
    combined.obs["vcc_fallback"] = combined.obs["vcc_fallback"].astype(bool)
    combined.uns["vcc"] = dict(prediction.uns["vcc"])
    return validate(combined)
